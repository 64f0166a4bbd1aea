"""Evaluation runner: stream a split, reuse per-image work, write predictions as they are made, resume.

Layout of a run directory::

    run.json            what the predictions depend on (checked on restart)
    predictions.jsonl   one JSON object per evaluated row, appended as rows finish
    metrics.json        Acc@IoU and friends, written atomically at the end
    figures/            Fig. 4-style pictures for the first ``viz`` rows
    maps/               a small score-map thumbnail per row, for grounding-report (``save_maps``)

Restarting on the same directory skips rows already in ``predictions.jsonl`` (a torn last line,
from a killed process, is detected and redone).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .mapstore import save_score_map
from .metrics import GroundingEvaluator, box_iou, pointing_hit

log = logging.getLogger(__name__)
IDENTITY_KEYS_IN_METRICS = ("split", "method", "backbone", "backbone_key", "overrides")

PRED_FILE, METRICS_FILE, RUN_FILE = "predictions.jsonl", "metrics.json", "run.json"


# ---------------------------------------------------------------------------------------- files
def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and ``os.replace`` so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_predictions(path: Path, repair: bool = False) -> List[Dict[str, Any]]:
    """Complete prediction lines of ``path``. A torn last line (no newline or bad JSON) is dropped,
    and with ``repair`` cut from the file so that appending continues cleanly."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    rows, good_end, pos = [], 0, 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        try:
            if line.strip():
                rows.append(json.loads(line))
        except json.JSONDecodeError:
            if data.find(b"\n", nl + 1) >= 0:  # a bad line in the middle is corruption, not a torn end
                raise ValueError(f"{path}: line {len(rows) + 1} is not valid JSON; refusing to resume")
            break
        good_end = pos = nl + 1
    if good_end < len(data):
        log.warning("%s: dropping a torn last line (%d bytes); it will be recomputed", path, len(data) - good_end)
        if repair:
            with open(path, "r+b") as f:
                f.truncate(good_end)
    return rows


class PredictionWriter:
    """Append-only JSONL writer: one flushed line per row, fsync every ``sync_every`` rows and on close."""

    def __init__(self, path: Path, sync_every: int = 20):
        self.f = open(path, "a")
        self.sync_every, self.n = sync_every, 0

    def write(self, row: Dict[str, Any]) -> None:
        self.f.write(json.dumps(row) + "\n")
        self.f.flush()
        self.n += 1
        if self.n % self.sync_every == 0:
            os.fsync(self.f.fileno())

    def close(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


# --------------------------------------------------------------------------------------- runner
def select_shard(samples: Sequence, shard: Optional[str]) -> List:
    """``shard="i/n"``: rows whose position p in the split has p % n == i (disjoint, covering)."""
    if not shard:
        return list(samples)
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {shard!r}")
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {shard!r}: need 0 <= i < n")
    return [s for p, s in enumerate(samples) if p % n == i]


def group_by_image(samples: Iterable) -> "OrderedDict[str, list]":
    groups: "OrderedDict[str, list]" = OrderedDict()
    for s in samples:
        groups.setdefault(s.image_path, []).append(s)
    return groups


def check_run_identity(run_dir: Path, identity: Dict[str, Any]) -> None:
    """Refuse to mix predictions of different configurations in one run directory."""
    p = run_dir / RUN_FILE
    if p.exists():
        old = json.loads(p.read_text())
        diff = {k: (old.get(k), identity.get(k)) for k in set(old) | set(identity) if old.get(k) != identity.get(k)}
        if diff:
            raise RuntimeError(f"{run_dir} holds predictions of another configuration; differing: {diff}. "
                               f"Use another run directory (hydra.run.dir=...) or delete it.")
    else:
        atomic_write_text(p, json.dumps(identity, indent=1, sort_keys=True))


def summarise(rows: List[Dict[str, Any]], identity: Dict[str, Any]) -> Dict[str, Any]:
    """metrics.json content for prediction rows (in row order) of a run with this ``identity``."""
    ev = GroundingEvaluator(iou_threshold=identity["iou_threshold"])
    ev.process(rows)
    metrics = ev.evaluate()
    metrics.update({k: identity[k] for k in IDENTITY_KEYS_IN_METRICS if k in identity})
    metrics["params"] = identity.get("params", {})
    return metrics


def _row_record(sample, pred_box, score_map, image_size, extra=None) -> Dict[str, Any]:
    gt = [float(v) for v in sample.gt_box]
    iou = float(box_iou(np.asarray(pred_box, dtype=np.float64), np.asarray(gt, dtype=np.float64)))
    rec = {"index": int(sample.index), "image": str(sample.image_path), "phrase": sample.phrase,
           "gt_box": gt, "pred_box": [float(v) for v in pred_box], "iou": iou,
           # report: image size (w, h) for box-area fractions; Flickr30k Entities phrase type when known
           "image_size": [int(image_size[0]), int(image_size[1])],
           "phrase_type": getattr(sample, "phrase_type", None)}
    if len(getattr(sample, "phrases", []) or []) > 1:
        rec["phrases"] = list(sample.phrases)
    rec["pointing"] = None if score_map is None else bool(pointing_hit(score_map, gt, image_size))
    rec.update(extra or {})
    return rec


def _skip_record(sample, error: str) -> Dict[str, Any]:
    return {"index": int(sample.index), "image": str(sample.image_path), "phrase": getattr(sample, "phrase", None),
            "gt_box": list(getattr(sample, "gt_box", []) or []), "pred_box": None, "iou": 0.0, "hit": False,
            "pointing": None, "skipped": True, "error": error}


class _Preloader:
    """Map-style dataset: the CPU-side preparation of each image, run in DataLoader workers."""

    def __init__(self, method, paths):
        self.method, self.paths = method, paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return self.paths[i], self.method.preload(self.paths[i])
        except Exception as e:  # reported per row by the main process
            return self.paths[i], e


def prepared_images(method, paths: List[str], workers: int = 0):
    """Yield (path, prepared-or-exception) in order. With ``workers`` > 0 and a method that can
    ``preload``, decoding and SLIC run in DataLoader workers, overlapping the model's work."""
    if workers and hasattr(method, "preload") and len(paths) > 1:
        import torch.utils.data as tud

        loader = tud.DataLoader(_Preloader(method, paths), batch_size=None, shuffle=False, num_workers=int(workers),
                                prefetch_factor=4, persistent_workers=False)
        for path, prep in loader:
            yield path, (prep if isinstance(prep, Exception) else method.attach(prep))
        return
    for path in paths:
        try:
            yield path, method.prepare(path)  # lazy: decoding and features happen on first use
        except Exception as e:
            yield path, e


def run_split(method, samples: Sequence, run_dir: Path, *, identity: Dict[str, Any], iou_threshold: float,
              on_error: str = "raise", viz: int = 0, progress: bool = True, workers: int = 0,
              save_maps: bool = True) -> Dict[str, Any]:
    """Evaluate ``method`` (an object with ``prepare(image)`` and ``localize_prepared(prep, phrase)``)
    on ``samples``; returns the metrics dict (also written to ``metrics.json``). ``save_maps``: keep a
    small score-map thumbnail per row under ``maps/`` for the HTML report (grounding.evaluation.mapstore)."""
    from tqdm import tqdm

    from ..data.images import load_image

    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_run_identity(run_dir, identity)
    pred_path = run_dir / PRED_FILE
    done = {r["index"] for r in read_predictions(pred_path, repair=True)}
    todo = [s for s in samples if s.index not in done]
    viz_rows = {s.index for s in list(samples)[:max(0, int(viz))]}
    if done:
        log.info("resuming %s: %d rows done, %d to go", run_dir, len(samples) - len(todo), len(todo))

    writer = PredictionWriter(pred_path)
    timed_rows, timed_seconds, first_image = 0, 0.0, True
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), unit="row", disable=not progress,
               dynamic_ncols=True, desc=identity.get("split", "eval"))
    try:
        groups = group_by_image(todo)
        good = {p: [s for s in rows if not getattr(s, "error", None)] for p, rows in groups.items()}
        for image_path, rows in groups.items():  # rows the loader already flagged (on_error=skip)
            for s in rows:
                if getattr(s, "error", None):
                    writer.write(_skip_record(s, s.error))
                    bar.update(1)
        paths = [p for p, rows in good.items() if rows]
        t0 = time.perf_counter()
        for image_path, prepared in prepared_images(method, paths, workers):
            rows = good[image_path]
            try:
                if isinstance(prepared, Exception):
                    raise prepared
                w, h = prepared.image_size
            except Exception as e:  # missing or unreadable image
                msg = f"{image_path}: {type(e).__name__}: {e}"
                if on_error == "raise":
                    raise RuntimeError(f"row {rows[0].index} (CSV row {getattr(rows[0], 'csv_row', '?')}): {msg}") from e
                for s in rows:
                    writer.write(_skip_record(s, msg))
                    bar.update(1)
                continue
            for s in rows:
                try:
                    out = method.localize_prepared(prepared, s.phrase)
                except Exception as e:
                    msg = f"{type(e).__name__}: {e}"
                    if on_error == "raise":
                        raise RuntimeError(f"row {s.index} (CSV row {getattr(s, 'csv_row', '?')}, image "
                                           f"{image_path}, phrase {s.phrase!r}): {msg}") from e
                    writer.write(_skip_record(s, msg))
                    bar.update(1)
                    continue
                rec = _row_record(s, out.box, out.score_map, (w, h))
                rec["hit"] = bool(rec["iou"] > iou_threshold)
                if save_maps:  # report: score-map thumbnail, written before the row so a resumed run has it
                    save_score_map(run_dir, s.index, out.score_map)
                writer.write(rec)
                if s.index in viz_rows:
                    from .viz import save_figure

                    save_figure(run_dir / "figures" / f"{s.index:06d}.png", load_image(image_path), out.score_map, out.box,
                                s.phrase, gt_box=rec["gt_box"], iou=rec["iou"], method=identity.get("method"),
                                backbone=identity.get("backbone"))
                bar.update(1)
            now = time.perf_counter()
            if first_image:  # warm-up (lazy init, allocator, worker start) is excluded from timing
                first_image = False
            else:
                timed_rows += len(rows)
                timed_seconds += now - t0
            t0 = now
    finally:
        writer.close()
        bar.close()

    preds = {r["index"]: r for r in read_predictions(pred_path)}
    # canonical order (by row index): a resumed, sharded-and-merged or uninterrupted run gives the same file
    atomic_write_text(pred_path, "".join(json.dumps(preds[i]) + "\n" for i in sorted(preds)))
    wanted = [s.index for s in samples]
    missing = [i for i in wanted if i not in preds]
    if missing:
        raise RuntimeError(f"{len(missing)} rows have no prediction after the run (e.g. {missing[:5]})")
    metrics = summarise([preds[i] for i in wanted], dict(identity, iou_threshold=iou_threshold))
    metrics["timing"] = {"rows_timed": timed_rows, "seconds": round(timed_seconds, 3),
                         "rows_per_second": round(timed_rows / timed_seconds, 4) if timed_seconds > 0 else None,
                         "device": identity.get("device"), "note": "first image excluded (warm-up); "
                         "rows computed in this invocation only"}
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(metrics, indent=1))
    return metrics
