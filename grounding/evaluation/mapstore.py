"""Per-row score-map thumbnails kept beside a run's predictions, for the HTML report's overlay.

``RUN_DIR/maps/{index:06d}.png``: the row's score map, min-max normalised to 0…255 (8-bit grey) and
shrunk (area average) so that its longer side is at most :data:`MAP_SIDE` cells. It is a picture of
where the method looked, not data to re-score: a few hundred bytes per row, written at eval time so
the report never has to re-run a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

MAPS_DIR = "maps"
MAP_SIDE = 56


def map_path(run_dir, index: int) -> Path:
    return Path(run_dir) / MAPS_DIR / f"{int(index):06d}.png"


def map_thumbnail(score_map, side: int = MAP_SIDE) -> np.ndarray:
    """uint8 H'×W' picture of ``score_map`` (min-max normalised; NaN/inf as the minimum), longer side ≤ ``side``."""
    from PIL import Image

    m = np.asarray(score_map, dtype=np.float32)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"score map must be a non-empty 2-D array, got shape {m.shape}")
    finite = np.isfinite(m)
    lo = float(m[finite].min()) if finite.any() else 0.0
    m = np.where(finite, m, lo)
    span = float(m.max()) - lo
    m8 = np.zeros(m.shape, np.uint8) if span <= 0 else np.round((m - lo) / span * 255).astype(np.uint8)
    h, w = m8.shape
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        m8 = np.asarray(Image.fromarray(m8).resize(size, Image.BOX))
    return m8


def save_score_map(run_dir, index: int, score_map) -> Optional[Path]:
    """Write the row's map thumbnail (see module doc); a row without a map (``None``) writes nothing."""
    if score_map is None:
        return None
    from PIL import Image

    p = map_path(run_dir, index)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    Image.fromarray(map_thumbnail(score_map)).save(tmp, format="PNG")
    tmp.replace(p)
    return p


def load_score_map(run_dir, index: int) -> Optional[np.ndarray]:
    """The stored map thumbnail as float32 in [0, 1], or ``None`` when the row has none."""
    p = map_path(run_dir, index)
    if not p.is_file():
        return None
    from PIL import Image

    with Image.open(p) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
