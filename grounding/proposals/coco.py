"""The COCO instances file of a split (RefCOCO/+/g's ``instances.json``): image file name → id, size and
instance boxes with category names. Shared by the ``gt`` and ``detections`` sources."""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

from .base import ProposalError


def instances_file(split) -> Optional[str]:
    """The split's COCO instances file among its annotation files (``source_files``), or None."""
    for f in getattr(split, "source_files", []) or []:
        if str(f).endswith(".json") and os.path.isfile(f):
            return str(f)
    return None


def read_instances(path: str) -> Dict[str, dict]:
    """``file_name`` → ``{"id", "width", "height", "anns": [(bbox xywh, category name)]}``."""
    try:
        with open(path) as f:
            d = json.load(f)
        cats = {c["id"]: str(c.get("name", c["id"])) for c in d.get("categories", [])}
        images = {im["id"]: dict(im, anns=[]) for im in d["images"]}
        for a in d["annotations"]:
            images[a["image_id"]]["anns"].append((a["bbox"], cats.get(a.get("category_id"), "object")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ProposalError(f"{path}: not a COCO instances file ({type(e).__name__}: {e})") from None
    return {str(im["file_name"]): im for im in images.values()}
