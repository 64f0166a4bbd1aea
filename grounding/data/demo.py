"""The bundled demo split: toy-CLIP coloured-shape scenes stored in ZSGNet's CSV layout.

``{data_root}/ds_csv_ann/demo/csv_dir/test.csv`` (columns ``img_id,bbox,query``) and
``{data_root}/demo-images/{img_id}.png``. The files ship with the repository under data/; they are
regenerated (deterministically) when absent, e.g. for another ``data_root``.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

# Six hues 60° apart in the chroma plane; every name is a single BPE token.
PALETTE: Dict[str, Tuple[int, int, int]] = {
    "red": (230, 20, 20), "yellow": (230, 230, 20), "green": (20, 230, 20),
    "teal": (20, 230, 230), "blue": (20, 20, 230), "magenta": (230, 20, 230),
}
BACKGROUND = (128, 128, 128)
SHAPES = ("square", "rectangle", "circle", "triangle")

DEMO_SEED, DEMO_IMAGES = 2022, 30


def demo_paths(data_root):
    root = Path(data_root)
    return root / "ds_csv_ann" / "demo" / "csv_dir" / "test.csv", root / "demo-images"


def write_demo_data(data_root, n_images: int = DEMO_IMAGES, seed: int = DEMO_SEED) -> Path:
    csv_path, img_dir = demo_paths(data_root)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (image, objects) in enumerate(make_scenes(n_images, seed)):
        img_id = f"demo_{i:04d}"
        Image.fromarray(image).save(img_dir / f"{img_id}.png", optimize=True)
        for obj in objects:
            box = [int(round(v)) for v in obj["box"]]
            rows.append({"img_id": img_id, "bbox": str(box), "query": obj["phrase"]})
    tmp = csv_path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["img_id", "bbox", "query"])
        w.writeheader()
        w.writerows(rows)
    tmp.replace(csv_path)
    return csv_path


def ensure_demo_data(data_root="data") -> Path:
    csv_path, img_dir = demo_paths(data_root)
    if csv_path.is_file() and img_dir.is_dir():
        return csv_path
    return write_demo_data(data_root)


# ----------------------------------------------------------------------------------- scenes
def _shape_mask(shape: str, w: int, h: int, x0: int, y0: int, sw: int, sh: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    box = [x0, y0, x0 + sw - 1, y0 + sh - 1]
    if shape in ("square", "rectangle"):
        d.rectangle(box, fill=255)
    elif shape == "circle":
        d.ellipse(box, fill=255)
    else:
        d.polygon([(x0 + sw / 2, y0), (x0, y0 + sh - 1), (x0 + sw - 1, y0 + sh - 1)], fill=255)
    return np.asarray(im) > 0


def make_scene(rng: np.random.Generator, size=None, n_shapes=None):
    """One scene: (uint8 HxWx3 image, [{colour, shape, box, phrase}]) with non-overlapping shapes.

    ``box`` is the shape's tight box [x1, y1, x2, y2] in pixels (x2, y2 one past the last pixel).
    """
    w, h = size or (int(rng.integers(160, 401)), int(rng.integers(160, 401)))
    n = int(n_shapes or rng.integers(2, 5))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = BACKGROUND
    taken = np.zeros((h, w), bool)
    colours = list(rng.permutation(list(PALETTE)))
    objects: List[dict] = []
    for colour in colours:
        if len(objects) == n:
            break
        for _ in range(200):
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            side = min(w, h)
            sw = int(rng.uniform(0.22, 0.42) * side)
            sh = sw if shape in ("square", "circle") else int(sw * rng.uniform(0.6, 1.6))
            sh = min(sh, h - 4)
            x0, y0 = int(rng.integers(2, w - sw - 1)), int(rng.integers(2, h - sh - 1))
            mask = _shape_mask(shape, w, h, x0, y0, sw, sh)
            grown = np.zeros_like(taken)
            ys, xs = np.nonzero(mask)
            grown[max(0, ys.min() - 6):ys.max() + 7, max(0, xs.min() - 6):xs.max() + 7] = True
            if (grown & taken).any():
                continue
            taken |= grown
            img[mask] = PALETTE[colour]
            box = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            article = "the" if rng.random() < 0.5 else "a"
            objects.append({"colour": colour, "shape": shape, "box": box, "phrase": f"{article} {colour} {shape}"})
            break
    return img, objects


def make_scenes(n: int, seed: int = 0):
    """``n`` scenes from a seeded generator (the same seed gives the same scenes)."""
    rng = np.random.default_rng(seed)
    return [make_scene(rng) for _ in range(n)]


def load_demo(*, data_root, **kwargs):
    """The demo split: its files are generated under ``data_root`` when absent, then read as a ZSGNet CSV."""
    from .zsg import load_zsg_csv

    ensure_demo_data(data_root)
    return load_zsg_csv(data_root=data_root, **kwargs)
