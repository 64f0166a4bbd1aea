"""The one reader (and atomic writer) of a run directory's files: ``run.json``, ``metrics.json``,
``predictions.jsonl``.

One policy for a corrupt file: every reader raises :class:`RunError` naming the file and the fix. Code that
writes into a run directory (runner, merge) lets it stop the command (exit 2). Code that only gathers runs
for display (tables, the sweep summary, the report) leaves that run out with a one-line warning carrying the
same message (:func:`skip_unreadable`) — never a silent skip, never a traceback. A leaf module: it imports
nothing of the harness but its error class.
"""
from __future__ import annotations

import json
import logging
import numbers
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TypeVar

from ..errors import GroundingError

log = logging.getLogger(__name__)
PRED_FILE, METRICS_FILE, RUN_FILE = "predictions.jsonl", "metrics.json", "run.json"
RERUN_FIX = "rerun that run to rewrite it, or move its directory away"
T = TypeVar("T")


class RunError(GroundingError, RuntimeError):
    """A run directory cannot be used as asked (another writer, another configuration, a corrupt file)."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace`` so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _prediction(path: Path, line: bytes, line_no: int) -> Dict[str, Any]:
    row = json.loads(line)
    if not isinstance(row, dict) or isinstance(row.get("index"), bool) or not isinstance(row.get("index"), int):
        raise RunError(f"{path}: line {line_no} is not a prediction record (a JSON object with an integer "
                       f"\"index\"); refusing to use this run directory (move the file away, or fix that line)")
    return row


def read_predictions(path: Path, repair: bool = False) -> List[Dict[str, Any]]:
    """Complete prediction lines of ``path`` ([] when there is no file). A torn last line (no newline or bad
    JSON) is dropped, and with ``repair`` cut from the file so that appending continues cleanly; a bad line
    in the middle is corruption: :class:`RunError` naming the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, good_end, pos, line_no = [], 0, 0, 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line, line_no = data[pos:nl], line_no + 1
        try:
            if line.strip():
                rows.append(_prediction(path, line, line_no))
        except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
            if data.find(b"\n", nl + 1) >= 0:  # a bad line in the middle is corruption, not a torn end
                raise RunError(f"{path}: line {line_no} is not valid JSON; refusing to use this run directory "
                               f"(move the file away, or fix that line)") from None
            break
        good_end = pos = nl + 1
    if good_end < len(data):
        log.warning("%s: dropping a torn last line (%d bytes); it will be recomputed", path, len(data) - good_end)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(good_end)
    return rows


def read_json_object(p: Path, fix: str) -> Dict[str, Any]:
    """A JSON object from ``p``, or a :class:`RunError` naming the file and the ``fix``."""
    try:
        d = json.loads(Path(p).read_text())
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        return d
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{p} is corrupt ({e}); {fix}") from None


def read_identity(run_dir: Path) -> Optional[Dict[str, Any]]:
    """``run_dir/run.json`` (the run's identity), or None when there is none."""
    p = Path(run_dir) / RUN_FILE
    if not p.exists():
        return None
    return read_json_object(p, "move the run directory away (or delete it) to start over")


def read_metrics(run_dir: Path, fix: str = RERUN_FIX) -> Optional[Dict[str, Any]]:
    """``run_dir/metrics.json`` (the run's summary), or None when there is none. Corrupt — not a JSON object,
    or without a numeric ``accuracy`` — is a :class:`RunError` naming the file and ``fix``."""
    p = Path(run_dir) / METRICS_FILE
    if not p.exists():
        return None
    d = read_json_object(p, fix)
    acc = d.get("accuracy")
    if not isinstance(acc, numbers.Real) or isinstance(acc, bool):
        raise RunError(f"{p} is corrupt (no numeric \"accuracy\": {json.dumps(acc)[:40]}); {fix}")
    return d


def skip_unreadable(read: Callable[[], T]) -> Optional[T]:
    """``read()``, or None after a one-line warning when a run file is corrupt: how the gatherers of runs
    for display (tables, sweep summary, report) treat a corrupt file — the run is left out, visibly."""
    try:
        return read()
    except RunError as e:
        log.warning("warning: %s — this run is left out", " ".join(str(e).split()))
        return None
