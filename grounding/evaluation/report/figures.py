"""The report's plots as inline SVG (matplotlib, Agg): accuracy per bucket, Acc-vs-IoU curve, IoU histogram."""
from __future__ import annotations

import io
import re
from collections import OrderedDict
from typing import Optional, Sequence

import matplotlib
import numpy as np

from .load import Run

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    s = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", s[s.find("<svg"):], flags=re.S)


def _plt():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


def bar_plot(runs: Sequence[Run], key: str) -> Optional[str]:
    """Grouped bars: accuracy per bucket of breakdown ``key``, one bar per run, n under each bucket."""
    buckets = list(OrderedDict.fromkeys(b for r in runs for b in r.breakdowns.get(key, {})))
    if not buckets:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.0, min(5.2, 0.45 * len(buckets) * max(1, len(runs)) + 1.0)), 2.3))
    width = 0.8 / len(runs)
    x = np.arange(len(buckets))
    for k, run in enumerate(runs):
        d = run.breakdowns.get(key, {})
        acc = [100 * d[b]["acc"] if b in d and d[b]["acc"] is not None else np.nan for b in buckets]
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, acc, width, label=run.label, color=COLORS[k % len(COLORS)])
    same_n = len({tuple(r.breakdowns.get(key, {}).get(b, {}).get("n") for b in buckets) for r in runs}) == 1
    d0 = runs[0].breakdowns.get(key, {})
    ax.set_xticks(x, [f"{b}\nn={d0.get(b, {}).get('n', 0)}" if same_n else b for b in buckets])
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=7, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=min(3, len(runs)))
    return _svg(fig)


def curve_plot(runs: Sequence[Run]) -> str:
    """Accuracy against the IoU threshold, one line per run; the runs' threshold marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.0, 2.3))
    for k, run in enumerate(runs):
        c = run.breakdowns.get("acc_curve", {})
        ts = sorted(float(t) for t in c)
        ax.plot(ts, [100 * c[f"{t:.1f}"]["acc"] for t in ts], "o-", ms=3, label=run.label,
                color=COLORS[k % len(COLORS)])
    for thr in sorted({r.iou_threshold for r in runs}):
        ax.axvline(thr, color="grey", ls=":", lw=1)
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="lower left")
    return _svg(fig)


def iou_hist_plot(runs: Sequence[Run]) -> str:
    """Distribution of per-row IoU (near misses sit just left of the threshold)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.0, 2.3))
    bins = np.linspace(0, 1, 21)
    for k, run in enumerate(runs):
        ax.hist([r["iou"] for r in run.rows], bins=bins, histtype="step", lw=1.5, label=run.label,
                color=COLORS[k % len(COLORS)])
    for thr in sorted({r.iou_threshold for r in runs}):
        ax.axvline(thr, color="grey", ls=":", lw=1)
    ax.set_xlabel("IoU with ground truth")
    ax.set_ylabel("rows")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return _svg(fig)
