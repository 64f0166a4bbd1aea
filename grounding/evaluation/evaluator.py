"""The evaluator (detectron2's protocol: ``reset`` / ``process`` / ``evaluate``): it owns the record
of a row — IoU, hit under the split's comparison, pointing game — and the summary in metrics.json.

The runner only loops, resumes and writes: it asks :meth:`GroundingEvaluator.record` (or
:meth:`~GroundingEvaluator.skip_record`) for each row's line of predictions.jsonl, and metrics.json is
:meth:`~GroundingEvaluator.summarize` of the whole predictions file — in a run and in a merge alike.
A skipped row counts in ``n`` and as a miss, so accuracy is never inflated.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

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
    """Per-row records and the summary of a split evaluated with ``iou_threshold`` / ``iou_compare``."""

    def __init__(self, iou_threshold: float = 0.5, iou_compare: str = ">"):
        if not 0 < float(iou_threshold) < 1:
            raise ValueError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        hit(0.0, 0.5, iou_compare)  # validates the comparison
        self.iou_threshold, self.iou_compare = float(iou_threshold), iou_compare
        self.reset()

    # ---------------------------------------------------------------------------- one row
    def record(self, sample, pred_box, score_map, image_size, result=None) -> Dict[str, Any]:
        """The predictions.jsonl line of an evaluated row. ``result`` (optional): the method's answer; a
        proposal method's adds the row's ``proposals`` field, and its ``box=None`` (no usable proposal)
        is a recorded miss with the reason in ``miss``."""
        from .proposal_runs import proposal_row

        gt = [float(v) for v in sample.gt_box]
        if pred_box is None:
            rec = self.skip_record(sample, "")
            del rec["skipped"], rec["error"]
            rec.update(miss=getattr(result, "miss", None) or "no box", image_size=[int(v) for v in image_size],
                       proposals=proposal_row(result, gt, self.iou_threshold, self.iou_compare))
            return rec
        iou = float(box_iou(np.asarray(pred_box, dtype=np.float64), np.asarray(gt, dtype=np.float64)))
        rec = {"index": int(sample.index), "image": str(sample.image_path), "phrase": sample.phrase,
               "gt_box": gt, "pred_box": [float(v) for v in pred_box], "iou": iou,
               "hit": bool(hit(iou, self.iou_threshold, self.iou_compare)),
               "pointing": None if score_map is None else bool(pointing_hit(score_map, gt, image_size)),
               "image_size": [int(image_size[0]), int(image_size[1])]}
        if len(getattr(sample, "phrases", []) or []) > 1:
            rec["phrases"] = list(sample.phrases)
        if getattr(sample, "phrase_type", None):
            rec["phrase_type"] = sample.phrase_type
        prop = proposal_row(result, gt, self.iou_threshold, self.iou_compare)
        if prop is not None:
            rec["proposals"] = prop
        return rec

    @staticmethod
    def skip_record(sample, error: str) -> Dict[str, Any]:
        """The line of a row that could not be evaluated: a recorded miss, retried on the next run."""
        return {"index": int(sample.index), "image": str(sample.image_path), "phrase": getattr(sample, "phrase", None),
                "gt_box": [float(v) for v in (getattr(sample, "gt_box", None) or [])], "pred_box": None, "iou": 0.0,
                "hit": False, "pointing": None, "skipped": True, "error": error}

    # ----------------------------------------------------------------------- the protocol
    def reset(self) -> None:
        self._records: List[Dict[str, Any]] = []

    def process(self, records: Iterable[Dict[str, Any]]) -> None:
        self._records.extend(records)

    def evaluate(self) -> Dict[str, Any]:
        recs = self._records
        skipped = [int(r.get("index", i)) for i, r in enumerate(recs)
                   if r.get("skipped") or (r.get("pred_box") is None and not r.get("miss"))]
        ious = np.asarray([0.0 if (r.get("skipped") or r.get("pred_box") is None)
                           else float(box_iou(r["pred_box"], r["gt_box"])) for r in recs], dtype=np.float64)
        n = len(ious)
        scored = [r.get("pointing") for r in recs if not (r.get("skipped") or r.get("pred_box") is None)]
        scored = [p for p in scored if p is not None]
        # pointing game only for methods with score maps; a skipped row is a miss there too
        pointing = float(sum(scored) / (len(scored) + len(skipped))) if scored else None
        out = {
            "accuracy": float(hit(ious, self.iou_threshold, self.iou_compare).mean()) if n else 0.0,
            "n": n,
            "iou_threshold": self.iou_threshold,
            "iou_compare": self.iou_compare,
            "acc_at": {f"{t:.1f}": (float(hit(ious, t, self.iou_compare).mean()) if n else 0.0) for t in THRESHOLDS},
            "mean_iou": float(ious.mean()) if n else 0.0,
            "pointing_game": pointing,
            "n_skipped": len(skipped),
            "skipped": skipped,
        }
        out.update(self.breakdowns(recs))
        from .proposal_runs import proposal_summary

        prop = proposal_summary(recs)
        if prop is not None:
            out["proposals"] = prop
            out["n_missed_no_proposal"] = sum(bool(r.get("miss")) for r in recs)
        return out

    def breakdowns(self, records) -> Dict[str, Any]:
        """Accuracy by box size, area fraction, phrase type and length, and over IoU thresholds."""
        from .breakdown import breakdowns

        return {"breakdowns": breakdowns(records, self.iou_threshold, self.iou_compare)}

    def summarize(self, records: Iterable[Dict[str, Any]], extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """metrics.json of ``records`` (a whole predictions file, in row order)."""
        self.reset()
        self.process(records)
        out = self.evaluate()
        out.update(extra or {})
        return out
