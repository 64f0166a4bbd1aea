"""The evaluator (detectron2's protocol: ``reset`` / ``process`` / ``evaluate``): it owns the record
of a row — IoU, hit under the split's comparison, pointing game — and the summary in metrics.json.

The runner's loop calls :meth:`GroundingEvaluator.process` with each row and the method's output (a
:class:`RowOutput`) and writes the record it returns as the row's line of predictions.jsonl;
metrics.json is :meth:`~GroundingEvaluator.summarize` of the whole predictions file — in a run and in a
merge alike. A skipped row counts in ``n`` and as a miss, so accuracy is never inflated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .breakdown import breakdowns
from .proposal_runs import proposal_row, proposal_summary
from .iou import COMPARISONS, THRESHOLDS, box_iou, hit, row_iou  # noqa: F401  (the evaluator's rules)

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


@dataclass
class RowOutput:
    """A method's output for one row as the loop hands it to the evaluator: the box, the score map (or
    None) and the image size — or the error (a one-line message naming the row) that stopped the row."""

    box: Optional[Tuple[float, float, float, float]] = None
    score_map: Any = None
    image_size: Optional[Tuple[int, int]] = None
    result: Any = None  # the method's own result object (proposal rankers: .index, .scores)
    error: Optional[str] = None
    exception: Optional[BaseException] = None

    @classmethod
    def failed(cls, message: str, exception: Optional[BaseException] = None) -> "RowOutput":
        return cls(error=message, exception=exception)


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

    def process(self, inputs: Sequence[Any], outputs: Optional[Sequence[RowOutput]] = None) -> List[Dict[str, Any]]:
        """detectron2's ``process``: rows (``inputs``) and the method's outputs → their records, kept for
        :meth:`evaluate` and returned (the lines the runner writes). Without ``outputs``, ``inputs`` are
        records already (a predictions file)."""
        if outputs is None:
            recs = list(inputs)
        else:
            recs = [self.skip_record(s, o.error) if o.error is not None else
                    self.record(s, o.box, o.score_map, o.image_size, o.result) for s, o in zip(inputs, outputs)]
        self._records.extend(recs)
        return recs

    def evaluate(self) -> Dict[str, Any]:
        """Accuracy, Acc@t, mean IoU, pointing game and breakdowns of every record processed since :meth:`reset`."""
        recs = self._records
        skipped = [int(r.get("index", i)) for i, r in enumerate(recs)
                   if r.get("skipped") or (r.get("pred_box") is None and not r.get("miss"))]
        ious = np.asarray([row_iou(r) for r in recs], dtype=np.float64)
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
        out["breakdowns"] = breakdowns(recs, self.iou_threshold, self.iou_compare)
        prop = proposal_summary(recs)
        if prop is not None:
            out["proposals"] = prop
            out["n_missed_no_proposal"] = sum(bool(r.get("miss")) for r in recs)
        return out

    def summarize(self, records: Iterable[Dict[str, Any]], extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """metrics.json of ``records`` (a whole predictions file, in row order)."""
        self.reset()
        self.process(records)
        out = self.evaluate()
        out.update(extra or {})
        return out
