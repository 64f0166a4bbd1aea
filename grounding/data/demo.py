"""The bundled demo split: toy-CLIP coloured-shape scenes stored in ZSGNet's CSV layout.

``{data_root}/ds_csv_ann/demo/csv_dir/test.csv`` (columns ``img_id,bbox,query``) and
``{data_root}/demo-images/{img_id}.png``. The files ship with the repository under data/; they are
regenerated (deterministically) when absent, e.g. for another ``data_root``.
"""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

DEMO_SEED, DEMO_IMAGES = 2022, 30


def demo_paths(data_root):
    root = Path(data_root)
    return root / "ds_csv_ann" / "demo" / "csv_dir" / "test.csv", root / "demo-images"


def write_demo_data(data_root, n_images: int = DEMO_IMAGES, seed: int = DEMO_SEED) -> Path:
    from ..models.toy import make_scenes

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


if __name__ == "__main__":
    import sys

    print(write_demo_data(sys.argv[1] if len(sys.argv) > 1 else "data"))
