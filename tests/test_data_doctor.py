"""grounding-data check / layout (issue 25): generated data roots and the real Flickr30k Entities fixtures; a run
on a truncated split is marked incomplete in run.json, metrics.json and the tables."""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import FIXTURES, make_flickr_split
from grounding.data.completeness import completeness, mark_incomplete
from grounding.data.demo import write_demo_data
from grounding.data.doctor import check_split, layout, split_config
from test_refcoco import ANNS, IMAGES, REFS, _ref, _write

ROOT = Path(__file__).resolve().parents[1]
ENT = FIXTURES / "flickr30k_entities"


def _cli(*args, cwd=ROOT):
    """``grounding-data ARGS`` in a fresh interpreter; also reports whether torch got imported."""
    code = ("import sys; from grounding.cli.data import main; rc = main(sys.argv[1:]); "
            "print('TORCH', 'torch' in sys.modules); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "TORCH False" in r.stdout, r.stdout + r.stderr
    return r.returncode, r.stdout.replace("TORCH False\n", ""), r.stderr


@pytest.fixture()
def demo_root(tmp_path):
    write_demo_data(tmp_path)
    return tmp_path


def _line(out, split):
    lines = [l for l in out.splitlines() if l.startswith(f"{split}:")]
    assert len(lines) == 1, out
    return lines[0]


# ------------------------------------------------------------------------------------------- the CLI on the demo
def test_complete_demo_root_is_ok_exit_0_without_torch(demo_root):
    rc, out, err = _cli("check", "split=demo", f"data_root={demo_root}")
    assert rc == 0, out + err
    assert _line(out, "demo") == "demo: ok (93 rows = published 93; 30 images)"
    assert "1 splits under" in out and "1 ok, 0 missing, 0 incomplete" in out


def test_missing_file_names_it_and_its_source(demo_root):
    csv = demo_root / "ds_csv_ann/demo/csv_dir/test.csv"
    csv.unlink()
    rc, out, _ = _cli("check", "split=demo", f"data_root={demo_root}")
    assert rc == 1
    line = _line(out, "demo")
    assert line.startswith("demo: missing — not found: ") and str(csv) in line and "bundled demo" in line
    assert not csv.exists()  # the doctor never regenerates (nor downloads) anything


def test_truncated_csv_is_incomplete(demo_root):
    csv = demo_root / "ds_csv_ann/demo/csv_dir/test.csv"
    text = csv.read_text()
    csv.write_text(text[:len(text) // 2])  # a download cut mid-row
    rc, out, _ = _cli("check", "split=demo", f"data_root={demo_root}")
    assert rc == 1
    line = _line(out, "demo")
    n = len(text[:len(text) // 2].splitlines()) - 1  # data rows left, the last one cut
    assert line.startswith("demo: incomplete — ") and f"{n} rows, but the published test set has 93" in line
    assert "1 of" in line and "rows unusable" in line  # the cut row, named by the loader


def test_missing_and_undecodable_images_are_incomplete(demo_root):
    for i in (5, 17, 29):
        (demo_root / f"demo-images/demo_{i:04d}.png").unlink()
    (demo_root / "demo-images/demo_0000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # header, no pixels
    rc, out, _ = _cli("check", "split=demo", f"data_root={demo_root}")
    assert rc == 1
    line = _line(out, "demo")
    assert re.search(r"3 of 30 images missing or empty \(\d+ rows\), e\.g\. .*demo_0005\.png", line), line
    assert "sampled images do not decode, e.g. " in line and "demo_0000.png" in line
    assert "93 rows" not in line  # the row count itself is the published one


def test_json_and_unknown_split(demo_root):
    rc, out, _ = _cli("check", "split=demo", f"data_root={demo_root}", "--json")
    d = json.loads(out)
    assert rc == 0 and d["ok"] is True and d["splits"][0]["status"] == "ok" and d["splits"][0]["rows"] == 93
    assert d["splits"][0]["expected_rows"] == 93
    rc, _, err = _cli("check", "split=demo_typo", f"data_root={demo_root}")
    assert rc == 2 and "unknown split 'demo_typo'" in err and len(err.strip().splitlines()) == 1


def test_every_split_is_checked_by_default(demo_root):
    rc, out, _ = _cli("check", f"data_root={demo_root}")
    names = sorted(p.stem for p in (ROOT / "conf/split").glob("*.yaml"))
    assert rc == 1 and [l.split(":")[0] for l in out.splitlines()[:-1]] == names
    assert _line(out, "demo").startswith("demo: ok")
    assert "refer/refcoco/refs(unc).p" in _line(out, "refcoco_val") and "lichengunc/refer" in _line(out, "refcoco_val")


# ------------------------------------------------------------------------------------------- RefCOCO
def _refcoco_cfg(name, rows):
    cfg = split_config(name)
    cfg.expected_rows = rows  # the generated data set's size stands for the published one
    return cfg


def test_refcoco_complete_ok(tmp_path):
    _write(tmp_path)
    r = check_split(_refcoco_cfg("refcoco_val", 3), tmp_path)
    assert (r.status, r.problems, r.rows, r.images) == ("ok", [], 3, 1)


def test_refcoco_registry_size_differs_on_a_small_root(tmp_path):
    _write(tmp_path)
    r = check_split(split_config("refcoco_testA"), tmp_path)
    assert r.status == "incomplete" and r.problems == ["4 rows, but the published test set has 5657 (" +
                                                       split_config("refcoco_testA").expected_rows_source + ")"]


def test_refs_whose_ann_ids_are_not_in_instances(tmp_path):
    _write(tmp_path, anns=[a for a in ANNS if a["id"] not in (13, 10)])  # instances.json of another download
    r = check_split(_refcoco_cfg("refcoco_val", 3), tmp_path)
    assert r.status == "incomplete"
    assert r.problems[0].startswith("2 of 6 refs' ann_id not in ") and "ann_id 10" in r.problems[0]
    assert "3 of 3 rows unusable" in r.problems[1] and "annotation id 13" in r.problems[1]


def test_wrong_partition(tmp_path):
    umd = [_ref(0, 10, 1, "train", [(0, "a man")]), _ref(1, 12, 2, "val", [(1, "a table")]),
           _ref(2, 11, 1, "test", [(2, "the man"), (3, "guy")])]
    _write(tmp_path, refs=umd)  # a UMD-partition pickle saved as refs(unc).p
    r = check_split(_refcoco_cfg("refcoco_val", 1), tmp_path)
    assert r.status == "incomplete" and len(r.problems) == 1
    assert "holds split labels {test, train, val}, not the unc partition (train, val, testA, testB)" in r.problems[0]
    _write(tmp_path, refs=REFS, dataset="refcocog", split_by="umd")  # a UNC pickle saved as refs(umd).p
    r = check_split(_refcoco_cfg("refcocog_val", 3), tmp_path)
    assert r.status == "incomplete" and "not the umd partition" in r.problems[0]
    _write(tmp_path, refs=umd, dataset="refcocog", split_by="umd")
    assert check_split(_refcoco_cfg("refcocog_test", 2), tmp_path).status == "ok"


def test_refcoco_cli_line(tmp_path):
    _write(tmp_path, anns=[a for a in ANNS if a["id"] != 13])
    rc, out, _ = _cli("check", "split=refcoco_val", "split=refcoco_testB", f"data_root={tmp_path}")
    assert rc == 1 and "1 of 6 refs' ann_id not in" in _line(out, "refcoco_val")
    assert "published test set has 5095" in _line(out, "refcoco_testB")


# ------------------------------------------------------------------------------------------- Flickr30k Entities
needs_fixtures = pytest.mark.skipif(not (ENT / "Annotations" / "65567.xml").is_file(),
                                    reason=f"real fixtures not found at {FIXTURES}")


def _entities_root(tmp_path, ids):
    d = tmp_path / "flickr30k_entities"
    shutil.copytree(ENT / "Sentences", d / "Sentences")
    shutil.copytree(ENT / "Annotations", d / "Annotations")
    (d / "test.txt").write_text("".join(f"{i}\n" for i in ids))
    (tmp_path / "flickr30k-images").mkdir()
    for i in ids:
        Image.new("RGB", (375, 500), (20, 90, 40)).save(tmp_path / "flickr30k-images" / f"{i}.jpg")
    return tmp_path


@needs_fixtures
def test_flickr_entities_real_files_ok(tmp_path):
    root = _entities_root(tmp_path, ["65567"])
    cfg = split_config("flickr30k_entities_test")
    cfg.expected_rows = 10  # 65567: 13 phrase occurrences, 3 without a box (see test_flickr_entities)
    r = check_split(cfg, root)
    assert (r.status, r.rows, r.images) == ("ok", 10, 1), r.problems


@needs_fixtures
def test_flickr_entities_incomplete_pairs(tmp_path):
    root = _entities_root(tmp_path, ["65567", "23008340"])  # 23008340 has Sentences but no Annotations file
    rc, out, _ = _cli("check", "split=flickr30k_entities_test", f"data_root={root}")
    line = _line(out, "flickr30k_entities_test")
    assert rc == 1 and "1 of 2 listed images lack Annotations/{img_id}.xml (e.g. 23008340)" in line
    assert "Sentences/{img_id}.txt" not in line


# ------------------------------------------------------------------------------------------- layout, README
def test_layout_is_readmes_tree():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- grounding-data layout -->\n```\n(.*?)\n```\n<!-- /grounding-data layout -->", readme, re.S)
    assert block and block.group(1) == layout(), "regenerate README's tree with `grounding-data layout`"
    rc, out, _ = _cli("layout")
    assert rc == 0 and out.rstrip("\n") == layout()
    assert "grounding-data check" in readme


def test_layout_of_one_split():
    rc, out, _ = _cli("layout", "split=refcocog_val")
    assert rc == 0 and out.splitlines() == [
        "<data_root>/", "├── coco/", "│   └── train2014/", "│       └── {file_name}      refcocog_val",
        "└── refer/", "    └── refcocog/", "        ├── instances.json   refcocog_val",
        "        └── refs(umd).p      refcocog_val"]


# ------------------------------------------------------------------------------------------- registry sizes
def test_every_split_yaml_says_its_published_size_or_that_there_is_none():
    for p in sorted((ROOT / "conf/split").glob("*.yaml")):
        text = p.read_text()
        m = re.search(r"^expected_rows: (\S+) +# (.+)$", text, re.M)
        assert m, f"{p.name}: expected_rows with a comment"
        src = re.search(r"^expected_rows_source: (.+)$", text, re.M).group(1)
        if m.group(1) == "null":
            assert "no published" in m.group(2) and src == "null", p.name
        else:
            assert int(m.group(1)) > 0 and src != "null", p.name
    assert split_config("demo").expected_rows == 93


# split -> (published rows, what its expected_rows_source must quote); every other split has expected_rows: null.
# A typo in a YAML's number, or a source that stops quoting the number, fails here.
PUBLISHED = {
    "demo": (93, ["93 shapes"]),
    "refcoco_val": (10834, ["FlagEval", "validation(10834)", "refs(unc).p"]),
    "refcoco_testA": (5657, ["FlagEval", "testA(5657)", "refs(unc).p"]),
    "refcoco_testB": (5095, ["FlagEval", "testB(5095)", "refs(unc).p"]),
    "refcocog_test": (9602, ["arXiv 1608.00525", "varun-nagaraja/referring-expressions issue #2",
                             "5023 objects and 9,602 referring expressions", "You are right.",
                             "refs(umd).p split 'test'"]),
}
# Sentences of several splits together, from a source independent of the per-split ones: JierunChen/Ref-L4 README,
# "Error Rates and Annotation Statistics" (RefCOCO 21,586 / RefCOCO+ 21,373 / RefCOCOg 14,498 annotations of the
# val and test splits). An oracle for numbers filled in later: a wrong one breaks the sum.
PUBLISHED_TOTALS = {("refcoco_val", "refcoco_testA", "refcoco_testB"): 21586,
                    ("refcoco_plus_val", "refcoco_plus_testA", "refcoco_plus_testB"): 21373,
                    ("refcocog_val", "refcocog_test"): 14498}


def _split_names():
    return sorted(p.stem for p in (ROOT / "conf/split").glob("*.yaml"))


def test_published_sizes_are_the_cited_ones():
    names = _split_names()
    assert set(PUBLISHED) <= set(names) and {n for g in PUBLISHED_TOTALS for n in g} <= set(names)
    for name in names:
        cfg = split_config(name)
        if name not in PUBLISHED:
            assert cfg.expected_rows is None and cfg.expected_rows_source is None, name
            continue
        rows, quotes = PUBLISHED[name]
        assert cfg.expected_rows == rows, name
        for q in quotes:
            assert q in cfg.expected_rows_source, (name, q)


def test_published_sizes_agree_with_independent_published_totals():
    for group, total in PUBLISHED_TOTALS.items():
        sizes = [split_config(n).expected_rows for n in group]
        known = [s for s in sizes if s is not None]
        if len(known) == len(sizes):
            assert sum(known) == total, group
        else:
            assert sum(known) < total, group


def test_readme_lists_the_published_sizes_of_the_registry():
    readme = " ".join((ROOT / "README.md").read_text().split())
    para = readme[readme.index("Published sizes recorded"):]
    para = para[:para.index("ZSGNet's Flickr/VG CSVs.")]
    for name, (rows, _) in PUBLISHED.items():
        assert f"`{name}`" in para and (f"{rows:,}" in para or str(rows) in para), name


def test_every_split_without_a_published_size_says_what_was_searched():
    for name in _split_names():
        text = (ROOT / "conf/split" / f"{name}.yaml").read_text().splitlines()
        i = next(k for k, line in enumerate(text) if line.startswith("expected_rows:"))
        block = []
        for line in reversed(text[:i]):  # the comment block right above expected_rows
            if not line.startswith("#"):
                break
            block.insert(0, line)
        if split_config(name).expected_rows is None:
            assert block and "(issue 25) -- searched:" in block[0], name  # why it is null ...
            assert any(line.startswith("# searched: ") for line in block[1:]), name  # ... and where we looked


def test_completeness_rules():
    cfg = {"name": "s", "expected_rows": 10}
    assert completeness(cfg, 10) == {"complete": True, "split_rows": 10, "expected_rows": 10}
    assert completeness(cfg, 9)["complete"] is False
    assert completeness(cfg, 9, shard="0/2")["complete"] is False  # n_rows is the whole split, before the shard
    assert completeness(cfg, 5, limit=5)["complete"] is None  # a subset on purpose: not compared
    assert completeness({"name": "s", "expected_rows": None}, 9)["complete"] is None
    assert mark_incomplete("43.8", False) == "43.8 ‡" and mark_incomplete("43.8", None) == "43.8"
    assert mark_incomplete("", False) == ""


# ------------------------------------------------------------------------------------------- a run on a truncated split
def test_run_on_truncated_split_is_marked_incomplete(tmp_path, caplog):
    from grounding.config import compose
    from grounding.evaluation.evaluate import evaluate_config as evaluate
    from grounding.evaluation.tables import TableSpec, Row, collect_runs, paper_results, render_table

    import torch
    from grounding.models.random import tiny_clip

    root = tmp_path / "data"
    csv = make_flickr_split(root)
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(lines[:13]) + "\n")  # 12 of 18 rows: a truncated download
    (root / "flickr30k-images" / "1003.jpg").unlink()  # and a half-extracted image folder
    ckpt = tmp_path / "tiny_vit.pt"
    torch.save(tiny_clip("vit", patch_size=32, seed=21).state_dict(), ckpt)
    cfg = compose("config", ["split=flickr_s1", "backbone=vit_b32", f"backbone.name={ckpt}", "method=ours",
                             f"data_root={root}", "method.n_segments=[30,60]", "cache.enabled=false",
                             "on_error=skip", "split.expected_rows=18", "progress=false"])
    run = tmp_path / "run"
    with caplog.at_level("WARNING"):
        m = evaluate(cfg, run)
    assert any("12 rows but its published size is 18" in r.getMessage() for r in caplog.records)
    for d in (m, json.loads((run / "metrics.json").read_text()), json.loads((run / "run.json").read_text())):
        assert (d["complete"], d["split_rows"], d["expected_rows"]) == (False, 12, 18)
    assert m["n_skipped"] == 3  # the 3 rows of image 1003
    runs = collect_runs([run])
    assert runs.complete.tolist() == [False]
    spec = TableSpec("t", "1", "Method", [Row("ours", m["method"], runs.backbone.iloc[0])], ["flickr_s1"])
    t = render_table(spec, runs, paper_results())
    assert t.display["flickr_s1"].iloc[0].endswith(" ‡") and any(n.startswith("‡ incomplete split") for n in t.notes)


def test_summary_line_counts_rows_skipped_for_missing_images(tmp_path):
    from grounding.data.completeness import summary_suffix

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"index": 0, "skipped": True, "error": "row 0: FileNotFoundError: image not found: x.jpg"},
            {"index": 1, "skipped": True, "error": "row 1: image y.jpg: UnidentifiedImageError: ..."},
            {"index": 2, "skipped": False, "hit": True}]
    (run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = summary_suffix({"n_skipped": 2, "complete": False, "split_rows": 3, "expected_rows": 5}, run)
    assert s == ", skipped for missing images=1, INCOMPLETE split: 3 rows, published 5"
    assert summary_suffix({"n_skipped": 0, "complete": True}, run) == ""


# ------------------------------------------------------------------------------------------- a million rows
@pytest.mark.slow
def test_a_million_rows_check_in_seconds(tmp_path):
    n_img, n_rows = 2000, 1_000_000
    img_dir = tmp_path / "flickr30k-images"
    img_dir.mkdir()
    Image.new("RGB", (64, 48)).save(img_dir / "0.jpg")
    data = (img_dir / "0.jpg").read_bytes()
    for i in range(1, n_img):
        (img_dir / f"{i}.jpg").write_bytes(data)
    csv = tmp_path / "ds_csv_ann/flickr30k/csv_dir/test.csv"
    csv.parent.mkdir(parents=True)
    with open(csv, "w") as f:
        f.write("img_id,bbox,query\n")
        f.writelines(f'{i % n_img},"[1, 2, 30, 40]",a thing {i % 7}\n' for i in range(n_rows))
    cfg = split_config("flickr_all")
    cfg.expected_rows = n_rows
    t0 = time.perf_counter()
    r = check_split(cfg, tmp_path)
    seconds = time.perf_counter() - t0
    assert (r.status, r.rows, r.images) == ("ok", n_rows, n_img), r.problems
    assert seconds < 120, f"{seconds:.1f} s for a million rows"
    (img_dir / "1999.jpg").unlink()
    r = check_split(cfg, tmp_path)
    assert r.status == "incomplete" and r.problems[0].startswith("1 of 2000 images missing or empty (500 rows)")
