"""``proposals.boxes=[[x1, y1, x2, y2], …]``: boxes given on the command line (grounding-localize) or in
the API, pixel corners, the same for every image."""
from __future__ import annotations

from .base import ProposalSet, ProposalSource, xyxy_boxes


class GivenBoxes(ProposalSource):
    name = "boxes"

    def __init__(self, boxes=None, **params):
        super().__init__(boxes=boxes, **params)
        self.boxes = None if boxes is None else xyxy_boxes(list(boxes), "proposals.boxes")

    def for_image(self, image_path) -> ProposalSet:
        return ProposalSet(self.boxes.copy())
