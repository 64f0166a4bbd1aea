"""``grounding-merge -o OUT DIR...``: combine shard run directories into one run.

Checks that every shard ran the same configuration (everything in run.json but ``shard``), that
the shards are ``0/n … n-1/n`` of one split with no row twice, then writes OUT/predictions.jsonl
(sorted by row index) and OUT/metrics.json, identical to a single run's.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List

from .runner import METRICS_FILE, PRED_FILE, RUN_FILE, atomic_write_text, read_predictions, summarise


def merge_runs(out: Path, dirs: List[Path]) -> dict:
    if not dirs:
        raise ValueError("no run directories given")
    idents, rows = [], {}
    for d in dirs:
        d = Path(d)
        for f in (RUN_FILE, PRED_FILE, METRICS_FILE):
            if not (d / f).is_file():
                raise FileNotFoundError(f"{d}: no {f} (is this a finished run directory?)")
        ident = json.loads((d / RUN_FILE).read_text())
        idents.append(ident)
        for r in read_predictions(d / PRED_FILE):
            if r["index"] in rows:
                raise ValueError(f"row {r['index']} appears in more than one run directory ({d})")
            rows[r["index"]] = r
    base = {k: v for k, v in idents[0].items() if k != "shard"}
    for d, ident in zip(dirs, idents):
        other = {k: v for k, v in ident.items() if k != "shard"}
        if other != base:
            diff = {k for k in set(base) | set(other) if base.get(k) != other.get(k)}
            raise ValueError(f"{d} ran another configuration than {dirs[0]} (differs in {sorted(diff)})")
    shards = [i.get("shard") for i in idents]
    if any(shards):
        ns = {int(str(s).split("/")[1]) for s in shards if s}
        got = sorted(int(str(s).split("/")[0]) for s in shards if s)
        if len(ns) != 1 or got != list(range(next(iter(ns)))) or None in shards:
            raise ValueError(f"shards {shards} are not 0/n … n-1/n of one split")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ordered = [rows[i] for i in sorted(rows)]
    atomic_write_text(out / PRED_FILE, "".join(json.dumps(r) + "\n" for r in ordered))
    atomic_write_text(out / RUN_FILE, json.dumps(dict(base, shard=None), indent=1, sort_keys=True))
    metrics = summarise(ordered, base)
    metrics["merged_from"] = [str(d) for d in dirs]
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1))
    return metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="grounding-merge", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args(argv)
    m = merge_runs(Path(a.out), [Path(d) for d in a.dirs])
    print(f"merged {len(a.dirs)} runs: Acc@{m['iou_threshold']} = {100 * m['accuracy']:.2f}% (n={m['n']}) -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
