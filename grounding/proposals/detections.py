"""``proposals=detections proposals.file=PATH``: detector boxes from a JSON file in ReCLIP's format.

Either a dict image id → list of boxes, or a list of ``{"image_id", "box"}`` objects; a box is COCO
``[x, y, w, h]``, or an object ``{"box": [x, y, w, h], "score": s, "label": name}`` (``score`` and ``label``
optional, kept where the file has them). Image ids are the COCO ids of the split's ``instances.json``
(RefCOCO family) or, for other splits, the image file's stem. An image listed with no detection gets the
whole image as its only box (as ReCLIP); in the list format an image without objects is such an image.
In the dict format an image of the split missing from the file is an error (naming the file and the id).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np
from PIL import Image

from .base import file_sha256, ProposalError, ProposalSet, ProposalSource, xywh_to_xyxy
from .coco import instances_file, read_instances


def read_detections(path: str) -> Dict[str, List]:
    """``str(image id)`` → list of box entries, from either of ReCLIP's layouts; one-line errors."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ProposalError(f"{path}: not a valid JSON detections file ({type(e).__name__}: {e}); expected "
                            f"{{image_id: [[x, y, w, h], ...]}} or [{{\"image_id\": ..., \"box\": [x, y, w, h]}}, ...]") from None
    if isinstance(data, dict):
        for k, v in data.items():
            if not isinstance(v, list):
                raise ProposalError(f"{path}: image id {k}: expected a list of boxes, got {type(v).__name__}")
        return {str(k): v for k, v in data.items()}
    if not isinstance(data, list):
        raise ProposalError(f"{path}: expected a JSON object or list of detections, got {type(data).__name__}")
    out: Dict[str, List] = {"__list__": []}
    for i, d in enumerate(data):
        if not isinstance(d, dict) or "image_id" not in d or "box" not in d:
            raise ProposalError(f"{path}: entry {i} must be an object with \"image_id\" and \"box\"")
        out.setdefault(str(d["image_id"]), []).append(d)
    return out


def parse_entries(entries: List, where: str) -> ProposalSet:
    boxes, scores, labels = [], [], []
    for e in entries:
        box = e.get("box") if isinstance(e, dict) else e
        boxes.append(xywh_to_xyxy(box, where))
        scores.append(float(e["score"]) if isinstance(e, dict) and "score" in e else np.nan)
        labels.append(str(e["label"]) if isinstance(e, dict) and "label" in e else None)
    return ProposalSet(np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                       None if all(np.isnan(scores)) else np.asarray(scores),
                       None if all(lab is None for lab in labels) else [lab or "object" for lab in labels])


class DetectionsFile(ProposalSource):
    name = "detections"

    def __init__(self, file=None, **params):
        super().__init__(file=file, **params)
        if not file:
            raise ProposalError("proposals=detections needs proposals.file=PATH (a JSON file in ReCLIP's format)")
        self.file = str(file)
        if not os.path.isfile(self.file):
            raise ProposalError(f"proposals.file={self.file}: file not found")
        self.data = read_detections(self.file)
        self.ids: Dict[str, str] = {}
        self.sets: Dict[str, object] = {}

    def identity(self):
        return {"file": os.path.abspath(self.file), "sha256": file_sha256(self.file)}

    def bind(self, split) -> Dict[str, str]:
        inst = instances_file(split)
        names = read_instances(inst) if inst else {}
        errors = {}
        for p in sorted({s.image_path for s in split if not s.error}):
            base = os.path.basename(p)
            image_id = str(names[base]["id"]) if base in names else os.path.splitext(base)[0]
            self.ids[p] = image_id
            try:
                self.sets[p] = self._set(image_id)
            except ProposalError as e:
                self.sets[p] = errors[p] = str(e)
        return errors

    def _set(self, image_id: str) -> ProposalSet:
        entries = self.data.get(image_id)
        if entries is None and "__list__" not in self.data:
            raise ProposalError(f"{self.file}: no entry for image id {image_id} of the split; add it (an empty "
                                f"list means no detection: the whole image is used)")
        return parse_entries(entries or [], f"{self.file}, image id {image_id}")

    def for_image(self, image_path: str) -> ProposalSet:
        p = str(image_path)
        got = self.sets.get(p)
        if got is None:  # not bound to a split (the API): the file stem is the id
            got = self._set(self.ids.get(p, os.path.splitext(os.path.basename(p))[0]))
        if isinstance(got, str):
            raise ProposalError(got)
        if len(got) == 0:  # no detection: the whole image, as ReCLIP
            with Image.open(p) as im:
                w, h = im.size
            got = ProposalSet(np.array([[0.0, 0.0, w, h]]), meta={"whole_image": True})
        return got
