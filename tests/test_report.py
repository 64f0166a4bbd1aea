"""Error-analysis breakdowns, the HTML run report, and the report in a real (headless) browser.

Prediction records and images are made by hand here: no model runs. The breakdown numbers below are
worked out by hand from the six rows of ``ROWS``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grounding.evaluation.breakdown import annotate, area_edges, breakdowns, length_bucket, size_bucket
from grounding.evaluation.mapstore import load_score_map, map_thumbnail, save_score_map
from grounding.evaluation.evaluator import GroundingEvaluator, box_iou
from grounding.evaluation.report.cli import build_report, main
from grounding.evaluation.report.load import find_run_dirs
from grounding.evaluation.report.render import thumbnail_links

ARTIFACTS = Path(__file__).resolve().parents[1] / "outputs" / "test-artifacts"

# index, image size (w, h), gt box, pred box (None: skipped), phrase, phrase type
#   IoUs: 1, 0.5 (exactly), 1/7, 1, skipped, 0.5 (exactly)
#   GT areas: 400 (small), 1600 (medium), 10000 (large), 1024 = 32² (medium: COCO's bound is strict),
#             961 (small), 9216 = 96² (large)
#   area fractions: 0.05, 0.16, 0.25, 0.125, 0.0961, 0.5
ROWS = [
    (0, (100, 80), [0, 0, 20, 20], [0, 0, 20, 20], "dog", "animals"),
    (1, (100, 100), [0, 0, 40, 40], [0, 0, 40, 20], "a red car", "vehicles"),
    (2, (200, 200), [0, 0, 100, 100], [50, 50, 150, 150], "the man in a blue shirt", "people"),
    (3, (128, 64), [10, 10, 42, 42], [10, 10, 42, 42], "two dogs", "animals"),
    (4, (100, 100), [0, 0, 31, 31], None, "a big brown dog", None),
    (5, (192, 96), [0, 0, 96, 96], [0, 0, 96, 48], "people", "people"),
]


def records(image_dir=None):
    out = []
    for i, size, gt, pred, phrase, ptype in ROWS:
        rec = {"index": i, "image": str(Path(image_dir or "/nonexistent") / f"img{i}.png"), "phrase": phrase,
               "gt_box": [float(v) for v in gt], "pred_box": None if pred is None else [float(v) for v in pred],
               "image_size": list(size), "phrase_type": ptype}
        if pred is None:
            rec.update(iou=0.0, hit=False, pointing=None, skipped=True, error="FileNotFoundError: img4.png")
        out.append(rec)
    return out


def _acc(d):
    return {k: (v["hits"], v["n"]) for k, v in d.items()}


# ----------------------------------------------------------------------------------- breakdowns
def test_breakdowns_strict_rule_hand_computed():
    b = breakdowns(records(), 0.5, ">")
    assert b["n"] == 6 and b["iou_threshold"] == 0.5 and b["iou_compare"] == ">"
    assert _acc(b["by_size"]) == {"small": (1, 2), "medium": (1, 2), "large": (0, 2)}
    assert b["by_size"]["small"]["acc"] == 0.5
    assert _acc(b["by_phrase_length"]) == {"1": (1, 2), "2": (1, 1), "3": (0, 1), "4-5": (0, 1), "6+": (0, 1)}
    # only typed rows; every Flickr30k Entities type is listed, empty ones with n = 0 and acc None
    t = b["by_phrase_type"]
    assert (_acc(t)["animals"], _acc(t)["vehicles"], _acc(t)["people"]) == ((2, 2), (0, 1), (0, 2))
    assert t["scene"] == {"n": 0, "hits": 0, "acc": None}
    # quartile edges of (0.05, 0.0961, 0.125, 0.16, 0.25, 0.5), numpy's linear interpolation
    assert np.allclose(area_edges([0.05, 0.16, 0.25, 0.125, 0.0961, 0.5]), [0.103325, 0.1425, 0.2275])
    assert _acc(b["by_area_fraction"]) == {"Q1": (1, 2), "Q2": (1, 1), "Q3": (0, 1), "Q4": (0, 2)}
    assert np.allclose(b["by_area_fraction"]["Q1"]["range"], [0.0, 0.103325])
    # curve: IoUs 1, .5, 1/7, 1, 0 (skipped), .5
    c = _acc(b["acc_curve"])
    assert c["0.1"] == (5, 6) and c["0.2"] == c["0.4"] == (4, 6) and c["0.5"] == c["0.9"] == (2, 6)


def test_breakdowns_inclusive_rule_moves_the_boundary_rows():
    b = breakdowns(records(), 0.5, ">=")
    assert _acc(b["by_size"]) == {"small": (1, 2), "medium": (2, 2), "large": (1, 2)}
    assert _acc(b["by_phrase_type"])["people"] == (1, 2)
    assert _acc(b["acc_curve"])["0.5"] == (4, 6)
    with pytest.raises(ValueError, match="iou_compare"):
        breakdowns(records(), 0.5, "=>")


def test_breakdowns_agree_with_the_evaluator_and_partition_the_rows():
    recs = records()
    ev = GroundingEvaluator(iou_threshold=0.5)
    ev.process(recs)
    m = ev.evaluate()
    b = breakdowns(recs, 0.5)
    for key in ("by_size", "by_area_fraction", "by_phrase_length"):
        assert sum(v["n"] for v in b[key].values()) == m["n"]
        assert sum(v["hits"] for v in b[key].values()) == round(m["accuracy"] * m["n"])
    for t, v in b["acc_curve"].items():
        assert v["acc"] == pytest.approx(m["acc_at"][t])


def test_buckets_and_missing_fields():
    assert [size_bucket({"gt_box": [0, 0, w, w]}) for w in (31, 32, 95, 96)] == ["small", "medium", "medium", "large"]
    assert [length_bucket(p) for p in ("a", "a b", "a b c", "a b c d e", "a b c d e f", "")] == \
        ["1", "2", "3", "4-5", "6+", "unknown"]
    bare = [{k: v for k, v in r.items() if k not in ("image_size", "phrase_type")} for r in records()]
    b = breakdowns(bare, 0.5)
    assert b["by_area_fraction"] == {} and b["by_phrase_type"] == {}
    assert [r["area"] for r in annotate(bare, 0.5)] == ["unknown"] * 6


def test_map_thumbnail_normalises_and_shrinks(tmp_path):
    m = np.arange(224 * 112, dtype=np.float32).reshape(112, 224)
    t = map_thumbnail(m)
    assert t.dtype == np.uint8 and t.shape == (28, 56) and t.min() <= 5 and t.max() >= 250
    assert (np.diff(t.astype(int), axis=0) > 0).all()  # area average keeps the order
    save_score_map(tmp_path, 7, np.full((5, 5), np.nan))
    assert load_score_map(tmp_path, 7).max() == 0.0 and load_score_map(tmp_path, 8) is None


# --------------------------------------------------------------------------------------- report
def make_run(root: Path, name: str, flip=(), method="ours", split="demo", with_maps=True) -> Path:
    """A run directory as grounding-eval leaves it; rows in ``flip`` get their prediction replaced by the
    GT box (a miss becomes a hit) or moved off it (a hit becomes a miss)."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    run = root / name
    run.mkdir(parents=True)
    recs = records(img_dir)
    for r, (i, (w, h), *_rest) in zip(recs, ROWS):
        if not (img_dir / f"img{i}.png").exists() and i != 4:  # row 4's image is missing (a skipped row)
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
                img_dir / f"img{i}.png")
        if i in flip and not r.get("skipped"):
            x1, y1, x2, y2 = r["gt_box"]
            r["pred_box"] = list(r["gt_box"]) if r["pred_box"] != r["gt_box"] else [x2, y2, x2 + 5, y2 + 5]
        if with_maps and not r.get("skipped"):
            save_score_map(run, i, np.random.default_rng(i).random((14, 14)))
    ident = {"split": split, "method": method, "backbone": "toy", "backbone_key": "toy", "overrides": {},
             "iou_threshold": 0.5, "params": {"alpha": 0.5}}
    ev = GroundingEvaluator(0.5)
    ev.process(recs)
    metrics = dict(ev.evaluate(), **{k: ident[k] for k in ("split", "method", "backbone", "backbone_key")})
    for r in recs:
        if not r.get("skipped"):
            r["iou"] = float(box_iou(r["pred_box"], r["gt_box"]))
            r["hit"] = r["iou"] > 0.5
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (run / "run.json").write_text(json.dumps(ident))
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def page_data(html_text: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html_text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_report_links_cached_thumbnails_and_compares_runs(tmp_path):
    a = make_run(tmp_path / "runs", "a", method="crop_rank")
    b = make_run(tmp_path / "runs", "b", flip={0, 1}, method="ours")  # row 0: hit → miss; row 1: miss → hit
    out = tmp_path / "site" / "report.html"
    assert find_run_dirs([tmp_path / "runs"]) == [a, b]
    build_report([a, b], out, embed="never", progress=False)
    text = out.read_text()
    data = page_data(text)
    assert [r["label"] for r in data["runs"]] == ["crop_rank · toy", "ours · toy"] and data["groups"] == [[0, 1]]
    ra, rb = ({r["index"]: r for r in run["rows"]} for run in data["runs"])
    keys = {k for run in data["runs"] for r in run["rows"] for k in r} | set(data["runs"][0]) | set(data)
    assert keys == {"index", "phrase", "iou", "hit", "size", "area", "length", "phrase_type", "image", "skipped",
                    "error", "thumb", "has_map", "label", "split", "iou_threshold", "iou_compare", "color",
                    "thumb_dir", "images", "rows", "runs", "groups", "buckets", "page_size"}  # words, not letters
    links = {i: thumbnail_links(data["runs"][0], r) for i, r in ra.items()}
    assert [ra[i]["hit"] for i in range(6)] == [1, 0, 0, 1, 0, 0]
    assert [rb[i]["hit"] for i in range(6)] == [0, 1, 0, 1, 0, 0]
    assert ra[4]["skipped"] == 1 and links[4][1] is None and "FileNotFoundError" in ra[4]["error"]
    assert (ra[0]["size"], ra[0]["area"], ra[0]["phrase_type"], ra[0]["length"]) == ("small", "Q1", "animals", "1")
    assert data["runs"][0]["images"][ra[0]["image"]] == "../runs/images/img0.png"  # link to the original
    # thumbnails: relative links that resolve, ≤ 256 px, under the run's report_cache
    assert all(links[i][1] for i in (0, 1, 2, 3, 5))
    for pair in links.values():
        for link in pair:
            if link:
                p = (out.parent / link).resolve()
                assert p.is_file() and p.parent == (a / "report_cache" / "thumbs").resolve()
                with Image.open(p) as im:
                    assert max(im.size) <= 256
    # the boxes are drawn: GT yellow and prediction red pixels on row 5's thumbnail
    with Image.open(out.parent / links[5][0]) as im:
        px = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    assert ((px[:, 0] > 200) & (px[:, 1] > 180) & (px[:, 2] < 80)).any()
    assert ((px[:, 0] > 190) & (px[:, 1] < 70) & (px[:, 2] < 70)).any()
    # identity, metrics, breakdown tables with counts, Δ against the first run, plots, comparison view
    assert "crop_rank · toy" in text and "33.33%" in text and "(1/2)" in text
    assert "Δ ours · toy" in text and "+50.0" in text  # small: 1/2 → 0/2 is −50, medium 1/2 → 2/2 is +50
    assert text.count("<svg") >= 5 and "id='compare'" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//|url\((https?:)?//|@import""", text)  # no network
    # thumbnails are cached: a second report redraws nothing
    stamps = {p: p.stat().st_mtime_ns for p in (a / "report_cache").rglob("*.jpg")}
    build_report([a, b], out, embed="never", progress=False)
    assert {p: p.stat().st_mtime_ns for p in (a / "report_cache").rglob("*.jpg")} == stamps
    # a changed prediction gets a new picture; the stale one goes
    recs = [json.loads(ln) for ln in (a / "predictions.jsonl").read_text().splitlines()]
    recs[0]["pred_box"] = [1.0, 1.0, 9.0, 9.0]
    (a / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    build_report([a, b], out, embed="never", progress=False)
    changed = set((a / "report_cache").rglob("*.jpg")) ^ set(stamps)
    assert len(changed) == 4 and all(p.name.startswith("000000-") for p in changed)


def test_report_embeds_small_runs_and_cli(tmp_path, capsys):
    a = make_run(tmp_path, "a", with_maps=False)
    out = tmp_path / "r.html"
    assert main([str(a), "-o", str(out)]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    rows = page_data(out.read_text())["runs"][0]["rows"]
    assert rows[0]["image_thumb"].startswith("data:image/jpeg;base64,") and rows[0]["map_thumb"] is None
    assert "id='compare'" not in out.read_text()  # one run: no comparison
    assert main([str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert "no such run directory" in capsys.readouterr().err


# -------------------------------------------------------------------------------------- browser
def chromium_binary():
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(chromium_binary() is None, reason="no Chromium binary on PATH (Debian: apt-get install chromium; "
                                                       "or set CHROMIUM=/path/to/chrome)")
def test_report_in_headless_chromium(tmp_path):
    a = make_run(tmp_path / "runs", "a", method="crop_rank")
    b = make_run(tmp_path / "runs", "b", flip={0, 1})
    out = tmp_path / "report.html"
    build_report([a, b], out, embed="never", page_size=2, progress=False)  # linked thumbnails, 2 per page
    misses = sum(1 for r in page_data(out.read_text())["runs"][0]["rows"] if not r["hit"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report_miss_filter.png"
    shot.unlink(missing_ok=True)
    cmd = [chromium_binary(), "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2600", "--virtual-time-budget=3000",
           f"--screenshot={shot}", "--dump-dom", out.resolve().as_uri() + "#filter=miss"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, "the page wrote to the browser console:\n" + "\n".join(console)
    body = re.search(r"<body([^>]*)>", p.stdout).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attrs["ready"] == "1" and attrs["errors"] == "0" and attrs["broken-images"] == "0", attrs
    assert int(attrs["visible"]) == misses == 4 and attrs["shown"] == "2" and attrs["shown-hits"] == "0"
    cards = re.findall(r'class="card gcard" data-hit="(\d)"', p.stdout)
    assert cards == ["0", "0"]
    assert attrs["flips"] == "2"
    assert shot.is_file() and shot.stat().st_size > 10_000


# -------------------------------------------------------------------------------------- figures
def test_figure_title_wraps_and_names_the_method():
    from grounding.evaluation.viz import figure_title

    t = figure_title("a man in a red jacket standing next to a bicycle leaning against the wall", iou=0.5,
                     method="ours", backbone="ViT-L/14", width=30)
    lines = t.split("\n")
    assert lines[0] == "ours · ViT-L/14" and len(lines) >= 3 and max(map(len, lines)) <= 30
    assert lines[-1].endswith("(IoU 0.50)")
    assert figure_title("dog", title="custom") == "custom"


@pytest.mark.parametrize("h, w", [(60, 480), (480, 60), (200, 300)])
def test_figure_has_no_blank_strip(tmp_path, h, w):
    from grounding.evaluation.viz import save_figure

    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    p = save_figure(tmp_path / "f.png", img, np.random.default_rng(1).random((7, 7)), [5, 5, w // 2, h // 2], "a phrase",
                    gt_box=[0, 0, w // 3, h // 3], iou=0.3, method="ours", backbone="toy")
    save_figure(tmp_path / "old.png", img, None, [5, 5, 20, 20], "old call", [0, 0, 9, 9], "a title")  # old signature
    px = np.asarray(Image.open(p).convert("L"))
    blank_rows = (px > 250).all(axis=1).mean()
    blank_cols = (px > 250).all(axis=0).mean()
    assert blank_rows < 0.3 and blank_cols < 0.3, (blank_rows, blank_cols)
