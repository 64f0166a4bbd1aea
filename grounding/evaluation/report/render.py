"""The single-file HTML page: its data (one JSON object with readable keys, rendered by ``report.js``) and
its markup (Jinja2 template ``templates/report.html.j2``; ``report.css`` and ``report.js`` inlined)."""
from __future__ import annotations

import base64
import json
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..breakdown import AREA_QUARTILES, BREAKDOWN_TITLES, LENGTH_BUCKETS, PHRASE_TYPES, SIZE_BUCKETS, delta
from .figures import COLORS, bar_plot, curve_plot, iou_hist_plot
from .load import CACHE_DIR, Run, split_groups
from .thumbnails import GT_RGB, PRED_RGB, Thumbs

_ENV: Optional[Environment] = None


def environment() -> Environment:
    """The Jinja2 environment over the package's ``templates/`` (package data: works when installed)."""
    global _ENV
    if _ENV is None:
        _ENV = Environment(loader=PackageLoader("grounding.evaluation.report", "templates"),
                           autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True)
    return _ENV


def asset(name: str) -> str:
    """The text of a package data file under ``templates/`` (the page's CSS and JS)."""
    env = environment()
    return env.loader.get_source(env, name)[0]


# ------------------------------------------------------------------------------------------- page data
def _rel(p: Path, html_dir: Path) -> str:
    return Path(os.path.relpath(Path(p).resolve(), html_dir.resolve())).as_posix()


def _data_uri(p: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(Path(p).read_bytes()).decode()


def _row(rec: Dict[str, Any], a: Dict[str, Any], image: int, thumbs: Dict[str, Optional[Path]],
         embed: bool) -> Dict[str, Any]:
    row = {"index": int(rec["index"]), "phrase": rec.get("phrase") or "", "iou": round(a["iou"], 3),
           "hit": int(a["hit"]), "size": a["size"], "area": a["area"], "length": a["length"], "image": image}
    if a["phrase_type"]:
        row["phrase_type"] = a["phrase_type"]
    if a["skipped"]:
        row["skipped"] = 1
    if rec.get("error"):
        row["error"] = str(rec["error"])
    if embed:
        row["image_thumb"] = _data_uri(thumbs["image"]) if thumbs.get("image") else None
        row["map_thumb"] = _data_uri(thumbs["map"]) if thumbs.get("map") else None
    elif thumbs.get("image"):
        row["thumb"] = thumbs["image"].stem
        row["has_map"] = int(thumbs.get("map") is not None)
    return row


def _run_data(k: int, run: Run, thumbs: Thumbs, html_dir: Path, embed: bool) -> Dict[str, Any]:
    rows, images, image_pos = [], [], {}
    for rec, a in zip(run.records, run.rows):
        img = rec.get("image") or ""
        if img not in image_pos:
            image_pos[img] = len(images)
            images.append(_rel(Path(img), html_dir) if img else "")
        rows.append(_row(rec, a, image_pos[img], thumbs.get(int(rec["index"]), {}), embed))
    return {"label": run.label, "split": run.split, "iou_threshold": run.iou_threshold,
            "iou_compare": run.iou_compare, "color": COLORS[k % len(COLORS)],
            "thumb_dir": _rel(run.dir / CACHE_DIR / "thumbs", html_dir) + "/", "images": images, "rows": rows}


def gallery_data(runs: Sequence[Run], thumbs: Sequence[Thumbs], html_dir: Path, embed: bool) -> Dict[str, Any]:
    """The JSON the page's script renders: per run, one object per row.

    Row keys: ``index``, ``phrase``, ``iou``, ``hit`` (0/1), ``size``, ``area`` (quartile), ``length``
    (bucket), ``phrase_type`` (when known), ``image`` (position of its image in the run's ``images``),
    ``skipped`` (1 when skipped), ``error``; thumbnails either embedded (``image_thumb``, ``map_thumb``: data
    URIs) or linked as ``run.thumb_dir + thumb + ".jpg"`` (and ``thumb + "-m.jpg"`` for the score map when
    ``has_map``)."""
    return {"runs": [_run_data(k, run, th, html_dir, embed) for k, (run, th) in enumerate(zip(runs, thumbs))],
            "groups": split_groups(runs),
            "buckets": {"size": list(SIZE_BUCKETS), "area": list(AREA_QUARTILES), "length": list(LENGTH_BUCKETS),
                        "phrase_type": list(PHRASE_TYPES)}}


def thumbnail_links(run: Dict[str, Any], row: Dict[str, Any]):
    """(boxes, score map) thumbnail links of a row of :func:`gallery_data` (as the page's script makes them)."""
    if "thumb" in row:
        link = run["thumb_dir"] + row["thumb"]
        return link + ".jpg", (link + "-m.jpg") if row.get("has_map") else None
    return row.get("image_thumb"), row.get("map_thumb")


# ---------------------------------------------------------------------------------------------- tables
def breakdown_table(runs: Sequence[Run], key: str) -> Optional[Dict[str, Any]]:
    """Buckets × runs of breakdown ``key`` (``acc``, ``hits``, ``n`` per cell), plus Δ (percentage points) of
    each run against the first run of its split; None when no run has the breakdown."""
    buckets = list(OrderedDict.fromkeys(b for r in runs for b in r.breakdowns.get(key, {})))
    if not buckets:
        return None
    base = {i: g[0] for g in split_groups(runs) for i in g}
    dcols = [i for i in range(len(runs)) if base[i] != i]
    rows = []
    for b in buckets:
        cells = [r.breakdowns.get(key, {}).get(b) for r in runs]
        deltas = [delta(runs[base[i]].breakdowns.get(key, {}).get(b) or {}, cells[i] or {}) for i in dcols]
        rows.append({"bucket": b, "range": runs[0].breakdowns.get(key, {}).get(b, {}).get("range"),
                     "cells": [c if c and c.get("acc") is not None else None for c in cells], "deltas": deltas})
    return {"runs": [{"label": r.label, "split": r.split} for r in runs],
            "deltas": [{"label": runs[i].label, "vs": runs[base[i]].label} for i in dcols], "rows": rows}


def runs_table(runs: Sequence[Run]) -> List[Dict[str, Any]]:
    """One entry per run for the page's run table and its identity details."""
    return [{"label": r.label, "split": r.split, "color": COLORS[i % len(COLORS)], "metrics": r.metrics,
             "n": r.metrics.get("n", len(r.records)), "iou_compare": r.iou_compare, "iou_threshold": r.iou_threshold,
             "dir": str(r.dir), "details": json.dumps({"run.json": r.identity, "timing": r.metrics.get("timing")},
                                                      indent=1, sort_keys=True)}
            for i, r in enumerate(runs)]


def _sections(runs: Sequence[Run]) -> List[Dict[str, Any]]:
    out = []
    for key, name in BREAKDOWN_TITLES.items():
        table = breakdown_table(runs, key)
        why = ("no row carries a phrase type (the split does not record Flickr30k Entities types)"
               if key == "by_phrase_type" else "rows carry no image size")
        out.append({"title": name, "table": table, "plot": bar_plot(runs, key) if table else None, "why": why})
    return out


def render_html(runs: Sequence[Run], data: Dict[str, Any], title: str) -> str:
    """The whole page: tables and plots rendered here, the gallery and comparison by the inlined script."""
    return environment().get_template("report.html.j2").render(
        title=title, runs=runs_table(runs), n_runs=len(runs), generated=time.strftime("%Y-%m-%d %H:%M:%S"),
        sections=_sections(runs), curve=breakdown_table(runs, "acc_curve"),
        curve_rule="≥" if runs and runs[0].iou_compare == ">=" else ">",
        curve_svg=curve_plot(runs), hist_svg=iou_hist_plot(runs),
        compare=any(len(g) > 1 for g in split_groups(runs)),
        gt_rgb="rgb(%d, %d, %d)" % GT_RGB, pred_rgb="rgb(%d, %d, %d)" % PRED_RGB,
        css=asset("report.css"), js=asset("report.js"),
        payload=json.dumps(data, separators=(",", ":")).replace("</", "<\\/"))
