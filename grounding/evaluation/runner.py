"""Evaluation runner: the loop over a split and the run directory's bookkeeping, apart.

:func:`inference_on_dataset` is the loop (detectron2's): per row, the method's answer (the protocol of
:mod:`grounding.methods.base`) → the evaluator's ``process`` → the run directory. :class:`RunDirectory`
is the bookkeeping: lock, identity, resume, retry of skips, the ``on_error`` policy, canonical order,
metrics. :func:`run_split` joins them.

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
import shutil
import time
from collections import OrderedDict
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .evaluator import GroundingEvaluator, RowOutput
from .mapstore import save_score_map
from .runfiles import (METRICS_FILE, PRED_FILE, RUN_FILE, RunError, atomic_write_text, read_identity,  # noqa: F401
                       read_json_object, read_predictions)
from ..data.datasets import check_box_in_image
from ..errors import GroundingError, check_on_error  # noqa: F401
from ..methods.base import ConfigError, hook
from ..data.completeness import completeness_fields

log = logging.getLogger(__name__)
LOCK_FILE = ".lock"


# ---------------------------------------------------------------------------------------- files
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


# Bookkeeping derived from the rest of the identity (what differs from the defaults, the "tuned" mark): a change
# of how it is derived never makes predictions differ, so it is brought up to date instead of refused.
DERIVED = ("overrides", "tuned")


def check_run_identity(run_dir: Path, identity: Dict[str, Any]) -> None:
    """Refuse to mix predictions of different configurations in one run directory; an identity differing only in
    :data:`DERIVED` fields is rewritten with the new ones."""
    old = read_identity(run_dir)
    if old is None:
        pred = Path(run_dir) / PRED_FILE
        if pred.exists() and pred.stat().st_size > 0:  # predictions of an unknown configuration: never adopted
            raise RunError(f"{run_dir} holds {PRED_FILE} but no {RUN_FILE}, so the configuration of its predictions "
                           f"is unknown; move the directory away (or delete it) to start over")
        atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(identity, indent=1, sort_keys=True))
        return
    new = json.loads(json.dumps(identity, default=str))
    diff = identity_differences({k: v for k, v in old.items() if k not in DERIVED},
                                {k: v for k, v in new.items() if k not in DERIVED})
    if diff:
        raise RunError(f"{run_dir} holds predictions of another configuration; differing: " + "; ".join(diff)
                       + ". Use another run directory (hydra.run.dir=...) or delete this one.")
    if any(old.get(k) != new.get(k) for k in DERIVED):
        atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(identity, indent=1, sort_keys=True))


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


# ------------------------------------------------------------------------------------- images
@dataclass
class ImageRows:
    """One image of the split with its rows: its size (from the image itself), the method's ``prepare``
    result, or the error that stopped either."""

    path: str
    rows: List[Any]
    size: Optional[Tuple[int, int]] = None
    prepared: Any = None
    error: Optional[BaseException] = None
    image: Any = None  # the open PIL image, kept open while its rows are localized

    def close(self) -> None:
        if self.image is not None:
            self.image.close()
            self.image = None


def _check_image_path(path: str, data_root: Optional[str]) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    if not os.path.isfile(path):
        raise IsADirectoryError(f"image path is not a file: {path}")
    if data_root:
        real, base = os.path.realpath(path), os.path.realpath(data_root)
        if os.path.commonpath([real, base]) != base:
            raise ValueError(f"image {path} resolves to {real}, outside the data root {base}")


def open_image(method, path: str, rows: List[Any], data_root: Optional[str] = None,
               in_worker: bool = False) -> ImageRows:
    """Check, open (size from the header) and prepare one image — with the method's ``preload`` hook in a
    DataLoader worker. Proposal rankers (``needs_proposals``) get the image's proposals from its rows."""
    from PIL import Image

    item = ImageRows(str(path), list(rows))
    try:
        _check_image_path(item.path, data_root)
        item.image = Image.open(item.path)  # header only; a decompression bomb stops here
        item.size = tuple(item.image.size)
        kwargs = {"proposals": getattr(item.rows[0], "proposals", None)} if hook(method, "needs_proposals") else {}
        prepare = hook(method, "preload") if in_worker else method.prepare
        item.prepared = prepare(item.image, **kwargs)
    except Exception as e:  # noqa: BLE001 - reported row by row by the loop
        item.error = e
    if in_worker or item.error is not None:
        item.close()
    return item


class _Preloader:
    """Map-style dataset: :func:`open_image` with the method's ``preload`` hook, run in DataLoader workers."""

    def __init__(self, method, groups, data_root):
        self.method, self.groups, self.data_root = method, groups, data_root

    def __len__(self):
        return len(self.groups)

    def __getitem__(self, i):
        path, rows = self.groups[i]
        return open_image(self.method, path, rows, self.data_root, in_worker=True)


def image_rows(method, samples: Sequence, data_root: Optional[str] = None, workers: int = 0) -> Iterator[ImageRows]:
    """The rows grouped by image, in order, each image opened and prepared; with ``workers`` > 0 and a
    method with a ``preload`` hook, in DataLoader workers ahead of the model."""
    groups = list(group_by_image(samples).items())
    if workers and hook(method, "preload") is not None and len(groups) > 1:
        import torch.utils.data as tud

        yield from tud.DataLoader(_Preloader(method, groups, data_root), batch_size=None, shuffle=False,
                                  num_workers=int(workers), prefetch_factor=4, persistent_workers=False,
                                  collate_fn=_as_is)
        return
    for path, rows in groups:
        yield open_image(method, path, rows, data_root)


def _as_is(item):
    return item


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


def _where(s) -> str:
    return f"row {s.index} (annotation row {getattr(s, 'csv_row', '?')})"


# ----------------------------------------------------------------------------------- the loop
def localize_row(method, item: ImageRows, s) -> RowOutput:
    """The method's answer for one row, or the error (naming the row, the image and the phrase) that stopped it."""
    if item.error is not None:
        e = item.error
        return RowOutput.failed(f"{_where(s)}: image {item.path}: {type(e).__name__}: {e}", e)
    try:
        check_box_in_image(s.gt_box, item.size)
        out = method.localize_prepared(item.prepared, s.phrase)
        box = None if out.box is None else tuple(float(v) for v in out.box)  # None: a recorded miss (no proposal)
        if box is not None and len(box) != 4:
            raise ValueError(f"{method.name}.localize_prepared returned a box of {len(box)} numbers, not 4")
    except Exception as e:  # noqa: BLE001 - the run's error policy decides (RunDirectory.write)
        return RowOutput.failed(f"{_where(s)}: image {item.path}, phrase {s.phrase!r}: {type(e).__name__}: {e}", e)
    return RowOutput(box=box, score_map=getattr(out, "score_map", None), image_size=item.size, result=out)


def _prepare_features(method, batch: List[ImageRows]) -> None:
    """The ``prepare_features`` hook on several images at once; failures show row by row afterwards."""
    batched = hook(method, "prepare_features")
    ready = [(it.prepared, [s.phrase for s in it.rows]) for it in batch if it.error is None]
    if batched is None or len(ready) < 2:
        return
    try:
        batched(ready)
    except Exception as e:  # noqa: BLE001
        log.debug("batched features failed (%s); computing them image by image", e)


def inference_on_dataset(method, images: Iterable[ImageRows], evaluator: GroundingEvaluator, run: "RunDirectory",
                         batch_images: int = 1) -> None:
    """detectron2's ``inference_on_dataset``: for each row, the method's answer → the evaluator's record →
    the run directory. Nothing else: no files, no resume, no error policy (the run directory's)."""
    for batch in _batches(images, batch_images):
        _prepare_features(method, batch)
        for item in batch:
            for s in item.rows:
                out = localize_row(method, item, s)
                run.write(s, out, evaluator.process([s], [out])[0])
            item.close()
            run.image_done(len(item.rows))


# ----------------------------------------------------------------------------- bookkeeping
class RunDirectory:
    """A run directory's bookkeeping, in one object: its lock, its identity (run.json), resume (rows already
    predicted are kept, skipped ones retried), writing rows (predictions, score maps, figures) under the
    ``on_error`` policy, timing, and at the end the canonical order and metrics.json."""

    def __init__(self, path: Path, *, on_error: str = "raise", viz: int = 0, save_maps: bool = True,
                 progress: bool = True):
        self.path, self.on_error = Path(path), check_on_error(on_error)
        self.viz, self.save_maps, self.progress = int(viz or 0), bool(save_maps), bool(progress)
        self.identity: Dict[str, Any] = {}
        self.writer = self.bar = None
        self.viz_rows: set = set()
        self.timed_rows, self.timed_seconds, self._t0, self._warm = 0, 0.0, None, True

    @property
    def predictions(self) -> Path:
        return self.path / PRED_FILE

    def lock(self) -> RunLock:
        """The directory's exclusive lock (created with the directory), held for the whole run."""
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLock(self.path)

    def discard_if_unused(self, stop: Optional[Path] = None) -> None:
        """After an error before any row: remove the directory if it holds nothing of a run (only Hydra's
        records, a log, the lock), and its parents left empty, up to ``stop`` (default: the working directory)."""
        if not self.path.is_dir() or any(p.name not in (".hydra", LOCK_FILE) and not p.name.endswith(".log")
                                         for p in self.path.iterdir()):
            return
        shutil.rmtree(self.path, ignore_errors=True)
        stop = Path(stop or Path.cwd()).resolve()
        parent = self.path.resolve().parent
        while parent != stop and stop in parent.parents and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def start(self, identity: Dict[str, Any], samples: Sequence) -> List[Any]:
        """Check the identity, repair a torn last line, drop metrics.json (it exists only as the summary of a
        finished run), retry skipped rows; open the writer. Returns the rows still to evaluate."""
        self.identity = identity
        check_run_identity(self.path, identity)
        old = read_predictions(self.predictions, repair=True)
        (self.path / METRICS_FILE).unlink(missing_ok=True)
        kept = [r for r in old if not r.get("skipped")]
        if len(kept) < len(old):  # rows skipped last time are evaluated again
            log.info("%s: retrying %d rows recorded as skipped", self.path, len(old) - len(kept))
            atomic_write_text(self.predictions, "".join(json.dumps(r) + "\n" for r in kept))
        done = {r["index"] for r in kept}
        todo = [s for s in samples if s.index not in done]
        if done:
            log.info("resuming %s: %d rows done, %d to go", self.path, len(samples) - len(todo), len(todo))
        self.viz_rows = {s.index for s in list(samples)[:max(0, self.viz)]}
        self._open(len(samples), len(samples) - len(todo))
        return todo

    def _open(self, total: int, initial: int) -> None:
        from tqdm import tqdm

        split = self.identity.get("split")
        self.writer = PredictionWriter(self.predictions)
        self.bar = tqdm(total=total, initial=initial, unit="row", disable=not self.progress, dynamic_ncols=True,
                        desc=split.get("name", "eval") if isinstance(split, dict) else "eval")
        self._t0 = time.perf_counter()

    def write_loader_skips(self, samples: Sequence, evaluator: GroundingEvaluator) -> List[Any]:
        """Record the rows the split's loader flagged (``on_error=skip``); returns the others."""
        for s in samples:
            if getattr(s, "error", None):
                self.writer.write(evaluator.skip_record(s, s.error))
                self.bar.update(1)
        return [s for s in samples if not getattr(s, "error", None)]

    def write(self, s, out: RowOutput, rec: Dict[str, Any]) -> None:
        """One row's record (under the ``on_error`` policy), its score-map thumbnail and its figure."""
        if out.error is not None and self.on_error == "raise":
            raise RunError(out.error) from out.exception
        if self.save_maps and out.score_map is not None:  # before the row, so a resumed run has it
            save_score_map(self.path, s.index, out.score_map)
        self.writer.write(rec)
        if s.index in self.viz_rows and out.error is None and out.box is not None:
            self._figure(s, out, rec)
        self.bar.update(1)

    def _figure(self, s, out: RowOutput, rec: Dict[str, Any]) -> None:
        from ..data.images import load_image
        from .viz import save_figure

        save_figure(self.path / "figures" / f"{s.index:06d}.png", load_image(s.image_path), out.score_map, out.box,
                    s.phrase, gt_box=rec["gt_box"], iou=rec["iou"],
                    method=(self.identity.get("method") or {}).get("name"),
                    backbone=(self.identity.get("backbone") or {}).get("name"))

    def image_done(self, n_rows: int) -> None:
        """Timing: rows per second over images after the first (warm-up: lazy init, allocator, workers)."""
        now = time.perf_counter()
        if not self._warm:
            self.timed_rows += n_rows
            self.timed_seconds += now - self._t0
        self._warm, self._t0 = False, now

    def close(self) -> None:
        for x in (self.writer, self.bar):
            if x is not None:
                x.close()
        self.writer = self.bar = None

    def finish(self, samples: Sequence) -> Dict[str, Any]:
        """Canonical order (by row index), every row present and no other, metrics.json from the file."""
        preds = {r["index"]: r for r in read_predictions(self.predictions)}
        wanted = [s.index for s in samples]
        extra = sorted(set(preds) - set(wanted))
        if extra:
            raise RunError(f"{self.predictions} holds {len(extra)} rows that are not part of this run (e.g. "
                           f"{extra[:5]}); the directory was written by another configuration")
        # a resumed, sharded-and-merged or uninterrupted run gives the same file
        atomic_write_text(self.predictions, "".join(json.dumps(preds[i]) + "\n" for i in sorted(preds)))
        missing = [i for i in wanted if i not in preds]
        if missing:
            raise RunError(f"{len(missing)} rows have no prediction after the run (e.g. {missing[:5]})")
        metrics = summarise_run(self.path, self.identity)
        metrics["timing"] = self.timing()
        atomic_write_text(self.path / METRICS_FILE, json.dumps(metrics, indent=1))
        return metrics

    def timing(self) -> Dict[str, Any]:
        rows, secs = self.timed_rows, self.timed_seconds
        return {"rows_timed": rows, "seconds": round(secs, 3),
                "rows_per_second": round(rows / secs, 4) if secs > 0 else None,
                "device": self.identity.get("device_type"),
                "note": "first image excluded (warm-up); rows computed in this invocation only"}


def run_split(method, samples: Sequence, run_dir: Path, *, identity: Dict[str, Any], evaluator: GroundingEvaluator,
              on_error: str = "raise", viz: int = 0, progress: bool = True, workers: int = 0,
              data_root: Optional[str] = None, save_maps: bool = True, batch_images: int = 1) -> Dict[str, Any]:
    """Evaluate ``method`` (the protocol of :mod:`grounding.methods.base`) on ``samples`` in ``run_dir``;
    returns the metrics dict (also written to ``metrics.json``). ``save_maps``: keep a small score-map
    thumbnail per row under ``maps/`` for the HTML report."""
    run = RunDirectory(run_dir, on_error=on_error, viz=viz, save_maps=save_maps, progress=progress)
    with run.lock():
        return evaluate_in(run, method, samples, identity, evaluator, workers, data_root, batch_images)


def evaluate_in(run: RunDirectory, method, samples, identity, evaluator, workers: int = 0,
                data_root: Optional[str] = None, batch_images: int = 1) -> Dict[str, Any]:
    """:func:`run_split` in ``run``, whose lock the caller holds (``evaluate_config`` takes it before loading a
    model)."""
    todo = run.start(identity, samples)
    try:
        todo = run.write_loader_skips(todo, evaluator)
        inference_on_dataset(method, image_rows(method, todo, data_root, workers), evaluator, run, batch_images)
    finally:
        run.close()
    return run.finish(samples)


def evaluator_for(identity: Dict[str, Any]) -> GroundingEvaluator:
    split = identity.get("split") or {}
    return GroundingEvaluator(split.get("iou_threshold", 0.5), split.get("iou_compare", ">"))


def backbone_label(backbone: Dict[str, Any]) -> Optional[str]:
    """How tables name a backbone: its library's ``label`` (the key for the paper's weights; other libraries
    also name their weights, so two trainings of one architecture never share a cell)."""
    from ..models.registry import label

    return label(backbone)


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
        "backbone_kind": (identity.get("backbone") or {}).get("kind"),
        "family": identity.get("family"), "params": identity.get("method_params", {}),
        "overrides": identity.get("overrides", {}), "tuned": identity.get("tuned", True),
        "shard": identity.get("shard"), "limit": identity.get("limit"),
        **completeness_fields(identity),  # "complete", "split_rows", "expected_rows"
    })
