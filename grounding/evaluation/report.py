"""``grounding-report RUN_DIR [RUN_DIR …] -o report.html``: one static HTML page for error analysis.

A RUN_DIR is a run directory (``predictions.jsonl``, ``run.json``, ``metrics.json``) or a folder holding
run directories (searched recursively, e.g. ``multirun/demo``). The page needs no server and no
network; open it from disk. It holds:

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
import base64
import hashlib
import html
import io
import json
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .breakdown import (AREA_QUARTILES, BREAKDOWN_TITLES, LENGTH_BUCKETS, PHRASE_TYPES, SIZE_BUCKETS, annotate,
                        breakdowns, delta)
from .mapstore import load_score_map

CACHE_DIR, THUMB_VERSION = "report_cache", 2
GT_RGB, PRED_RGB = (255, 215, 0), (230, 20, 20)
EMBED_MAX_ROWS = 400


# ------------------------------------------------------------------------------------ loading
@dataclass
class Run:
    dir: Path
    identity: Dict[str, Any]
    metrics: Dict[str, Any]
    records: List[Dict[str, Any]]
    iou_threshold: float
    iou_compare: str
    rows: List[Dict[str, Any]] = field(default_factory=list)  # breakdown.annotate output, record order
    breakdowns: Dict[str, Any] = field(default_factory=dict)
    suffix: str = ""  # told apart from another run with the same label

    @property
    def split(self) -> str:
        split = self.metrics.get("split") or self.identity.get("split")
        return str((split.get("name") if isinstance(split, dict) else split) or "?")

    @property
    def label(self) -> str:
        ident = {**self.identity, **self.metrics}  # metrics.json has the flat names; run.json nests them

        def name(v):
            return v.get("key") or v.get("name") if isinstance(v, dict) else v

        parts = [str(name(ident.get("method")) or "?"), str(ident.get("backbone_key") or name(ident.get("backbone")) or "?")]
        over = ident.get("overrides") or {}
        if over:
            parts.append(",".join(f"{k}={v}" for k, v in sorted(over.items())))
        untuned = " † untuned α, σ" if ident.get("tuned") is False else ""
        return " · ".join(parts) + untuned + (f" [{self.suffix}]" if self.suffix else "")


def find_run_dirs(paths: Sequence) -> List[Path]:
    """Run directories (holding ``predictions.jsonl``) named by ``paths`` or found under them, in order."""
    out: List[Path] = []
    for p in paths:
        p = Path(p)
        if (p / "predictions.jsonl").is_file():
            found = [p]
        elif p.is_dir():
            found = sorted(q.parent for q in p.rglob("predictions.jsonl") if CACHE_DIR not in q.parts)
        else:
            raise FileNotFoundError(f"{p}: no such run directory")
        if not found:
            raise FileNotFoundError(f"{p}: holds no predictions.jsonl (run grounding-eval first, e.g. `make eval`)")
        out += [f for f in found if f.resolve() not in {o.resolve() for o in out}]
    return out


def _image_size(path: str, cache: Dict[str, Optional[List[int]]]) -> Optional[List[int]]:
    """(w, h) from the image header (no decoding), for runs made before rows recorded ``image_size``."""
    if path not in cache:
        from PIL import Image

        try:
            with Image.open(path) as im:
                cache[path] = [int(im.size[0]), int(im.size[1])]
        except (OSError, ValueError):
            cache[path] = None
    return cache[path]


def load_run(run_dir) -> Run:
    from .runner import METRICS_FILE, PRED_FILE, RUN_FILE, read_predictions

    run_dir = Path(run_dir)
    identity = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).is_file() else {}
    metrics = json.loads((run_dir / METRICS_FILE).read_text()) if (run_dir / METRICS_FILE).is_file() else {}
    records = read_predictions(run_dir / PRED_FILE)
    if not records:
        raise ValueError(f"{run_dir / PRED_FILE}: no prediction rows")
    sizes: Dict[str, Optional[List[int]]] = {}
    for r in records:
        if not r.get("image_size") and r.get("image"):
            size = _image_size(r["image"], sizes)
            if size:
                r["image_size"] = size
    thr = float(metrics.get("iou_threshold", identity.get("iou_threshold", 0.5)))
    cmp_ = str(metrics.get("iou_compare", identity.get("iou_compare", ">")))
    run = Run(run_dir, identity, metrics, records, thr, cmp_)
    run.rows = annotate(records, thr, cmp_)
    run.breakdowns = breakdowns(records, thr, cmp_)  # recomputed: same buckets as the gallery, sizes filled in
    return run


# --------------------------------------------------------------------------------- thumbnails
_JET: Optional[np.ndarray] = None


def _jet_lut() -> np.ndarray:
    global _JET
    if _JET is None:
        from matplotlib import colormaps

        _JET = (colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return _JET


def _draw_boxes(im, rec, scale: float):
    from PIL import ImageDraw

    d = ImageDraw.Draw(im)
    w = max(2, round(min(im.size) / 90))
    for box, color in ((rec.get("gt_box"), GT_RGB), (rec.get("pred_box"), PRED_RGB)):
        if box and len(box) == 4:
            x1, y1, x2, y2 = (float(v) * scale for v in box)
            d.rectangle([x1, y1, max(x1, x2), max(y1, y2)], outline=color, width=w)
    return im


def _overlay(base, score: np.ndarray):
    """``base`` (PIL RGB) blended 50/50 with the jet-coloured ``score`` map stretched over it."""
    from PIL import Image

    m = Image.fromarray(np.round(score * 255).astype(np.uint8)).resize(base.size, Image.BILINEAR)
    col = _jet_lut()[np.asarray(m)]
    out = (0.5 * np.asarray(base, dtype=np.float32) + 0.5 * col).astype(np.uint8)
    return Image.fromarray(out)


def _thumb_key(rec: Dict[str, Any], map_file: Path, max_side: int) -> str:
    stamp = map_file.stat().st_mtime_ns if map_file.is_file() else 0
    blob = json.dumps([THUMB_VERSION, max_side, rec.get("image"), rec.get("gt_box"), rec.get("pred_box"), stamp])
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def make_thumbnails(run: Run, max_side: int = 256, progress: bool = True) -> Dict[int, Dict[str, Optional[Path]]]:
    """Per row index: ``{"image": path, "map": path or None}`` JPEG thumbnails under
    ``RUN_DIR/report_cache/thumbs/`` — the image with GT (yellow) and predicted (red) boxes, and the
    score-map overlay. Files named by a hash of what they show are reused, never redrawn; files of
    predictions the run no longer holds are removed."""
    from PIL import Image

    from .mapstore import map_path

    out_dir = run.dir / CACHE_DIR / "thumbs"
    out_dir.mkdir(parents=True, exist_ok=True)
    by_image: "OrderedDict[str, list]" = OrderedDict()
    result: Dict[int, Dict[str, Optional[Path]]] = {}
    for rec in run.records:
        mp = map_path(run.dir, rec["index"])
        key = _thumb_key(rec, mp, max_side)
        img_t = out_dir / f"{int(rec['index']):06d}-{key}.jpg"
        map_t = out_dir / f"{int(rec['index']):06d}-{key}-m.jpg" if mp.is_file() else None
        result[int(rec["index"])] = {"image": img_t, "map": map_t}
        if not img_t.is_file() or (map_t is not None and not map_t.is_file()):
            by_image.setdefault(rec.get("image") or "", []).append((rec, img_t, map_t))
    todo, done, t0 = sum(len(v) for v in by_image.values()), 0, time.time()
    for path, items in by_image.items():  # decode each image once for all its rows
        try:
            with Image.open(path) as im:
                im.draft("RGB", (max_side, max_side))  # JPEG: decode at reduced scale
                orig_w = items[0][0].get("image_size", [None])[0] or Image.open(path).size[0]
                im = im.convert("RGB")
                im.thumbnail((max_side, max_side), Image.BILINEAR)
                base = im.copy()
        except (OSError, ValueError):
            base, orig_w = Image.new("RGB", (max_side, max_side // 2), (60, 60, 60)), None
        scale = base.size[0] / orig_w if orig_w else 0.0
        for rec, img_t, map_t in items:
            _draw_boxes(base.copy(), rec, scale).save(img_t, quality=82)
            if map_t is not None:
                score = load_score_map(run.dir, rec["index"])
                small = base.copy()
                small.thumbnail((max(96, max_side // 2),) * 2, Image.BILINEAR)  # a map of ≤ 56 cells needs no more
                _draw_boxes(_overlay(small, score), rec, scale * small.size[0] / base.size[0]).save(map_t, quality=80)
            done += 1
        if progress and todo > 500 and done % 500 < len(items):
            print(f"[grounding-report] thumbnails {run.dir}: {done}/{todo} ({time.time() - t0:.0f} s)", file=sys.stderr)
    wanted = {p.name for t in result.values() for p in t.values() if p is not None}
    for p in out_dir.glob("*.jpg"):  # pictures of predictions the run no longer holds
        if p.name not in wanted:
            p.unlink()
    return result


# -------------------------------------------------------------------------------------- plots
def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    s = buf.getvalue()
    return re.sub(r"<metadata>.*?</metadata>", "", s[s.find("<svg"):], flags=re.S)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                         "axes.spines.right": False})
    return plt


COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


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


# -------------------------------------------------------------------------------------- html
def _e(v) -> str:
    return html.escape(str(v))


def _pct(d: Optional[Dict[str, Any]]) -> str:
    if not d or d.get("acc") is None:
        return '<td class="num muted">–</td>'
    return f'<td class="num">{100 * d["acc"]:.1f}% <span class="muted">({d["hits"]}/{d["n"]})</span></td>'


def _delta_cell(a, b) -> str:
    dv = delta(a or {}, b or {})
    if dv is None:
        return '<td class="num muted">–</td>'
    cls = "pos" if dv > 0 else "neg" if dv < 0 else ""
    return f'<td class="num {cls}">{100 * dv:+.1f}</td>'


def split_groups(runs: Sequence[Run]) -> List[List[int]]:
    """Run positions grouped by split (first-seen order): comparisons are made within a group."""
    g: "OrderedDict[str, List[int]]" = OrderedDict()
    for i, r in enumerate(runs):
        g.setdefault(r.split, []).append(i)
    return list(g.values())


def breakdown_table(runs: Sequence[Run], key: str) -> str:
    """Buckets × runs, ``acc% (hits/n)``; plus Δ (percentage points) of each run against the first
    run of its split."""
    buckets = list(OrderedDict.fromkeys(b for r in runs for b in r.breakdowns.get(key, {})))
    if not buckets:
        return ""
    base = {i: g[0] for g in split_groups(runs) for i in g}
    head = "".join(f"<th>{_e(r.label)}<br><span class='muted'>{_e(r.split)}</span></th>" for r in runs)
    dcols = [i for i in range(len(runs)) if base[i] != i]
    head += "".join(f"<th>Δ {_e(runs[i].label)}<br><span class='muted'>vs {_e(runs[base[i]].label)}, pp</span></th>"
                    for i in dcols)
    body = []
    for b in buckets:
        extra = ""
        rng = runs[0].breakdowns.get(key, {}).get(b, {}).get("range")
        if rng:
            extra = f" <span class='muted'>({100 * rng[0]:.1f}–{100 * rng[1]:.1f}% of image)</span>"
        cells = "".join(_pct(r.breakdowns.get(key, {}).get(b)) for r in runs)
        cells += "".join(_delta_cell(runs[base[i]].breakdowns.get(key, {}).get(b),
                                     runs[i].breakdowns.get(key, {}).get(b)) for i in dcols)
        body.append(f"<tr><th class='rowh'>{_e(b)}{extra}</th>{cells}</tr>")
    return f"<table class='bd'><tr><th></th>{head}</tr>{''.join(body)}</table>"


def runs_table(runs: Sequence[Run]) -> str:
    rows = []
    for i, r in enumerate(runs):
        m = r.metrics
        acc = m.get("accuracy")
        pg = m.get("pointing_game")
        miou = "" if m.get("mean_iou") is None else f"{m['mean_iou']:.3f}"
        rows.append(
            f"<tr><td>{i + 1}</td><td><b style='color:{COLORS[i % len(COLORS)]}'>■</b> {_e(r.label)}</td>"
            f"<td>{_e(r.split)}</td><td class='num'>{_e(m.get('n', len(r.records)))}</td>"
            f"<td class='num'>{'' if acc is None else f'{100 * acc:.2f}%'} <span class='muted'>"
            f"(IoU {_e(r.iou_compare)} {r.iou_threshold:g})</span></td>"
            f"<td class='num'>{miou}</td>"
            f"<td class='num'>{'–' if pg is None else f'{100 * pg:.2f}%'}</td>"
            f"<td class='num'>{_e(m.get('n_skipped', 0))}</td><td class='path'>{_e(r.dir)}</td></tr>")
    details = "".join(
        f"<details><summary>run {i + 1}: {_e(r.label)} — identity, parameters, timing</summary>"
        f"<pre>{_e(json.dumps({'run.json': r.identity, 'timing': r.metrics.get('timing')}, indent=1, sort_keys=True))}"
        f"</pre></details>" for i, r in enumerate(runs))
    return ("<table class='runs'><tr><th>#</th><th>run (method · backbone)</th><th>split</th><th>rows</th>"
            "<th>Acc</th><th>mean IoU</th><th>pointing game</th><th>skipped</th><th>directory</th></tr>"
            + "".join(rows) + "</table>" + details)


def _rel(p: Path, html_dir: Path) -> str:
    return Path(os.path.relpath(Path(p).resolve(), html_dir.resolve())).as_posix()


def _data_uri(p: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(Path(p).read_bytes()).decode()


def gallery_data(runs: Sequence[Run], thumbs: Sequence[Dict[int, Dict[str, Optional[Path]]]], html_dir: Path,
                 embed: bool) -> Dict[str, Any]:
    """The JSON the page's script renders: per run, one compact object per row.

    Row keys: ``i`` index, ``p`` phrase, ``u`` IoU, ``h`` hit, ``s`` size, ``a`` area quartile, ``l`` length,
    ``t`` phrase type, ``g`` position of its image in the run's ``imgs``, ``x`` skipped, ``err`` error;
    thumbnails either embedded (``im``, ``mp`` data URIs) or linked as ``run.tb + k + ".jpg"`` (and
    ``k + "-m.jpg"`` for the score map when ``m``)."""
    out_runs = []
    for run, th in zip(runs, thumbs):
        rows, imgs, img_pos = [], [], {}
        tb = _rel(run.dir / CACHE_DIR / "thumbs", html_dir) + "/"
        for rec, a in zip(run.records, run.rows):
            t = th.get(int(rec["index"]), {})
            img = rec.get("image") or ""
            if img not in img_pos:
                img_pos[img] = len(imgs)
                imgs.append(_rel(Path(img), html_dir) if img else "")
            row = {"i": int(rec["index"]), "p": rec.get("phrase") or "", "u": round(a["iou"], 3), "h": int(a["hit"]),
                   "s": a["size"], "a": a["area"], "l": a["length"], "g": img_pos[img]}
            if a["phrase_type"]:
                row["t"] = a["phrase_type"]
            if a["skipped"]:
                row["x"] = 1
            if rec.get("error"):
                row["err"] = str(rec["error"])
            if embed:
                row["im"] = _data_uri(t["image"]) if t.get("image") else None
                row["mp"] = _data_uri(t["map"]) if t.get("map") else None
            elif t.get("image"):
                row["k"] = t["image"].stem
                row["m"] = int(t.get("map") is not None)
            rows.append(row)
        out_runs.append({"label": run.label, "split": run.split, "thr": run.iou_threshold, "cmp": run.iou_compare,
                         "color": COLORS[len(out_runs) % len(COLORS)], "tb": tb, "imgs": imgs, "rows": rows})
    return {"runs": out_runs, "groups": split_groups(runs),
            "buckets": {"s": list(SIZE_BUCKETS), "a": list(AREA_QUARTILES), "l": list(LENGTH_BUCKETS),
                        "t": list(PHRASE_TYPES)}}


def thumbnail_links(run: Dict[str, Any], row: Dict[str, Any]):
    """(boxes, score map) thumbnail links of a row of :func:`gallery_data` (as the page's script makes them)."""
    if "k" in row:
        return run["tb"] + row["k"] + ".jpg", (run["tb"] + row["k"] + "-m.jpg") if row.get("m") else None
    return row.get("im"), row.get("mp")


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}
header .muted{color:#b0bec5}main{padding:8px 24px 40px}
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:28px}h3{margin:18px 0 6px;font-size:15px}
table{border-collapse:collapse;background:#fff;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
vertical-align:top}th{background:#f0f3f5;font-weight:600;text-align:left}.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}.muted{color:#888;font-weight:normal;font-size:12px}
.path{font-family:monospace;font-size:11px;word-break:break-all}.pos{color:#1b7d2a}.neg{color:#c62828}
.bdgrid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px;align-items:start}
.panel{background:#fff;border:1px solid #ddd;border-radius:4px;padding:4px 12px 10px}.panel table{width:100%}
.plot svg{max-width:100%;height:auto;display:block;margin-top:6px}
details{margin:4px 0}pre{background:#fff;border:1px solid #ddd;padding:8px;font-size:11px;max-height:300px;overflow:auto}
.controls{position:sticky;top:0;z-index:2;background:#fafafa;padding:8px 0;border-bottom:1px solid #ddd;
display:flex;flex-wrap:wrap;gap:10px;align-items:center}.controls label{font-size:13px}
select,input,button{font:inherit;font-size:13px;padding:2px 4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:10px;margin-top:10px}
.card{background:#fff;border:1px solid #ddd;border-left:5px solid #2e7d32;border-radius:4px;padding:6px}
.card[data-hit="0"]{border-left-color:#c62828}.card .imgs{display:flex;gap:4px}
.card .imgs a,.card .imgs span{flex:1;min-width:0}.card img{width:100%;height:auto;display:block;background:#eee}
.card .ph{font-weight:600;margin:4px 0 2px;overflow-wrap:anywhere}.tag{display:inline-block;background:#eceff1;
border-radius:3px;padding:0 5px;margin:1px 2px 0 0;font-size:11px;color:#455a64}
.badge{font-weight:700}.hit{color:#2e7d32}.miss{color:#c62828}.pair{display:flex;gap:6px}.pair>div{flex:1;min-width:0}
.legend span{margin-right:14px}.sw{display:inline-block;width:14px;height:10px;border:2px solid;margin-right:4px;
vertical-align:middle}.pager{margin:10px 0;display:flex;gap:8px;align-items:center}
.cmpbox td{min-width:70px}.nomap{display:flex;align-items:center;justify-content:center;background:#f3f3f3;
color:#999;font-size:11px;min-height:60px;height:100%}.err{color:#c62828;font-size:12px}
"""

JS = r"""
(function(){
"use strict";
var D = JSON.parse(document.getElementById("report-data").textContent);
var B = document.body, errors = 0, broken = 0, PAGE = D.pageSize || 60;
window.addEventListener("error", function(){ errors++; B.dataset.errors = errors; });
function $(id){ return document.getElementById(id); }
function esc(s){ return String(s).replace(/[&<>"']/g, function(c){
  return {"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]; }); }
function opts(sel, values, labels){ sel.innerHTML = values.map(function(v, k){
  return '<option value="' + esc(v) + '">' + esc(labels ? labels[k] : v) + "</option>"; }).join(""); }
function hashState(){ var s = {}; location.hash.replace(/^#/, "").split("&").forEach(function(kv){
  if (!kv) return; var i = kv.indexOf("="); s[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] =
  i < 0 ? "" : decodeURIComponent(kv.slice(i + 1)); }); return s; }
function imgTag(src, alt){ return src ? '<img loading="lazy" src="' + esc(src) + '" alt="' + esc(alt) +
  '" onerror="window.__brokenImage()">' : '<span class="nomap">no score map</span>'; }
window.__brokenImage = function(){ broken++; B.dataset.brokenImages = broken; };
function tags(r){ var t = ['<span class="tag">size ' + esc(r.s) + "</span>", '<span class="tag">area ' + esc(r.a) +
  "</span>", '<span class="tag">' + esc(r.l) + " words</span>"]; if (r.t) t.push('<span class="tag">' + esc(r.t) + "</span>");
  return t.join(""); }
function figure(r){ var run = r.run, im = r.im, mp = r.mp;
  if (r.k){ im = run.tb + r.k + ".jpg"; mp = r.m ? run.tb + r.k + "-m.jpg" : null; }
  return '<div class="imgs"><a href="' + esc(run.imgs[r.g] || "#") + '" title="open the original image">' +
  imgTag(im, "boxes") + "</a><span>" + imgTag(mp, "score map") + "</span></div>"; }
D.runs.forEach(function(run){ run.rows.forEach(function(r){ r.run = run; if (r.t == null) r.t = ""; }); });
function outcome(r){ return '<span class="badge ' + (r.h ? "hit" : "miss") + '">' + (r.h ? "hit" : "miss") + "</span>"; }
function uniq(rows, k){ var seen = {}; rows.forEach(function(r){ if (r[k] !== "" && r[k] != null) seen[r[k]] = 1; });
  return Object.keys(seen); }
function ordered(k, present){ var o = (D.buckets[k] || []).filter(function(b){ return present.indexOf(b) >= 0; });
  return o.concat(present.filter(function(b){ return o.indexOf(b) < 0; }).sort()); }

// ------------------------------------------------------------------ gallery of one run
var G = {run: $("g-run"), filter: $("g-filter"), size: $("g-size"), area: $("g-area"), type: $("g-type"),
         len: $("g-len"), sort: $("g-sort"), q: $("g-q"), page: 0};
opts(G.run, D.runs.map(function(r, i){ return String(i); }), D.runs.map(function(r, i){
  return (i + 1) + ": " + r.label + " (" + r.split + ")"; }));
opts(G.filter, ["all", "hit", "miss"], ["hits and misses", "hits only", "misses only"]);
opts(G.sort, ["index", "iou", "-iou"], ["row index", "IoU ascending (worst first)", "IoU descending"]);
function fillBuckets(){
  var rows = D.runs[+G.run.value].rows;
  [["size", "s"], ["area", "a"], ["len", "l"], ["type", "t"]].forEach(function(p){
    var present = ordered(p[1], uniq(rows, p[1])), keep = G[p[0]].value;
    opts(G[p[0]], ["all"].concat(present), ["all"].concat(present));
    G[p[0]].value = present.indexOf(keep) >= 0 ? keep : "all";
    G[p[0]].parentNode.style.display = present.length ? "" : "none";
  });
}
function gMatch(r){
  var f = G.filter.value, q = G.q.value.trim().toLowerCase();
  return (f === "all" || (f === "hit") === !!r.h) && (G.size.value === "all" || r.s === G.size.value) &&
    (G.area.value === "all" || r.a === G.area.value) && (G.type.value === "all" || r.t === G.type.value) &&
    (G.len.value === "all" || r.l === G.len.value) && (!q || r.p.toLowerCase().indexOf(q) >= 0);
}
function sorter(key){ return key === "iou" ? function(a, b){ return a.u - b.u || a.i - b.i; } :
  key === "-iou" ? function(a, b){ return b.u - a.u || a.i - b.i; } : function(a, b){ return a.i - b.i; }; }
function pager(el, page, n, go){
  var pages = Math.max(1, Math.ceil(n / PAGE));
  el.innerHTML = '<button data-d="-1"' + (page <= 0 ? " disabled" : "") + '>&larr; previous</button> page ' +
    (page + 1) + " of " + pages + ' <button data-d="1"' + (page >= pages - 1 ? " disabled" : "") + ">next &rarr;</button>";
  el.querySelectorAll("button").forEach(function(b){ b.onclick = function(){ go(page + (+b.dataset.d)); }; });
}
function writeHash(){
  var s = hashState(), st = {run: G.run.value, filter: G.filter.value, size: G.size.value, area: G.area.value,
    type: G.type.value, len: G.len.value, sort: G.sort.value, q: G.q.value, page: String(G.page)};
  Object.keys(st).forEach(function(k){ s[k] = st[k]; });
  var h = Object.keys(s).filter(function(k){ return s[k] !== "" && s[k] !== "all" && !(k === "page" && s[k] === "0") &&
    !(k === "run" && s[k] === "0") && !(k === "sort" && s[k] === "index"); })
    .map(function(k){ return encodeURIComponent(k) + "=" + encodeURIComponent(s[k]); }).join("&");
  history.replaceState(null, "", h ? "#" + h : location.pathname + location.search);
}
function renderGallery(){
  var run = D.runs[+G.run.value], rows = run.rows.filter(gMatch).sort(sorter(G.sort.value));
  var pages = Math.max(1, Math.ceil(rows.length / PAGE));
  G.page = Math.min(Math.max(0, G.page), pages - 1);
  var show = rows.slice(G.page * PAGE, (G.page + 1) * PAGE);
  $("g-grid").innerHTML = show.map(function(r){
    return '<div class="card gcard" data-hit="' + r.h + '" data-index="' + r.i + '">' + figure(r) +
      '<div class="ph">&ldquo;' + esc(r.p) + '&rdquo;</div><div>' + outcome(r) + " &middot; IoU " + r.u.toFixed(3) +
      ' &middot; <span class="muted">row ' + r.i + "</span></div>" + (r.err ? '<div class="err">' + esc(r.err) + "</div>" : "") +
      "<div>" + tags(r) + "</div></div>"; }).join("");
  var hits = rows.filter(function(r){ return r.h; }).length;
  $("g-count").textContent = rows.length + " of " + run.rows.length + " rows match (" + hits + " hits, " +
    (rows.length - hits) + " misses; Acc " + (rows.length ? (100 * hits / rows.length).toFixed(1) + "%" : "–") + ")";
  pager($("g-pager"), G.page, rows.length, function(p){ G.page = p; renderGallery(); window.scrollTo(0, $("gallery").offsetTop); });
  pager($("g-pager2"), G.page, rows.length, function(p){ G.page = p; renderGallery(); window.scrollTo(0, $("gallery").offsetTop); });
  B.dataset.visible = rows.length; B.dataset.shown = show.length;
  B.dataset.shownHits = show.filter(function(r){ return r.h; }).length;
  writeHash();
}
["filter", "size", "area", "type", "len", "sort"].forEach(function(k){ G[k].onchange = function(){ G.page = 0; renderGallery(); }; });
G.q.oninput = function(){ G.page = 0; renderGallery(); };
G.run.onchange = function(){ G.page = 0; fillBuckets(); renderGallery(); };

// ------------------------------------------------------------------ flips between two runs
var C = {a: $("c-a"), b: $("c-b"), kind: $("c-kind"), page: 0};
var pairs = D.groups.filter(function(g){ return g.length > 1; });
if (pairs.length){
  var members = [].concat.apply([], pairs), lab = function(i){ return (i + 1) + ": " + D.runs[i].label; };
  opts(C.a, members.map(String), members.map(lab)); opts(C.b, members.map(String), members.map(lab));
  C.b.value = String(pairs[0][1]); C.a.value = String(pairs[0][0]);
  opts(C.kind, ["both", "ab", "ba", "any"], ["all flips", "A hit, B miss", "A miss, B hit", "all rows"]);
}
function renderCompare(){
  if (!pairs.length) return;
  var A = D.runs[+C.a.value], Bq = D.runs[+C.b.value], byB = {};
  if (A.split !== Bq.split){ $("c-table").innerHTML = '<p class="err">These runs are on different splits (' +
    esc(A.split) + " vs " + esc(Bq.split) + "): pick two runs of one split.</p>"; $("c-grid").innerHTML = ""; return; }
  Bq.rows.forEach(function(r){ byB[r.i] = r; });
  var both = [], n = [0, 0, 0, 0];
  A.rows.forEach(function(r){ var s = byB[r.i]; if (!s) return; both.push([r, s]); n[(r.h ? 0 : 2) + (s.h ? 0 : 1)]++; });
  $("c-table").innerHTML = '<table class="cmpbox"><tr><th></th><th>B hit</th><th>B miss</th></tr><tr><th>A hit</th><td class="num">' +
    n[0] + '</td><td class="num neg">' + n[1] + '</td></tr><tr><th>A miss</th><td class="num pos">' + n[2] +
    '</td><td class="num">' + n[3] + "</td></tr></table><p>" + both.length + " rows in both runs; B − A = " +
    (n[2] - n[1]) + " rows (" + (both.length ? (100 * (n[2] - n[1]) / both.length).toFixed(2) : "0") + " pp).</p>";
  var k = C.kind.value, sel = both.filter(function(p){ return k === "any" || (k === "ab" && p[0].h && !p[1].h) ||
    (k === "ba" && !p[0].h && p[1].h) || (k === "both" && p[0].h !== p[1].h); });
  sel.sort(function(x, y){ return Math.abs(y[1].u - y[0].u) - Math.abs(x[1].u - x[0].u) || x[0].i - y[0].i; });
  var pages = Math.max(1, Math.ceil(sel.length / PAGE)); C.page = Math.min(Math.max(0, C.page), pages - 1);
  $("c-grid").innerHTML = sel.slice(C.page * PAGE, (C.page + 1) * PAGE).map(function(p){
    return '<div class="card" data-hit="' + p[1].h + '" data-index="' + p[0].i + '"><div class="ph">&ldquo;' + esc(p[0].p) +
      '&rdquo; <span class="muted">row ' + p[0].i + '</span></div><div class="pair">' + [p[0], p[1]].map(function(r, j){
      return "<div><b>" + (j ? "B" : "A") + "</b> " + outcome(r) + " IoU " + r.u.toFixed(3) + figure(r) + "</div>"; }).join("") +
      "</div><div>" + tags(p[0]) + "</div></div>"; }).join("");
  $("c-count").textContent = sel.length + " rows";
  pager($("c-pager"), C.page, sel.length, function(p){ C.page = p; renderCompare(); });
  B.dataset.flips = n[1] + n[2];
}
if (pairs.length){ [C.a, C.b, C.kind].forEach(function(el){ el.onchange = function(){ C.page = 0; renderCompare(); }; }); }

// ------------------------------------------------------------------ start from the URL hash
var s = hashState();
if (s.run && D.runs[+s.run]) G.run.value = s.run;
fillBuckets();
["filter", "size", "area", "type", "len", "sort"].forEach(function(k){
  if (s[k] && Array.prototype.some.call(G[k].options, function(o){ return o.value === s[k]; })) G[k].value = s[k]; });
if (s.q) G.q.value = s.q;
G.page = Math.max(0, parseInt(s.page || "0", 10) || 0);
renderGallery(); renderCompare();
B.dataset.errors = errors; B.dataset.brokenImages = broken; B.dataset.ready = "1";
B.dataset.scriptMs = Math.round(performance.now());
})();
"""


def render_html(runs: Sequence[Run], data: Dict[str, Any], title: str) -> str:
    sections = []
    plots = {k: bar_plot(runs, k) for k in BREAKDOWN_TITLES}
    for key, name in BREAKDOWN_TITLES.items():
        table = breakdown_table(runs, key)
        if not table:
            why = ("no row carries a phrase type (the split does not record Flickr30k Entities types)"
                   if key == "by_phrase_type" else "rows carry no image size")
            sections.append(f"<div class='panel'><h3>{_e(name)}</h3><p class='muted'>Not available: {why}.</p></div>")
            continue
        sections.append(f"<div class='panel'><h3>{_e(name)}</h3>{table}"
                        f"<div class='plot'>{plots[key] or ''}</div></div>")
    curve_tab = breakdown_table(runs, "acc_curve").replace("<th class='rowh'>", "<th class='rowh'>IoU &gt; ")
    if runs and runs[0].iou_compare == ">=":
        curve_tab = curve_tab.replace("IoU &gt; ", "IoU ≥ ")
    curve = (f"<div class='panel'><h3>Accuracy over IoU thresholds</h3>{curve_tab}</div>"
             f"<div class='panel'><h3>Acc-vs-IoU curve and IoU distribution</h3>"
             f"<div class='plot'>{curve_plot(runs)}</div>"
             f"<div class='plot'>{iou_hist_plot(runs)}</div></div>")
    groups = [g for g in split_groups(runs) if len(g) > 1]
    compare = ""
    if groups:
        compare = ("<h2 id='compare'>Comparison: rows that flip</h2><p class='muted'>Rows of one split where run A "
                   "and run B disagree (hit under each run's own IoU rule). Per-bucket differences are the Δ columns "
                   "of the breakdown tables above. Cards sorted by |IoU<sub>B</sub> − IoU<sub>A</sub>|.</p>"
                   "<div class='controls'><label>A <select id='c-a'></select></label><label>B <select id='c-b'>"
                   "</select></label><label>show <select id='c-kind'></select></label><span id='c-count' "
                   "class='muted'></span></div><div id='c-table'></div><div id='c-pager' class='pager'></div>"
                   "<div id='c-grid' class='grid'></div>")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    gen = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body data-ready="0">
<header><h1>{_e(title)}</h1><div class="muted">{len(runs)} run(s) · generated {gen} by grounding-report ·
<a style="color:#b0bec5" href="#breakdowns">breakdowns</a> · {'<a style="color:#b0bec5" href="#compare">comparison</a> · ' if groups else ''}
<a style="color:#b0bec5" href="#gallery">gallery</a></div></header>
<main>
<h2>Runs</h2>{runs_table(runs)}
<h2 id="breakdowns">Where the methods fail</h2>
<p class="muted">Accuracy with the run's hit rule; (hits/n) beside every rate; a skipped row counts as a miss.
Box sizes use the ground-truth box in original-image pixels. Δ: percentage points against the first run of the same split.</p>
<div class="bdgrid">{curve}
{''.join(sections)}</div>
{compare}
<h2 id="gallery">Gallery</h2>
<p class="legend"><span><i class="sw" style="border-color:rgb{GT_RGB}"></i>ground truth</span>
<span><i class="sw" style="border-color:rgb{PRED_RGB}"></i>prediction</span>
<span>right: score map (jet, blue = low, red = high, min-max normalised per row)</span>
<span class="muted">click an image to open the original</span></p>
<div class="controls"><label>run <select id="g-run"></select></label>
<label>outcome <select id="g-filter"></select></label><label>size <select id="g-size"></select></label>
<label>area <select id="g-area"></select></label><label>phrase type <select id="g-type"></select></label>
<label>words <select id="g-len"></select></label><label>sort <select id="g-sort"></select></label>
<label>phrase contains <input id="g-q" type="search" size="14"></label><span id="g-count" class="muted"></span></div>
<div id="g-pager" class="pager"></div><div id="g-grid" class="grid"></div><div id="g-pager2" class="pager"></div>
</main>
<script type="application/json" id="report-data">{payload}</script>
<script>{JS}</script>
</body></html>
"""


def build_report(run_paths: Sequence, out: Path, *, embed: str = "auto", thumb_size: int = 256, page_size: int = 60,
                 title: Optional[str] = None, progress: bool = True) -> Path:
    """Write the report for the runs named by ``run_paths`` to ``out``; returns its path."""
    out = Path(out)
    runs = [load_run(d) for d in find_run_dirs(run_paths)]
    labels = [r.label for r in runs]
    for r in runs:
        if labels.count(r.label) > 1:
            r.suffix = r.dir.name
    n_rows = sum(len(r.records) for r in runs)
    do_embed = embed == "always" or (embed == "auto" and n_rows <= EMBED_MAX_ROWS)
    thumbs = [make_thumbnails(r, thumb_size, progress) for r in runs]
    out.parent.mkdir(parents=True, exist_ok=True)
    data = gallery_data(runs, thumbs, out.parent, do_embed)
    data["pageSize"] = int(page_size)
    splits = ", ".join(OrderedDict.fromkeys(r.split for r in runs))
    page = render_html(runs, data, title or f"Phrase grounding report — {splits}")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def main(argv=None) -> int:
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
    a = ap.parse_args(argv)
    try:
        out = build_report(a.runs, Path(a.out), embed=a.embed, thumb_size=a.thumb_size, page_size=a.page_size,
                           title=a.title)
    except (FileNotFoundError, ValueError) as e:
        print(f"grounding-report: error: {e}", file=sys.stderr)
        return 2
    print(f"report: {out.resolve()}")
    print(f"open:   file://{out.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
