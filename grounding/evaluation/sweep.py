"""Hydra callback: a sweep (``-m``) ends with a table of its jobs — run, accuracy, n — best row marked,
printed and written as ``sweep_summary.csv`` in the sweep directory."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .runfiles import read_metrics, skip_unreadable


def summary_rows(sweep_dir: Path, since: float = 0.0) -> List[dict]:
    """One row per run directory under ``sweep_dir`` whose metrics.json was written after ``since``; a corrupt
    metrics.json leaves its run out with a one-line warning (runfiles.skip_unreadable)."""
    rows = []
    for m in sorted(Path(sweep_dir).rglob("metrics.json")):
        if m.stat().st_mtime < since:
            continue
        d = skip_unreadable(lambda: read_metrics(m.parent))
        if d is None:
            continue
        rows.append({"run": str(m.parent.relative_to(sweep_dir)), "split": d.get("split"), "method": d.get("method"),
                     "backbone": d.get("backbone_key"), "acc_%": round(100 * d["accuracy"], 2), "n": d.get("n"),
                     "skipped": d.get("n_skipped", 0)})
    return rows


def summary_table(rows: List[dict]):
    import pandas as pd

    df = pd.DataFrame(rows, columns=["run", "split", "method", "backbone", "acc_%", "n", "skipped"])
    df.insert(0, "best", "")
    for _, idx in df.groupby("split").groups.items():
        best = df.loc[idx, "acc_%"].idxmax()
        df.loc[best, "best"] = "*"
    return df


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.start = time.time() - 1.0

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = summary_rows(sweep_dir, getattr(self, "start", 0.0))
        if not rows:
            return
        df = summary_table(rows)
        out = sweep_dir / "sweep_summary.csv"
        df.to_csv(out, index=False)
        print("\n" + df.to_markdown(index=False) + f"\n\n(* best per split; written to {out})\n")
