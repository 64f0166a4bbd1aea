"""Evaluation runner: loop over a split, reuse per-image work, write predictions as they are made, resume.

Layout of a run directory::

    run.json            the run's identity: everything its predictions depend on (checked on restart)
    predictions.jsonl   one JSON object per row (the evaluator's record), appended as rows finish
    metrics.json        the evaluator's summary of the whole predictions file, written atomically at the
                        end of a run (removed when a run starts, so it never outlives its predictions)
    figures/            Fig. 4-style pictures for the first ``viz`` rows
    maps/               a small score-map thumbnail per row, for grounding-report (``save_maps``)
    .lock               held (an OS lock, gone with its process) while a run writes here

Restarting on the same directory keeps the rows already in ``predictions.jsonl`` (a torn last line,
from a killed process, is redone) and evaluates again the rows recorded as skipped. A directory is
used only under the identity in its run.json (predictions without a run.json are never adopted).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence


from .evaluator import GroundingEvaluator
from .mapstore import save_score_map
from ..errors import GroundingError

log = logging.getLogger(__name__)
PRED_FILE, METRICS_FILE, RUN_FILE, LOCK_FILE = "predictions.jsonl", "metrics.json", "run.json", ".lock"


class RunError(GroundingError, RuntimeError):
    """A run directory cannot be used as asked (another writer, another configuration, a corrupt file)."""


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
    rows, good_end, pos, line_no = [], 0, 0, 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line, line_no = data[pos:nl], line_no + 1
        try:
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict) or isinstance(row.get("index"), bool) or not isinstance(row.get("index"), int):
                    raise RunError(f"{path}: line {line_no} is not a prediction record (a JSON object with an "
                                   f"integer \"index\"); refusing to use this run directory (move the file away, "
                                   f"or fix that line)")
                rows.append(row)
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


# ----------------------------------------------------------------------------------------- guards
class RunLock:
    """Exclusive, non-blocking OS lock on ``run_dir/.lock`` held for a whole run; a second process on the
    same directory fails at once. The lock dies with its process, so a killed run never blocks a resume."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.f = None

    def __enter__(self):
        import fcntl

        self.f = open(self.path, "a+")
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise RunError(f"{self.path.parent} is in use by another running evaluation; wait for it or use "
                           f"another run directory (hydra.run.dir=...)") from None
        self.f.seek(0)
        self.f.truncate()
        self.f.write(f"{os.getpid()}\n")
        self.f.flush()
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)
        self.f.close()


def identity_differences(old: Dict[str, Any], new: Dict[str, Any], prefix: str = "") -> List[str]:
    """Human-readable differences between two identities (nested keys joined by dots)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += identity_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {json.dumps(a, default=str)[:80]} -> {json.dumps(b, default=str)[:80]}")
    return out


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
    p = Path(run_dir) / RUN_FILE
    if not p.exists():
        return None
    return read_json_object(p, "move the run directory away (or delete it) to start over")


def check_run_identity(run_dir: Path, identity: Dict[str, Any]) -> None:
    """Refuse to mix predictions of different configurations in one run directory."""
    old = read_identity(run_dir)
    if old is None:
        pred = Path(run_dir) / PRED_FILE
        if pred.exists() and pred.stat().st_size > 0:  # predictions of an unknown configuration: never adopted
            raise RunError(f"{run_dir} holds {PRED_FILE} but no {RUN_FILE}, so the configuration of its predictions "
                           f"is unknown; move the directory away (or delete it) to start over")
        atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(identity, indent=1, sort_keys=True))
        return
    diff = identity_differences(old, json.loads(json.dumps(identity, default=str)))
    if diff:
        raise RunError(f"{run_dir} holds predictions of another configuration; differing: " + "; ".join(diff)
                       + ". Use another run directory (hydra.run.dir=...) or delete this one.")


# --------------------------------------------------------------------------------------- runner
def select_shard(samples: Sequence, shard: Optional[str]) -> List:
    """``shard="i/n"``: rows whose position p in the split has p % n == i (disjoint, covering)."""
    if not shard:
        return list(samples)
    i, n = parse_shard(shard)
    return [s for p, s in enumerate(samples) if p % n == i]


def parse_shard(shard: str):
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {shard!r}: need 0 <= i < n")
    return i, n


def group_by_image(samples: Iterable) -> "OrderedDict[str, list]":
    groups: "OrderedDict[str, list]" = OrderedDict()
    for s in samples:
        groups.setdefault(s.image_path, []).append(s)
    return groups


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


def _batches(items, size: int):
    """Lists of up to ``size`` consecutive items."""
    buf = []
    for x in items:
        buf.append(x)
        if len(buf) >= max(1, int(size)):
            yield buf
            buf = []
    if buf:
        yield buf


def _check_image_path(path: str, data_root: Optional[str]) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    if not os.path.isfile(path):
        raise IsADirectoryError(f"image path is not a file: {path}")
    if data_root:
        real, base = os.path.realpath(path), os.path.realpath(data_root)
        if os.path.commonpath([real, base]) != base:
            raise ValueError(f"image {path} resolves to {real}, outside the data root {base}")


def _where(s) -> str:
    return f"row {s.index} (annotation row {getattr(s, 'csv_row', '?')})"


def run_split(method, samples: Sequence, run_dir: Path, *, identity: Dict[str, Any], evaluator: GroundingEvaluator,
              on_error: str = "raise", viz: int = 0, progress: bool = True, workers: int = 0,
              data_root: Optional[str] = None, save_maps: bool = True, locked: bool = False,
              batch_images: int = 1) -> Dict[str, Any]:
    """Evaluate ``method`` (``prepare(image)`` and ``localize_prepared(prep, phrase)``) on ``samples``;
    returns the metrics dict (also written to ``metrics.json``). ``save_maps``: keep a small score-map
    thumbnail per row under ``maps/`` for the HTML report (grounding.evaluation.mapstore). ``locked``: the
    caller already holds the directory's :class:`RunLock`."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    run_dir = Path(run_dir)
    args = (method, samples, run_dir, identity, evaluator, on_error, viz, progress, workers, data_root, save_maps,
            batch_images)
    if locked:  # the caller holds this directory's RunLock (evaluate() takes it before loading a model)
        check_run_identity(run_dir, identity)
        return _run_locked(*args)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):
        check_run_identity(run_dir, identity)
        return _run_locked(*args)


def _run_locked(method, samples, run_dir, identity, evaluator, on_error, viz, progress, workers, data_root,
                save_maps, batch_images):
    from tqdm import tqdm

    from ..data.datasets import check_box_in_image
    from ..data.images import load_image

    pred_path = run_dir / PRED_FILE
    old = read_predictions(pred_path, repair=True)
    # metrics.json exists only while it is the summary of predictions.jsonl: a run that stops before its
    # end (an error under on_error=raise, a kill) leaves none, rather than the previous run's numbers
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    kept = [r for r in old if not r.get("skipped")]
    if len(kept) < len(old):  # rows skipped last time are evaluated again
        log.info("%s: retrying %d rows recorded as skipped", run_dir, len(old) - len(kept))
        atomic_write_text(pred_path, "".join(json.dumps(r) + "\n" for r in kept))
    done = {r["index"] for r in kept}
    todo = [s for s in samples if s.index not in done]
    viz_rows = {s.index for s in list(samples)[:max(0, int(viz))]}
    if done:
        log.info("resuming %s: %d rows done, %d to go", run_dir, len(samples) - len(todo), len(todo))

    writer = PredictionWriter(pred_path)
    timed_rows, timed_seconds, first_image = 0, 0.0, True
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), unit="row", disable=not progress,
               dynamic_ncols=True, desc=identity.get("split", {}).get("name", "eval")
               if isinstance(identity.get("split"), dict) else "eval")

    def fail(s, msg, exc=None):
        if on_error == "raise":
            raise RunError(f"{_where(s)}: {msg}") from exc
        writer.write(evaluator.skip_record(s, f"{_where(s)}: {msg}"))
        bar.update(1)

    try:
        groups = group_by_image(todo)
        good = {}
        for image_path, rows in groups.items():  # rows the loader already flagged (on_error=skip)
            good[image_path] = [s for s in rows if not getattr(s, "error", None)]
            for s in rows:
                if getattr(s, "error", None):
                    writer.write(evaluator.skip_record(s, s.error))
                    bar.update(1)
        paths = []
        for p, rows in good.items():
            if not rows:
                continue
            try:
                _check_image_path(p, data_root)
                paths.append(p)
            except (OSError, ValueError) as e:
                for s in rows:
                    fail(s, f"{type(e).__name__}: {e}", e)
        t0 = time.perf_counter()
        for batch in _batches(prepared_images(method, paths, workers), batch_images):
            if len(batch) > 1 and hasattr(method, "prepare_features"):
                try:  # several images' features in one forward (CUDA); errors show row by row below
                    method.prepare_features([(p, [s.phrase for s in good[path]]) for path, p in batch
                                             if not isinstance(p, Exception)])
                except Exception as e:  # noqa: BLE001
                    log.debug("batched features failed (%s); computing them image by image", e)
            for image_path, prepared in batch:
                rows = good[image_path]
                try:
                    if isinstance(prepared, Exception):
                        raise prepared
                    image_size = prepared.image_size
                except Exception as e:  # unreadable image, decompression bomb, ...
                    for s in rows:
                        fail(s, f"image {image_path}: {type(e).__name__}: {e}", e)
                    continue
                for s in rows:
                    try:
                        check_box_in_image(s.gt_box, image_size)
                        out = method.localize_prepared(prepared, s.phrase)
                    except Exception as e:
                        fail(s, f"image {image_path}, phrase {s.phrase!r}: {type(e).__name__}: {e}", e)
                        continue
                    rec = evaluator.record(s, out.box, out.score_map, image_size)
                    if save_maps and out.score_map is not None:  # before the row, so a resumed run has it
                        save_score_map(run_dir, s.index, out.score_map)
                    writer.write(rec)
                    if s.index in viz_rows:
                        from .viz import save_figure

                        save_figure(run_dir / "figures" / f"{s.index:06d}.png", load_image(image_path), out.score_map,
                                    out.box, s.phrase, gt_box=rec["gt_box"], iou=rec["iou"],
                                    method=(identity.get("method") or {}).get("name"),
                                    backbone=(identity.get("backbone") or {}).get("name"))
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
    wanted = [s.index for s in samples]
    extra = sorted(set(preds) - set(wanted))
    if extra:
        raise RunError(f"{pred_path} holds {len(extra)} rows that are not part of this run (e.g. {extra[:5]}); "
                       f"the directory was written by another configuration")
    # canonical order (by row index): a resumed, sharded-and-merged or uninterrupted run gives the same file
    atomic_write_text(pred_path, "".join(json.dumps(preds[i]) + "\n" for i in sorted(preds)))
    missing = [i for i in wanted if i not in preds]
    if missing:
        raise RunError(f"{len(missing)} rows have no prediction after the run (e.g. {missing[:5]})")
    metrics = summarise_run(run_dir, identity)
    metrics["timing"] = {"rows_timed": timed_rows, "seconds": round(timed_seconds, 3),
                         "rows_per_second": round(timed_rows / timed_seconds, 4) if timed_seconds > 0 else None,
                         "device": identity.get("device_type"), "note": "first image excluded (warm-up); "
                         "rows computed in this invocation only"}
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(metrics, indent=1))
    return metrics


def evaluator_for(identity: Dict[str, Any]) -> GroundingEvaluator:
    split = identity.get("split") or {}
    return GroundingEvaluator(split.get("iou_threshold", 0.5), split.get("iou_compare", ">"))


def backbone_label(backbone: Dict[str, Any]) -> Optional[str]:
    """How tables name a backbone: the config key for OpenAI weights; for open_clip also the arch and the
    weights file, so a LAION ViT-B/16 never shares a cell with OpenAI's."""
    key = backbone.get("key")
    if backbone.get("library") == "hf":  # a transformers folder: named by the folder
        return f"hf:{Path(str(backbone.get('path'))).name}"
    if backbone.get("library") == "open_clip":
        weights = Path(str(backbone.get("pretrained") or "")).name or "random"
        return f"{key} (open_clip {Path(str(backbone.get('arch'))).stem}, {weights})"
    return key


def summarise_run(run_dir: Path, identity: Dict[str, Any]) -> Dict[str, Any]:
    """metrics.json of a run directory: a pure function of its predictions file and its identity."""
    rows = read_predictions(Path(run_dir) / PRED_FILE)
    rows.sort(key=lambda r: r["index"])
    split = identity.get("split") or {}
    method = identity.get("method") or {}
    return evaluator_for(identity).summarize(rows, {
        "split": split.get("name"), "method": method.get("name"),
        "backbone": (identity.get("backbone") or {}).get("name"),
        "backbone_key": (identity.get("backbone") or {}).get("key"),
        "backbone_label": backbone_label(identity.get("backbone") or {}),
        "family": identity.get("family"), "params": identity.get("method_params", {}),
        "overrides": identity.get("overrides", {}), "tuned": identity.get("tuned", True),
        "shard": identity.get("shard"), "limit": identity.get("limit"),
    })
