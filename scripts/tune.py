"""Tune α and σ of a method on a validation split: a Hydra multirun sweep, then the best pair printed as
the line to paste into grounding/methods/hparams.py (``TUNED``), which makes it the method's default for
that backbone × dataset family (the tables stop marking the row "not tuned").

    python scripts/tune.py --method maskclip --backbone vit_b16 --split flickr_val data_root=/data/zsg device=cuda
    python scripts/tune.py --method gem --backbone vit_b16 --split vg_val --alphas 0.6,0.7,0.8 --temperatures 0.01,0.02

Extra KEY=VALUE arguments go to every job (data_root=, device=, limit=, …). ``--print-only`` shows the
sweep command; ``--from-sweep DIR`` skips the sweep and reads a finished one.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from grounding.data.splits import split_info


def sweep_command(method, backbone, split, alphas, temperatures, sweep_dir, extra):
    return [sys.executable, "-m", "grounding.eval", "-m", f"method={method}", f"backbone={backbone}", f"split={split}",
            f"method.alpha={alphas}", f"method.temperature={temperatures}", f"hydra.sweep.dir={sweep_dir}", *extra]


def best_of(sweep_dir: Path):
    """(accuracy, alpha, temperature, n) of the best finished job of a sweep directory (ties: first found)."""
    best = None
    for m in sorted(Path(sweep_dir).rglob("metrics.json")):
        d = json.loads(m.read_text())
        p = d.get("params") or {}
        row = (d["accuracy"], p.get("alpha"), p.get("temperature"), d.get("n"))
        if best is None or row[0] > best[0]:
            best = row
    if best is None:
        raise SystemExit(f"no finished job (metrics.json) under {sweep_dir}")
    return best


def paste_line(method, backbone, family, alpha, temperature) -> str:
    return f'TUNED[("{method}", "{backbone}", "{family}")] = {{"alpha": {alpha}, "temperature": {temperature}}}'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--split", default="flickr_val", help="a validation split (never a test split)")
    ap.add_argument("--alphas", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--temperatures", default="0.005,0.01,0.02,0.05")
    ap.add_argument("--sweep-dir", default=None)
    ap.add_argument("--from-sweep", default=None, help="read this finished sweep instead of running one")
    ap.add_argument("--print-only", action="store_true")
    a, extra = ap.parse_known_args(argv)
    info = split_info(a.split)
    if info.table is not None:
        raise SystemExit(f"{a.split} is a test split (a column of the results tables); tune on a val split")
    sweep = Path(a.from_sweep or a.sweep_dir or f"multirun/tune/{a.method}_{a.backbone}_{a.split}")
    cmd = sweep_command(a.method, a.backbone, a.split, a.alphas, a.temperatures, sweep, extra)
    if a.print_only:
        print(" ".join(cmd))
        return 0
    if not a.from_sweep:
        subprocess.run(cmd, check=True)
    acc, alpha, temperature, n = best_of(sweep)
    print(f"best on {a.split} (n={n}): Acc {100 * acc:.2f}% at alpha={alpha}, temperature={temperature}")
    print("paste into grounding/methods/hparams.py:")
    print(paste_line(a.method, a.backbone, info.family, alpha, temperature))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
