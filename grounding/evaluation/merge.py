"""``grounding-merge -o OUT DIR...``: combine shard run directories into one run.

Refused, with a message naming the shard directory: shards of different configurations (everything
in run.json but ``shard`` must agree), shards that are not exactly ``0/n … n-1/n``, a shard whose
predictions do not hold exactly its rows of the split (a gap, an overlap, a partial run), a shard whose
metrics.json is stale against its predictions, ``-o`` equal to an input or holding a run of another
configuration, and any directory another process is writing (each is locked while merged). OUT then holds
predictions.jsonl (sorted by row index), run.json and metrics.json recomputed from the merged file —
identical to a single run's.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import List, Optional, Tuple

from .runfiles import (METRICS_FILE, PRED_FILE, RUN_FILE, RunError, atomic_write_text, read_identity, read_metrics,
                       read_predictions)
from .runner import RunLock, identity_differences, parse_shard, summarise_run

STABLE_METRICS = ("accuracy", "n", "n_skipped", "mean_iou", "iou_threshold")


def _read_metrics(d: Path) -> dict:
    return read_metrics(d, "rerun that shard to rewrite it")


def merge_runs(out: Path, dirs: List[Path]) -> dict:
    if not dirs:
        raise RunError("no run directories given")
    dirs = [Path(d) for d in dirs]
    out = Path(out)
    for d in dirs:
        if out.resolve() == d.resolve():
            raise RunError(f"-o {out} is one of the inputs; write the merged run to a new directory")
    if len({d.resolve() for d in dirs}) < len(dirs):
        raise RunError(f"a run directory is given twice: {' '.join(map(str, dirs))}")
    with contextlib.ExitStack() as locks:  # no run may write to an input or to OUT while they are merged
        for d in dirs:
            try:
                locks.enter_context(RunLock(d))
            except RunError:
                raise
            except OSError:  # missing (reported below) or read-only: then no run can be writing to it either
                pass
        return _merge_locked(out, dirs)


def _read_shard(d: Path, base: Optional[dict], first: Optional[dict], first_dir: Path) -> Tuple[dict, List[dict]]:
    """A shard directory's identity and predictions, refused unless it is a finished shard of the same
    configuration (and split into as many parts) as the first one, with fresh metrics and exactly its rows."""
    for f in (RUN_FILE, PRED_FILE, METRICS_FILE):
        if not (d / f).is_file():
            raise RunError(f"{d}: no {f} (is this a finished run directory?)")
    ident = read_identity(d)
    shard = ident.get("shard")
    if not shard:
        raise RunError(f"{d} is not a shard run (no shard=i/n in its run.json)")
    diff = identity_differences(base, {k: v for k, v in ident.items() if k != "shard"}) if base is not None else []
    if diff:
        raise RunError(f"{d} ran another configuration than {first_dir}: " + "; ".join(diff))
    i, n = parse_shard(shard)
    n0 = parse_shard(first["shard"])[1] if first else n
    if n != n0:
        raise RunError(f"{d} is shard {shard}, but {first_dir} is a shard of {n0}")
    preds = read_predictions(d / PRED_FILE)
    stored, fresh = _read_metrics(d), summarise_run(d, ident)
    stale = [k for k in STABLE_METRICS if stored.get(k) != fresh.get(k)]
    if stale:
        raise RunError(f"{d}: metrics.json is stale against predictions.jsonl ({', '.join(stale)} differ); "
                       f"rerun that shard to finish it")
    expected = len(range(i, int(ident["split_rows"]), n))
    if len(preds) != expected:
        raise RunError(f"{d}: shard {shard} holds {len(preds)} rows, its part of the split has {expected}")
    return ident, preds


def _merge_locked(out: Path, dirs: List[Path]) -> dict:
    idents, rows, base = [], {}, None
    for d in dirs:
        ident, preds = _read_shard(d, base, idents[0] if idents else None, dirs[0])
        if base is None:
            base = {k: v for k, v in ident.items() if k != "shard"}
        idents.append(ident)
        for r in preds:
            if r["index"] in rows:
                raise RunError(f"{d}: row {r['index']} is also in another shard")
            rows[r["index"]] = r
    _check_coverage(idents, dirs, len(rows), int(base["split_rows"]))
    return _write_merged(out, dirs, dict(base, shard=None), [rows[i] for i in sorted(rows)])


def _write_merged(out: Path, dirs: List[Path], identity: dict, ordered: List[dict]) -> dict:
    """OUT's predictions (row order), run.json, the shards' score maps and metrics recomputed from them."""
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        if (out / RUN_FILE).is_file():  # never overwrite the run of another configuration
            diff = identity_differences(read_identity(out), json.loads(json.dumps(identity, default=str)))
            if diff:
                raise RunError(f"-o {out} holds a run of another configuration ({'; '.join(diff)}); choose a new "
                               f"directory")
        atomic_write_text(out / PRED_FILE, "".join(json.dumps(r) + "\n" for r in ordered))
        atomic_write_text(out / RUN_FILE, json.dumps(identity, indent=1, sort_keys=True))
        for d in dirs:  # the shards' score-map thumbnails (grounding-report)
            for png in sorted((d / "maps").glob("*.png")):
                (out / "maps").mkdir(exist_ok=True)
                shutil.copy2(png, out / "maps" / png.name)
        metrics = summarise_run(out, identity)
        metrics["merged_from"] = [os.path.abspath(d) for d in dirs]
        atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1))
    return metrics


def _check_coverage(idents, dirs, n_rows: int, split_rows: int) -> None:
    """The shards are exactly 0/n … n-1/n, once each, and hold every row of the split."""
    n = parse_shard(idents[0]["shard"])[1]
    given = {parse_shard(i["shard"])[0]: d for i, d in zip(idents, dirs)}
    if len(given) < len(dirs):  # two directories of the same shard (their rows would overlap)
        seen = {}
        for i, d in zip(idents, dirs):
            k = parse_shard(i["shard"])[0]
            if k in seen:
                raise RunError(f"{d} and {seen[k]} are both shard {k}/{n}")
            seen[k] = d
    missing = [f"{k}/{n}" for k in range(n) if k not in given]
    if missing:
        raise RunError(f"shard(s) {', '.join(missing)} missing: the given directories ("
                       + ", ".join(f"{d} = {i['shard']}" for i, d in zip(idents, dirs)) + f") are not exactly 0/{n} … {n - 1}/{n}")
    if n_rows != split_rows:
        raise RunError(f"the shards hold {n_rows} rows; the split has {split_rows}")


def main(argv=None) -> int:
    from ..errors import guarded

    ap = argparse.ArgumentParser(prog="grounding-merge", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True, help="the merged run directory (new)")
    ap.add_argument("dirs", nargs="+", help="the shard run directories (shard=0/n … n-1/n)")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    a = ap.parse_args(argv)

    def run() -> int:
        m = merge_runs(Path(a.out), [Path(d) for d in a.dirs])
        print(f"merged {len(a.dirs)} runs: Acc@{m['iou_threshold']} = {100 * m['accuracy']:.2f}% (n={m['n']}) -> {a.out}")
        return 0

    return guarded(run, ["--debug"] if a.debug else [])


if __name__ == "__main__":
    raise SystemExit(main())
