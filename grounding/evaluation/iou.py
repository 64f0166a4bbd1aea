"""The rules of a hit, shared by the evaluator and the breakdowns: the one IoU of the package, the
comparison with the threshold, and a row's IoU (0 for a skipped row)."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))
COMPARISONS = (">", ">=")


def box_iou(a, b) -> np.ndarray:
    """IoU of [x1, y1, x2, y2] boxes in continuous coordinates (area = (x2−x1)·(y2−y1), no +1, as the
    reference's ``matched_bbox_iou``); row-wise for N×4 arrays. A zero union gives 0. The one IoU of
    this package."""
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


def hit(iou, threshold: float, compare: str = ">"):
    """A prediction counts when IoU > threshold (the paper, strict) or ≥ threshold (REC literature)."""
    if compare not in COMPARISONS:
        raise ValueError(f"iou_compare must be one of {COMPARISONS}, got {compare!r}")
    iou = np.asarray(iou)
    return iou > threshold if compare == ">" else iou >= threshold


def row_iou(rec: Dict[str, Any]) -> float:
    """IoU of a prediction record's box with its GT box; 0 for a skipped row (no prediction)."""
    if rec.get("skipped") or rec.get("pred_box") is None or len(rec.get("gt_box") or []) != 4:
        return 0.0
    return float(box_iou(rec["pred_box"], rec["gt_box"]))
