"""``grounding-report RUN_DIR [RUN_DIR …] -o report.html``: one static HTML page for error analysis.

A RUN_DIR is a run directory (``predictions.jsonl``, ``run.json``, ``metrics.json``) or a folder holding
run directories (searched recursively, e.g. ``multirun/demo``); a run with a corrupt file is left out with a
one-line warning naming the file. The page needs no server and no network; open it from disk. It holds:

* each run's identity (split, method, backbone, parameters) and metrics;
* breakdown tables and plots (grounding.evaluation.breakdown): accuracy by GT box size, by box-area
  quartile, by phrase type, by phrase length, and the Acc-vs-IoU-threshold curve, counts beside rates,
  and per-bucket differences against the first run of the same split;
* a gallery of rows (GT box yellow, prediction red, score-map overlay, phrase, IoU), filtered by
  hit/miss, phrase type, size, area quartile and length, searched by phrase, sorted by IoU, paged;
* with two or more runs on one split, the rows that flip between two chosen runs.

Thumbnails (≤ 256 px) are written once under ``RUN_DIR/report_cache/`` and linked by relative path
(for small reports they are embedded, so the file stands alone). The gallery's rows are one JSON
array in the page, rendered 60 at a time by a few lines of JavaScript, so a 15k-row split opens fast.
The page's state lives in the URL hash (``report.html#filter=miss&size=small&sort=iou``), so a view
can be linked.
"""
from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Sequence

from ...errors import guarded, short_warnings
from ..runfiles import atomic_write_text
from .load import load_runs
from .render import gallery_data, render_html
from .thumbnails import make_thumbnails

EMBED_MAX_ROWS = 400


def build_report(run_paths: Sequence, out: Path, *, embed: str = "auto", thumb_size: int = 256, page_size: int = 60,
                 title: Optional[str] = None, progress: bool = True) -> Path:
    """Write the report for the runs named by ``run_paths`` to ``out``; returns its path."""
    out = Path(out)
    runs = load_runs(run_paths)
    n_rows = sum(len(r.records) for r in runs)
    do_embed = embed == "always" or (embed == "auto" and n_rows <= EMBED_MAX_ROWS)
    thumbs = [make_thumbnails(r, thumb_size, progress) for r in runs]
    out.parent.mkdir(parents=True, exist_ok=True)
    data = gallery_data(runs, thumbs, out.parent, do_embed)
    data["page_size"] = int(page_size)
    splits = ", ".join(OrderedDict.fromkeys(r.split for r in runs))
    atomic_write_text(out, render_html(runs, data, title or f"Phrase grounding report — {splits}"))
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="grounding-report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories, or folders searched for them (e.g. multirun/demo)")
    ap.add_argument("-o", "--out", default="report.html", help="HTML file to write (default: report.html)")
    ap.add_argument("--embed", choices=["auto", "always", "never"], default="auto",
                    help=f"embed thumbnails in the page (auto: when the runs hold ≤ {EMBED_MAX_ROWS} rows); "
                         "otherwise they are linked from RUN_DIR/report_cache/ by relative path")
    ap.add_argument("--thumb-size", type=int, default=256,
                    help="longer side of thumbnails, px (≤ 256 keeps pages light)")
    ap.add_argument("--page-size", type=int, default=60, help="gallery cards per page")
    ap.add_argument("--title", default=None)
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    return ap


def main(argv=None) -> int:
    """The command: a harness error (a missing or unreadable run) is one line on stderr and exit code 2."""
    a = parser().parse_args(argv)
    short_warnings()

    def run() -> int:
        out = build_report(a.runs, Path(a.out), embed=a.embed, thumb_size=a.thumb_size, page_size=a.page_size,
                           title=a.title)
        print(f"report: {out.resolve()}")
        print(f"open:   file://{out.resolve()}")
        return 0

    return guarded(run, ["--debug"] if a.debug else [])
