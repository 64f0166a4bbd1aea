"""Gallery thumbnails (≤ 256 px JPEGs): the image with GT (yellow) and predicted (red) boxes, and the
score-map overlay, cached under ``RUN_DIR/report_cache/thumbs/`` and named by a hash of what they show."""
from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from ..mapstore import load_score_map, map_path
from .load import CACHE_DIR, Run

THUMB_VERSION = 2
GT_RGB, PRED_RGB = (255, 215, 0), (230, 20, 20)
Thumbs = Dict[int, Dict[str, Optional[Path]]]  # row index -> {"image": path, "map": path or None}
_JET: Optional[np.ndarray] = None


def _jet_lut() -> np.ndarray:
    global _JET
    if _JET is None:
        _JET = (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return _JET


def _draw_boxes(im: Image.Image, rec: Dict[str, Any], scale: float) -> Image.Image:
    d = ImageDraw.Draw(im)
    w = max(2, round(min(im.size) / 90))
    for box, color in ((rec.get("gt_box"), GT_RGB), (rec.get("pred_box"), PRED_RGB)):
        if box and len(box) == 4:
            x1, y1, x2, y2 = (float(v) * scale for v in box)
            d.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=color, width=w)
    return im


def _overlay(base: Image.Image, score: np.ndarray) -> Image.Image:
    """``base`` (PIL RGB) blended 50/50 with the jet-coloured ``score`` map stretched over it."""
    m = Image.fromarray(np.round(score * 255).astype(np.uint8)).resize(base.size, Image.BILINEAR)
    col = _jet_lut()[np.asarray(m)]
    return Image.fromarray((0.5 * np.asarray(base, dtype=np.float32) + 0.5 * col).astype(np.uint8))


def _thumb_key(rec: Dict[str, Any], map_file: Path, max_side: int) -> str:
    stamp = map_file.stat().st_mtime_ns if map_file.is_file() else 0
    blob = json.dumps([THUMB_VERSION, max_side, rec.get("image"), rec.get("gt_box"), rec.get("pred_box"), stamp])
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _base_image(path: str, items: List[tuple], max_side: int) -> Tuple[Image.Image, float]:
    """The image shrunk to ``max_side`` (a grey placeholder when it cannot be read), and the scale from
    original-image pixels to it."""
    try:
        with Image.open(path) as im:
            orig_w = (items[0][0].get("image_size") or [None])[0] or im.size[0]
            im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side), Image.BILINEAR)
            base = im.copy()
    except (OSError, ValueError):
        return Image.new("RGB", (max_side, max_side // 2), (60, 60, 60)), 0.0
    return base, base.size[0] / orig_w


def _draw_image_rows(run: Run, base: Image.Image, scale: float, items: List[tuple], max_side: int) -> None:
    for rec, img_t, map_t in items:
        _draw_boxes(base.copy(), rec, scale).save(img_t, quality=82)
        if map_t is not None:
            score = load_score_map(run.dir, rec["index"])
            small = base.copy()
            small.thumbnail((max(96, max_side // 2),) * 2, Image.BILINEAR)  # a map of ≤ 56 cells needs no more
            _draw_boxes(_overlay(small, score), rec, scale * small.size[0] / base.size[0]).save(map_t, quality=80)


def _plan(run: Run, out_dir: Path, max_side: int) -> Tuple[Thumbs, "OrderedDict[str, list]"]:
    """Every row's thumbnail paths, and the rows whose pictures are still to draw, grouped by image."""
    todo: "OrderedDict[str, list]" = OrderedDict()
    result: Thumbs = {}
    for rec in run.records:
        mp = map_path(run.dir, rec["index"])
        key = _thumb_key(rec, mp, max_side)
        img_t = out_dir / f"{int(rec['index']):06d}-{key}.jpg"
        map_t = out_dir / f"{int(rec['index']):06d}-{key}-m.jpg" if mp.is_file() else None
        result[int(rec["index"])] = {"image": img_t, "map": map_t}
        if not img_t.is_file() or (map_t is not None and not map_t.is_file()):
            todo.setdefault(rec.get("image") or "", []).append((rec, img_t, map_t))
    return result, todo


def make_thumbnails(run: Run, max_side: int = 256, progress: bool = True) -> Thumbs:
    """Per row index: ``{"image": path, "map": path or None}`` JPEG thumbnails under
    ``RUN_DIR/report_cache/thumbs/``. Files named by a hash of what they show are reused, never redrawn;
    files of predictions the run no longer holds are removed."""
    out_dir = run.dir / CACHE_DIR / "thumbs"
    out_dir.mkdir(parents=True, exist_ok=True)
    result, by_image = _plan(run, out_dir, max_side)
    todo, done, t0 = sum(len(v) for v in by_image.values()), 0, time.time()
    for path, items in by_image.items():  # decode each image once for all its rows
        base, scale = _base_image(path, items, max_side)
        _draw_image_rows(run, base, scale, items, max_side)
        done += len(items)
        if progress and todo > 500 and done % 500 < len(items):
            print(f"[grounding-report] thumbnails {run.dir}: {done}/{todo} ({time.time() - t0:.0f} s)", file=sys.stderr)
    wanted = {p.name for t in result.values() for p in t.values() if p is not None}
    for p in out_dir.glob("*.jpg"):  # pictures of predictions the run no longer holds
        if p.name not in wanted:
            p.unlink()
    return result
