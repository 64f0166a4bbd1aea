"""Runs for the report: find run directories, read them through :mod:`grounding.evaluation.runfiles` and
annotate their rows (grounding.evaluation.breakdown). A run with a corrupt file is left out with a one-line
warning, as ``grounding-tables`` and the sweep summary do."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from PIL import Image

from ..breakdown import annotate, breakdowns
from ..evaluator import COMPARISONS
from ..runfiles import METRICS_FILE, PRED_FILE, RunError, read_identity, read_metrics, read_predictions, skip_unreadable

CACHE_DIR = "report_cache"  # under each run directory: the report's thumbnails


@dataclass
class Run:
    dir: Path
    identity: Dict[str, Any]
    metrics: Dict[str, Any]
    records: List[Dict[str, Any]]
    iou_threshold: float
    iou_compare: str
    rows: List[Dict[str, Any]] = field(default_factory=list)  # breakdown.annotate output, record order
    breakdowns: Dict[str, Any] = field(default_factory=dict)
    suffix: str = ""  # told apart from another run with the same label

    @property
    def split(self) -> str:
        split = self.metrics.get("split") or self.identity.get("split")
        return str((split.get("name") if isinstance(split, dict) else split) or "?")

    @property
    def label(self) -> str:
        ident = {**self.identity, **self.metrics}  # metrics.json has the flat names; run.json nests them

        def name(v):
            return v.get("key") or v.get("name") if isinstance(v, dict) else v

        parts = [str(name(ident.get("method")) or "?"),
                 str(ident.get("backbone_key") or name(ident.get("backbone")) or "?")]
        over = ident.get("overrides") or {}
        if over:
            parts.append(",".join(f"{k}={v}" for k, v in sorted(over.items())))
        untuned = " † untuned α, σ" if ident.get("tuned") is False else ""
        return " · ".join(parts) + untuned + (f" [{self.suffix}]" if self.suffix else "")


def find_run_dirs(paths: Sequence) -> List[Path]:
    """Run directories (holding ``predictions.jsonl``) named by ``paths`` or found under them, in order."""
    out: List[Path] = []
    for p in paths:
        p = Path(p)
        if (p / PRED_FILE).is_file():
            found = [p]
        elif p.is_dir():
            found = sorted(q.parent for q in p.rglob(PRED_FILE) if CACHE_DIR not in q.parts)
        else:
            raise FileNotFoundError(f"{p}: no such run directory")
        if not found:
            raise FileNotFoundError(f"{p}: holds no {PRED_FILE} (run grounding-eval first, e.g. `make eval`)")
        out += [f for f in found if f.resolve() not in {o.resolve() for o in out}]
    return out


def _image_size(path: str, cache: Dict[str, Optional[List[int]]]) -> Optional[List[int]]:
    """(w, h) from the image header (no decoding), for runs made before rows recorded ``image_size``."""
    if path not in cache:
        try:
            with Image.open(path) as im:
                cache[path] = [int(im.size[0]), int(im.size[1])]
        except (OSError, ValueError):
            cache[path] = None
    return cache[path]


def _hit_rule(run_dir: Path, metrics: Dict[str, Any], identity: Dict[str, Any]):
    """(IoU threshold, comparison) of a run: metrics.json's, else run.json's, else (0.5, ">")."""
    thr = metrics.get("iou_threshold", identity.get("iou_threshold", 0.5))
    cmp_ = metrics.get("iou_compare", identity.get("iou_compare", ">"))
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 < thr < 1 or cmp_ not in COMPARISONS:
        raise RunError(f"{run_dir / METRICS_FILE} is corrupt (iou_threshold {thr!r}, iou_compare {cmp_!r}: want a "
                       f"number in (0, 1) and one of {COMPARISONS}); rerun that run to rewrite it")
    return float(thr), str(cmp_)


def load_run(run_dir) -> Run:
    """One run directory, its rows annotated; :class:`RunError` when a file of it is corrupt or it holds no
    prediction rows."""
    run_dir = Path(run_dir)
    identity = read_identity(run_dir) or {}
    metrics = read_metrics(run_dir) or {}
    records = read_predictions(run_dir / PRED_FILE)
    if not records:
        raise RunError(f"{run_dir / PRED_FILE}: no prediction rows; run grounding-eval on it (or leave it out)")
    sizes: Dict[str, Optional[List[int]]] = {}
    for r in records:
        if not r.get("image_size") and r.get("image"):
            size = _image_size(r["image"], sizes)
            if size:
                r["image_size"] = size
    thr, cmp_ = _hit_rule(run_dir, metrics, identity)
    run = Run(run_dir, identity, metrics, records, thr, cmp_)
    run.rows = annotate(records, thr, cmp_)
    run.breakdowns = breakdowns(records, thr, cmp_)  # recomputed: same buckets as the gallery, sizes filled in
    return run


def load_runs(paths: Sequence) -> List[Run]:
    """The readable runs named by ``paths`` (a corrupt one is left out with a warning), same-label runs told
    apart by their directory name; :class:`RunError` when none is left."""
    dirs = find_run_dirs(paths)
    runs = [r for r in (skip_unreadable(lambda: load_run(d)) for d in dirs) if r is not None]
    if not runs:
        raise RunError(f"none of the {len(dirs)} run director{'y' if len(dirs) == 1 else 'ies'} under "
                       f"{' '.join(map(str, paths))} can be read (see the warnings above); fix or rerun them")
    labels = [r.label for r in runs]
    for r in runs:
        if labels.count(r.label) > 1:
            r.suffix = r.dir.name
    return runs


def split_groups(runs: Sequence[Run]) -> List[List[int]]:
    """Run positions grouped by split (first-seen order): comparisons are made within a group."""
    g: "OrderedDict[str, List[int]]" = OrderedDict()
    for i, r in enumerate(runs):
        g.setdefault(r.split, []).append(i)
    return list(g.values())
