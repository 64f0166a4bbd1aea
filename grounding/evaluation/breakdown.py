"""Error analysis: accuracy broken down by what the row is, with the count next to every rate.

Pure functions over prediction records (the rows of ``predictions.jsonl``): no files, no model.
:func:`breakdowns` gives the dict stored under ``"breakdowns"`` in ``metrics.json``::

    {"iou_threshold": 0.5, "iou_compare": ">", "n": 93,
     "by_size":           {"small": {"n": 4, "hits": 1, "acc": 0.25}, "medium": {...}, "large": {...}},
     "by_area_fraction":  {"Q1": {..., "range": [lo, hi]}, ..., "Q4": {...}},
     "by_phrase_type":    {"people": {...}, ...},          # only rows whose split knows the type
     "by_phrase_length":  {"1": {...}, "2": {...}, "3": {...}, "4-5": {...}, "6+": {...}},
     "acc_curve":         {"0.1": {"n": .., "hits": .., "acc": ..}, ..., "0.9": {...}}}

Buckets with no row are kept (``n`` 0, ``acc`` ``None``) so that two runs always have the same keys.
A skipped row (no prediction) counts in ``n`` and as a miss, as in the evaluator (:func:`grounding.evaluation.iou.row_iou`).

Sources: box-size buckets are COCO's (``small`` area < 32², ``medium`` < 96², else ``large``;
pycocotools ``COCOeval.Params.areaRng``), measured on the ground-truth box in original-image pixels.
Phrase types are Flickr30k Entities' (Plummer et al. 2015); the paper's §5.3 / Fig. 5 discuss
failures on small objects and ambiguous phrases.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .iou import THRESHOLDS, hit, row_iou

SIZE_BUCKETS = ("small", "medium", "large")
COCO_SMALL, COCO_MEDIUM = 32 ** 2, 96 ** 2  # pycocotools areaRng: small < 32², medium < 96²
AREA_QUARTILES = ("Q1", "Q2", "Q3", "Q4")
PHRASE_TYPES = ("people", "clothing", "bodyparts", "animals", "vehicles", "instruments", "scene", "other")
LENGTH_BUCKETS = ("1", "2", "3", "4-5", "6+")
UNKNOWN = "unknown"


# ----------------------------------------------------------------------------------- per row
def gt_area(rec: Dict[str, Any]) -> Optional[float]:
    b = rec.get("gt_box") or []
    if len(b) != 4:
        return None
    return max(0.0, float(b[2]) - float(b[0])) * max(0.0, float(b[3]) - float(b[1]))


def size_bucket(rec: Dict[str, Any]) -> str:
    """COCO size of the GT box (original-image pixels): small < 32², medium < 96², large."""
    a = gt_area(rec)
    if a is None:
        return UNKNOWN
    return "small" if a < COCO_SMALL else "medium" if a < COCO_MEDIUM else "large"


def area_fraction(rec: Dict[str, Any]) -> Optional[float]:
    """GT box area over image area; ``None`` without ``image_size`` ([w, h])."""
    a, size = gt_area(rec), rec.get("image_size")
    if a is None or not size or len(size) != 2 or size[0] <= 0 or size[1] <= 0:
        return None
    return a / (float(size[0]) * float(size[1]))


def length_bucket(phrase: Optional[str]) -> str:
    """Phrase length in words (whitespace-separated): 1, 2, 3, 4-5, 6+."""
    n = len(str(phrase or "").split())
    if n == 0:
        return UNKNOWN
    return str(n) if n <= 3 else "4-5" if n <= 5 else "6+"


def phrase_type(rec: Dict[str, Any]) -> Optional[str]:
    t = rec.get("phrase_type")
    return str(t) if t else None


def area_edges(fractions: Iterable[Optional[float]]) -> Optional[List[float]]:
    """Quartile edges (25th, 50th, 75th percentiles) of the known area fractions, or ``None``."""
    f = np.asarray([v for v in fractions if v is not None], dtype=np.float64)
    if f.size == 0:
        return None
    return [float(v) for v in np.quantile(f, [0.25, 0.5, 0.75])]


def area_bucket(frac: Optional[float], edges: Optional[Sequence[float]]) -> str:
    """Q1: frac ≤ e25, Q2: ≤ e50, Q3: ≤ e75, Q4: above."""
    if frac is None or edges is None:
        return UNKNOWN
    return AREA_QUARTILES[int(np.searchsorted(np.asarray(edges), frac, side="left"))]


def annotate(records: Sequence[Dict[str, Any]], iou_threshold: float, iou_compare: str = ">") -> List[Dict[str, Any]]:
    """Per row: ``iou``, ``hit`` under the run's rule, and its bucket in each breakdown."""
    fracs = [area_fraction(r) for r in records]
    edges = area_edges(fracs)
    out = []
    for r, f in zip(records, fracs):
        iou = row_iou(r)
        out.append({"index": r.get("index"), "iou": iou, "hit": bool(hit(iou, iou_threshold, iou_compare)),
                    "size": size_bucket(r), "area_fraction": f, "area": area_bucket(f, edges),
                    "phrase_type": phrase_type(r), "length": length_bucket(r.get("phrase")),
                    "skipped": bool(r.get("skipped") or r.get("pred_box") is None)})
    return out


# ---------------------------------------------------------------------------------- tables
def rate(hits: int, n: int) -> Dict[str, Any]:
    return {"n": int(n), "hits": int(hits), "acc": (hits / n) if n else None}


def _group(rows: Sequence[Dict[str, Any]], key: str, order: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Accuracy per value of ``key`` in ``order`` (empty buckets kept), then other values seen, sorted."""
    seen = [r[key] for r in rows if r[key] is not None]
    keys = list(order) + sorted(set(seen) - set(order))
    out = {}
    for k in keys:
        sel = [r["hit"] for r in rows if r[key] == k]
        if k == UNKNOWN and not sel:
            continue
        out[k] = rate(sum(sel), len(sel))
    return out


def breakdowns(records: Sequence[Dict[str, Any]], iou_threshold: float, iou_compare: str = ">") -> Dict[str, Any]:
    """The ``metrics.json["breakdowns"]`` dict (see module doc) of prediction ``records``."""
    rows = annotate(records, iou_threshold, iou_compare)
    ious = np.asarray([r["iou"] for r in rows], dtype=np.float64)
    edges = area_edges(r["area_fraction"] for r in rows)
    by_area = _group(rows, "area", AREA_QUARTILES) if edges is not None else {}
    if edges is not None:
        lo = [0.0] + edges
        hi = edges + [1.0]
        for i, q in enumerate(AREA_QUARTILES):
            by_area[q]["range"] = [lo[i], hi[i]]
    typed = [r for r in rows if r["phrase_type"]]
    return {
        "iou_threshold": float(iou_threshold),
        "iou_compare": iou_compare,
        "n": len(rows),
        "by_size": _group(rows, "size", SIZE_BUCKETS),
        "by_area_fraction": by_area,
        "by_phrase_type": _group(typed, "phrase_type", PHRASE_TYPES) if typed else {},
        "by_phrase_length": _group(rows, "length", LENGTH_BUCKETS),
        "acc_curve": {f"{t:.1f}": rate(int(hit(ious, t, iou_compare).sum()), len(ious)) for t in THRESHOLDS},
    }


BREAKDOWN_TITLES = {
    "by_size": "GT box size (COCO: small < 32², medium < 96² px)",
    "by_area_fraction": "GT box area / image area (quartiles)",
    "by_phrase_type": "Phrase type (Flickr30k Entities)",
    "by_phrase_length": "Phrase length (words)",
}


def delta(a: Dict[str, Any], b: Dict[str, Any]) -> Optional[float]:
    """acc(b) − acc(a) for two rate dicts; ``None`` when either is empty."""
    if a.get("acc") is None or b.get("acc") is None:
        return None
    return b["acc"] - a["acc"]
