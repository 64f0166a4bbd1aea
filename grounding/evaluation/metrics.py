"""Stage 6 — metrics: Acc@IoU (strict IoU > threshold, as the reference), pointing game, mean IoU.

The evaluator follows detectron2's evaluator protocol: ``reset()``, ``process(records)``,
``evaluate()``. A skipped row counts in ``n`` and as a miss, so accuracy is never inflated.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import numpy as np

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def default_iou_threshold(split: str) -> float:
    """0.5 for Flickr30k (and the demo), 0.3 for Visual Genome — the paper's protocol."""
    s = split.lower()
    if s.startswith("vg"):
        return 0.3
    if s.startswith(("flickr", "demo")):
        return 0.5
    raise ValueError(f"no default IoU threshold for split {split!r}")


def box_iou(a, b) -> np.ndarray:
    """IoU of [x1, y1, x2, y2] boxes in continuous coordinates (area = (x2−x1)·(y2−y1), no +1, as the
    reference's ``matched_bbox_iou``); row-wise for N×4 arrays. A zero union gives 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    lt = np.maximum(a[..., :2], b[..., :2])
    rb = np.minimum(a[..., 2:], b[..., 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return iou


def hit(iou, threshold: float):
    """A prediction counts when IoU > threshold (strictly, as the reference)."""
    return np.asarray(iou) > threshold


def pointing_hit(score_map: np.ndarray, gt_box, image_size) -> bool:
    """Pointing game: the centre of the score map's maximum cell (first maximum), mapped to image
    pixels, lies inside the GT box (borders included). ``image_size`` is (width, height)."""
    m = np.asarray(score_map)
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    w, h = image_size
    x = (c + 0.5) * w / m.shape[1]
    y = (r + 0.5) * h / m.shape[0]
    x1, y1, x2, y2 = gt_box
    return bool(x1 <= x <= x2 and y1 <= y <= y2)


class GroundingEvaluator:
    """Accumulate per-row records (``gt_box``, ``pred_box``, optional ``pointing`` and ``skipped``)."""

    def __init__(self, iou_threshold: float = 0.5):
        self.iou_threshold = float(iou_threshold)
        self.reset()

    def reset(self) -> None:
        self._ious: List[float] = []
        self._pointing: List[Optional[bool]] = []  # rows that were not skipped
        self._skipped: List[int] = []

    def process(self, records: Iterable[Dict]) -> None:
        for r in records:
            if r.get("skipped") or r.get("pred_box") is None:
                self._skipped.append(int(r.get("index", len(self._ious))))
                self._ious.append(0.0)
                continue
            self._ious.append(float(box_iou(r["pred_box"], r["gt_box"])))
            self._pointing.append(r.get("pointing"))

    def evaluate(self) -> Dict:
        ious = np.asarray(self._ious, dtype=np.float64)
        n = len(ious)
        acc = float(hit(ious, self.iou_threshold).mean()) if n else 0.0
        # pointing game only for methods with score maps; a skipped row is a miss there too
        scored = [p for p in self._pointing if p is not None]
        pointing = float(sum(scored) / (len(scored) + len(self._skipped))) if scored else None
        return {
            "accuracy": acc,
            "n": n,
            "iou_threshold": self.iou_threshold,
            "acc_at": {f"{t:.1f}": (float(hit(ious, t).mean()) if n else 0.0) for t in THRESHOLDS},
            "mean_iou": float(ious.mean()) if n else 0.0,
            "pointing_game": pointing,
            "n_skipped": len(self._skipped),
            "skipped": self._skipped,
        }
