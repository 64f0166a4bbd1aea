"""``proposals=gt``: every COCO instance box of the image, from the split's ``instances.json`` (RefCOCO,
RefCOCO+, RefCOCOg) — what ReCLIP ranks when it is given no ``--detector_file``. Labels are the
instances' category names."""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from .base import ProposalError, ProposalSet, ProposalSource, xywh_to_xyxy
from .coco import instances_file, read_instances


class GroundTruthBoxes(ProposalSource):
    name = "gt"
    serves = ("grounding.data.refcoco.load_refcoco",)

    def __init__(self, **params):
        super().__init__(**params)
        self.images: Dict[str, dict] = {}
        self.path = None

    def bind(self, split) -> Dict[str, str]:
        self.path = instances_file(split)
        if self.path is None:
            raise ProposalError(f"proposals=gt: split {split.name} has no COCO instances file (instances.json) "
                                f"among {split.source_files}; use proposals=detections proposals.file=PATH")
        self.images = read_instances(self.path)
        errors = {}
        for p in {s.image_path for s in split}:
            if os.path.basename(p) not in self.images:
                errors[p] = f"{self.path}: no image with file_name {os.path.basename(p)!r}"
        return errors

    def for_image(self, image_path: str) -> ProposalSet:
        im = self.images.get(os.path.basename(str(image_path)))
        if im is None:
            raise ProposalError(f"{self.path}: no image with file_name {os.path.basename(str(image_path))!r} "
                                f"(proposals=gt serves only the split's own images)")
        where = f"{self.path}, image id {im['id']}"
        boxes = [xywh_to_xyxy(b, where) for b, _ in im["anns"]]
        return ProposalSet(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), labels=[c for _, c in im["anns"]],
                           meta={"image_id": im["id"]})
