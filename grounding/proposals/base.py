"""What every proposal source returns (:class:`ProposalSet`), clipping to the image, and the errors.

A source is any object with ``name``, ``params`` (a JSON-able dict, part of the run identity),
``identity()`` (file hashes etc.), ``bind(split)`` (reads what it needs for a split's images; returns a
dict image path → error message for images it cannot serve) and ``for_image(image_path)`` → a
:class:`ProposalSet` of boxes in pixel corners ``[x1, y1, x2, y2]``, in the source's order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import GroundingError


class ProposalError(GroundingError, ValueError):
    """Proposals cannot be read or used; the message names the file and the image id and the fix."""


@dataclass
class ProposalSet:
    """Boxes ``(N, 4)`` float64 pixel corners, optional per-box ``scores`` and ``labels`` (names);
    ``dropped`` counts boxes removed by :meth:`clipped`; ``given`` keeps the kept boxes as given (before
    clipping), which is what a ranker returns."""

    boxes: np.ndarray
    scores: Optional[np.ndarray] = None
    labels: Optional[List[str]] = None
    dropped: int = 0
    given: Optional[np.ndarray] = None
    meta: Dict[str, Any] = field(default_factory=dict)  # "inclusive": boxes are inclusive pixel boxes
    index: Optional[np.ndarray] = None  # position of each kept box in the set as given

    def __len__(self) -> int:
        return len(self.boxes)

    def clipped(self, image_size: Tuple[int, int]) -> "ProposalSet":
        """Boxes clipped to the ``(width, height)`` image; a box left without area is dropped and counted."""
        w, h = image_size
        b = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        one = 1.0 if self.meta.get("inclusive") else 0.0  # inclusive pixel boxes: x2 is the last column
        c = b.copy()
        c[:, [0, 2]] = c[:, [0, 2]].clip(0, w - one)
        c[:, [1, 3]] = c[:, [1, 3]].clip(0, h - one)
        inside = (b[:, 0] < w) & (b[:, 1] < h) & (b[:, 2] + one > 0) & (b[:, 3] + one > 0)
        keep = inside & (c[:, 2] + one > c[:, 0]) & (c[:, 3] + one > c[:, 1])
        index = np.arange(len(b)) if self.index is None else np.asarray(self.index)
        return ProposalSet(c[keep], None if self.scores is None else np.asarray(self.scores)[keep],
                           None if self.labels is None else [lab for lab, k in zip(self.labels, keep) if k],
                           self.dropped + int((~keep).sum()), b[keep], dict(self.meta), index[keep])


def xyxy_boxes(boxes: Sequence, where: str) -> np.ndarray:
    """``[[x1, y1, x2, y2], …]`` → (N, 4) float64; refuses non-finite values and zero or negative size."""
    try:
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
    except (TypeError, ValueError):
        raise ProposalError(f"{where}: proposals must be a list of [x1, y1, x2, y2] boxes, got {boxes!r:.80}") from None
    bad = ~np.isfinite(b).all(1) | (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    if bad.any():
        raise ProposalError(f"{where}: box {b[bad][0].tolist()} has zero or negative width/height (or is not "
                            f"finite); boxes are pixel corners [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
    return b


def xywh_to_xyxy(box, where: str) -> List[float]:
    """COCO ``[x, y, w, h]`` → corners; refuses a malformed box and ``w`` or ``h`` <= 0 (bad input)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box):
        raise ProposalError(f"{where}: box {box!r:.60} must be [x, y, w, h] (4 finite numbers)")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise ProposalError(f"{where}: box {list(box)} has zero or negative width/height (w and h must be > 0)")
    return [x, y, x + w, y + h]


def as_proposal_set(proposals, where: str = "proposals") -> Optional[ProposalSet]:
    """A :class:`ProposalSet` from a set, a list of pixel-corner boxes, or None."""
    if proposals is None or isinstance(proposals, ProposalSet):
        return proposals
    if hasattr(proposals, "boxes"):  # a duck-typed set
        return ProposalSet(xyxy_boxes(proposals.boxes, where), getattr(proposals, "scores", None),
                           getattr(proposals, "labels", None), int(getattr(proposals, "dropped", 0) or 0))
    return ProposalSet(xyxy_boxes(list(proposals), where))


def file_sha256(path) -> str:
    """Content hash of a file (part of the run identity: a changed detections file is another run)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ProposalSource:
    """Base class of the sources (optional: the protocol in the module docstring is what counts)."""

    name = ""
    #: which split loaders (``split.loader._target_``) the source can serve; None: any
    serves: Optional[Tuple[str, ...]] = None

    def __init__(self, **params):
        self.params = {k: v for k, v in params.items() if k not in ("_target_", "name")}

    @classmethod
    def check_split(cls, split_cfg) -> None:
        """Torch-free: refuse, in one line, a split this source cannot serve (before any model loads)."""
        target = str((split_cfg.get("loader") or {}).get("_target_", ""))
        if cls.serves is not None and target not in cls.serves:
            raise ProposalError(f"proposals={cls.name} cannot serve split {split_cfg.get('name')} (loader {target}): "
                                f"it needs COCO instance boxes (a RefCOCO/RefCOCO+/RefCOCOg split); "
                                f"use proposals=detections proposals.file=PATH or proposals=selective_search")

    def identity(self) -> Dict[str, Any]:
        return {}

    def bind(self, split) -> Dict[str, str]:
        return {}

    def for_image(self, image_path: str) -> ProposalSet:
        raise NotImplementedError
