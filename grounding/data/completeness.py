"""Is a run's split the published test set? Its row count against the split YAML's ``expected_rows``.

A truncated CSV, a refs pickle of another partition or a half-extracted annotation folder gives fewer (or
other) rows than the paper's test set; a run on such a split still runs, but says so: a warning in its log,
``"complete": false`` with both counts in ``run.json`` and ``metrics.json``, a mark in the tables. Light
(no torch, no pandas): the runner, the tables and ``grounding-data check`` all ask here.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

KEYS = ("complete", "split_rows", "expected_rows")  # what run.json and metrics.json record
INCOMPLETE_MARK = " ‡"
INCOMPLETE_NOTE = ("‡ incomplete split: the run's split had another number of rows than the published test set "
                   "(`expected_rows` in its YAML; `grounding-data check` says what differs) — not comparable "
                   "with the paper's number.")


def completeness(split_cfg, n_rows: int, limit: Optional[int] = None, shard: Optional[str] = None) -> Dict[str, Any]:
    """``{"complete", "split_rows", "expected_rows"}`` of a run: ``complete`` is ``n_rows == expected_rows``,
    or None when the split has no published size or ``limit`` asked for a subset on purpose.

    ``n_rows``: rows the split's loader gave for the whole split (before ``shard`` picks its part; a shard
    of a complete split is complete). A mismatch without ``limit`` is logged as a warning.
    """
    expected = _get(split_cfg, "expected_rows")
    expected = None if expected is None else int(expected)
    out = {"complete": None, "split_rows": int(n_rows), "expected_rows": expected}
    if limit is not None or expected is None:
        return out
    out["complete"] = int(n_rows) == expected
    if not out["complete"]:
        log.warning("split %s has %d rows but its published size is %d (%s): this run is marked incomplete "
                    "(\"complete\": false in run.json and metrics.json); `grounding-data check split=%s` says what "
                    "differs", _get(split_cfg, "name"), n_rows, expected,
                    _get(split_cfg, "expected_rows_source") or "split YAML", _get(split_cfg, "name"))
    return out


def completeness_fields(identity: Dict[str, Any]) -> Dict[str, Any]:
    """The completeness keys of a run identity (run.json), for its metrics.json."""
    return {k: identity[k] for k in KEYS if k in identity}


def mark_incomplete(cell: str, complete) -> str:
    """A table cell, marked ``‡`` when its run's split was not the published test set (``complete`` False)."""
    flagged = complete is not None and not isinstance(complete, float) and complete == False  # noqa: E712 (numpy bool)
    return f"{cell}{INCOMPLETE_MARK}" if cell and flagged else cell


def skipped_for_missing_images(run_dir) -> int:
    """Rows of ``run_dir``'s predictions recorded as skipped because their image file was not found."""
    p = Path(run_dir) / "predictions.jsonl"
    if not p.is_file():
        return 0
    n = 0
    with open(p, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("skipped") and "FileNotFoundError" in str(r.get("error", "")):
                n += 1
    return n


def summary_suffix(metrics: Dict[str, Any], run_dir) -> str:
    """What the final summary line adds: rows skipped for missing images, and an incomplete split."""
    s = f", skipped for missing images={skipped_for_missing_images(run_dir)}" if metrics.get("n_skipped") else ""
    if metrics.get("complete") is False:
        s += f", INCOMPLETE split: {metrics.get('split_rows')} rows, published {metrics.get('expected_rows')}"
    return s


def _get(cfg, key):
    return cfg.get(key) if hasattr(cfg, "get") else getattr(cfg, key, None)
