"""Tables: runs gathered into the paper's layout; our value, the paper's and the difference; blanks; the paper's
values (grounding/paper_results.csv) checked against the paper's text; LaTeX escaping."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import FIXTURES, ROOT
from grounding.evaluation.tables import (PAPER_CSV, build_tables, split_names, latex_text, main as tables_main,
                                         paper_results, write_tables)


def _run(root, split, method, backbone, acc, n=100, upsample=None, overrides=None):
    d = root / split / method / backbone / f"n{n}-u{upsample}-{len(overrides or {})}"
    d.mkdir(parents=True, exist_ok=True)
    params = {"alpha": 0.8}
    if upsample is not None:
        params["upsample"] = upsample
    (d / "metrics.json").write_text(json.dumps({
        "accuracy": acc, "n": n, "iou_threshold": 0.5, "split": split, "method": method, "backbone": backbone,
        "backbone_key": backbone, "params": params, "overrides": overrides or {}}))
    return d


@pytest.fixture
def paper_csv(tmp_path):
    p = tmp_path / "paper.csv"
    pd.DataFrame([
        dict(table=1, method="ours", backbone="vit_l14", split="flickr_s1", metric="acc@0.5", value=60.0, note=""),
        dict(table=1, method="crop_rank", backbone="vit_l14", split="vg_s0", metric="acc@0.3", value=20.0, note=""),
        dict(table=2, method="ours", backbone="rn50", split="flickr_s0", metric="acc@0.5", value=40.0, note=""),
        dict(table=3, method="ours", backbone="vit_b16", split="flickr_s1", metric="acc@0.5", value=50.0,
             note="upsample=1"),
    ]).to_csv(p, index=False)
    return p


def test_cells_blanks_and_differences(tmp_path, paper_csv):
    runs = tmp_path / "runs"
    _run(runs, "flickr_s1", "ours", "vit_l14", 0.625)
    _run(runs, "flickr_s1", "ours", "vit_l14", 0.10, n=5)  # a smaller run of the same key is not chosen
    _run(runs, "flickr_s1", "ours", "vit_l14", 0.99, overrides={"alpha": 0.5})  # sweeps stay out of Table 1
    _run(runs, "flickr_s0", "ours", "rn50", 0.35)
    _run(runs, "flickr_s1", "ours", "vit_b16", 0.47, upsample=1, overrides={"upsample": 1})
    _run(runs, "flickr_s1", "ours", "vit_b16", 0.52, upsample=2)
    t = build_tables([runs], paper_csv)
    t1 = t["table1_methods"][0].set_index("method")
    assert t1.loc["ours (vit_l14)", "flickr_s1"] == "62.5 (60.0, +2.5)"
    assert t1.loc["ours (vit_l14)", "vg_s1"] == ""  # no run, no paper value: blank, never 0
    assert t1.loc["crop_rank (vit_l14)", "vg_s0"] == "(20.0)"  # paper only
    t2 = t["table2_backbones"][0].set_index("backbone")
    assert t2.loc["rn50", "flickr_s0"] == "35.0 (40.0, -5.0)"
    t3 = t["table3_upsample"][0].set_index("model")
    assert t3.loc["vit_b16 1x", "flickr_s1"] == "47.0 (50.0, -3.0)"
    assert t3.loc["vit_b16 2x", "flickr_s1"] == "52.0"
    long = t["table1_methods"][1]
    row = long[(long.method == "ours (vit_l14)") & (long.split == "flickr_s1")].iloc[0]
    assert row.ours == 62.5 and row.paper == 60.0 and row["diff"] == pytest.approx(2.5)
    files = write_tables(t, tmp_path / "out")
    assert (tmp_path / "out" / "tables.md").read_text().count("###") == 3
    assert "No paper values" not in (tmp_path / "out" / "tables.md").read_text()
    assert all(f.exists() for f in files)
    assert "\\begin{tabular}" in (tmp_path / "out" / "table1_methods.tex").read_text()


def test_cli_on_empty_and_bench(tmp_path, paper_csv, capsys):
    bench = tmp_path / "bench.csv"
    pd.DataFrame([{"method": "hierarchical", "ms_mean": 16.0}, {"method": "exact", "ms_mean": 1.0}]).to_csv(bench, index=False)
    assert tables_main([str(tmp_path / "none"), "-o", str(tmp_path / "o"), "--paper", str(paper_csv),
                        "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "tableA1_box_search_time" in out and "(60.0)" in out


def test_missing_paper_values_are_said_not_invented(tmp_path):
    """With no paper rows for a table, the output says so instead of showing paper cells."""
    runs = tmp_path / "runs"
    _run(runs, "flickr_s1", "ours", "vit_l14", 0.625)
    empty = tmp_path / "empty.csv"
    empty.write_text("table,method,backbone,split,metric,value,note\n")
    t = build_tables([runs], empty)
    assert t["table1_methods"][0].set_index("method").loc["ours (vit_l14)", "flickr_s1"] == "62.5"
    write_tables(t, tmp_path / "out")
    md = (tmp_path / "out" / "tables.md").read_text()
    assert md.count("No paper values for this table") == 3


# ------------------------------------------------------------------ the paper's values (grounding/paper_results.csv)


def _paper_dir():
    """The paper's files: a sibling ``shared/paper`` of the checkout (or of the fixtures), else /work/shared/paper."""
    for c in (FIXTURES.parents[1] / "paper", ROOT.parent / "shared" / "paper", Path("/work/shared/paper")):
        if (c / "paper.txt").is_file():
            return c
    return None


def _key(method, backbone):
    """'Crop & Rank' → crop_rank, 'Wang <i>et al.</i> [13]' → wang_et_al, 'ViT-L/14' → vit_l14, 'RN50×4' → rn50x4."""
    method = re.sub(r"<[^>]+>|\[\d+\]|[.&]", " ", method).lower()
    backbone = backbone.lower().replace("×", "x").replace("-", "_").replace("/", "")
    return "_".join(method.split()), backbone


def _number(s):
    m = re.fullmatch(r"([\d.]+)×10\^\{(-?\d+)\}", s)
    return float(m.group(1)) * 10 ** int(m.group(2)) if m else float(s)


def parse_paper_tables(text):
    """The paper text's tab-separated tables → {(table, method, backbone, split, metric, upsample): value}, and
    {(table, method, backbone): (supervision or hardware)}. '-' cells are left out."""
    lines = text.splitlines()
    heads = {"1": "Method\tSupervision\t", "2": "Architecture\tFlickr\t", "3": "Architecture\tFlickr S0\t",
             "A1": "Method\tHardware\t"}
    cells, extra = {}, {}
    for table, head in heads.items():
        (i,) = [k for k, ln in enumerate(lines) if ln.startswith(head)]
        h1 = lines[i].split("\t")
        if table == "A1":
            body, cols = lines[i + 1:], [("", "mean_time_s"), ("", "std_time_s")]
            first = 2
        else:
            h2 = lines[i + 1].split("\t")
            first = 2 if table == "1" else 1
            group, cols = "", []
            for g, sub in zip(h1[first:], h2[first:]):
                group = g.strip() or group
                if table == "3":  # "Flickr S0" over "1×"
                    cols.append((group.lower().replace(" ", "_"), int(sub.rstrip("×"))))
                else:  # "Zero-Shot VG" over "S0"
                    cols.append((f"{group.split()[-1]}_{sub}".lower(), None))
            body = lines[i + 2:]
        for ln in body:
            parts = ln.split("\t")
            if len(parts) < first + len(cols):
                break
            m = re.fullmatch(r"(.*?)\s*(?:\(([^)]*)\))?\s*(\[\d+\])?", parts[0].strip())
            name, bb = m.group(1), m.group(2) or ""
            if table == "A1":  # "ESS (Python)": the parenthesis is the implementation, not a backbone
                name, bb = parts[0].split(" (")[0], ""
            method, backbone = _key(name, bb) if table != "2" and table != "3" else ("ours", _key("", name)[1])
            if table in ("1", "A1"):
                extra[table, method, backbone] = parts[1]
            for (split, sub), v in zip(cols, parts[first:]):
                if v.strip() in ("-", ""):
                    continue
                if table == "A1":
                    cells[table, method, "", "", sub, None] = _number(v)
                else:
                    cells[table, method, backbone, split, "acc", sub] = _number(v)
    return cells, extra


def _package_cells(df):
    up = df.note.str.extract(r"upsample=(\d+)")[0]
    return {(r.table, r.method, r.backbone, r.split, r.metric, None if pd.isna(u) else int(u)): float(r.value)
            for r, u in zip(df.itertuples(), up)}


def test_package_paper_results_are_complete():
    """Every table has its full set of cells: 92 numbers, no key twice, Table 1's RN50 row = Table 2's RN50x4."""
    df = paper_results(PAPER_CSV)
    assert len(df) == 92
    cells = _package_cells(df)
    assert len(cells) == 92, "a (table, method, backbone, split, metric, upsample) key appears twice"
    by_table = df.groupby("table").size().to_dict()
    assert by_table == {"1": 34, "2": 30, "3": 24, "A1": 4}
    acc = df[df.table != "A1"]
    assert set(acc.metric) == {"acc"} and set(acc.split) <= set(split_names())
    assert split_names() == ["flickr_all", "flickr_other", "flickr_s0", "flickr_s1", "vg_s0", "vg_s1"]
    t1 = acc[acc.table == "1"]
    assert t1.groupby(["method", "backbone"]).size().to_dict() == {
        ("zsgnet", ""): 6, ("wang_et_al", ""): 2, ("parcalabescu_et_al", ""): 2, ("crop_rank", "vit_l14"): 6,
        ("denseclip", "rn50"): 6, ("ours", "rn50"): 6, ("ours", "vit_l14"): 6}
    t2 = acc[acc.table == "2"]
    assert len(t2.groupby(["backbone", "split"])) == 5 * 6 and set(t2.method) == {"ours"}
    t3 = acc[acc.table == "3"]
    assert {(b, s, u) for (tab, _m, b, s, _k, u) in cells if tab == "3"} == {
        (b, s, u) for b in ("vit_b32", "vit_b16", "vit_l14") for s in ("flickr_s0", "flickr_s1", "vg_s0", "vg_s1")
        for u in (1, 2)}
    assert len(t3) == 24
    a1 = df[df.table == "A1"]
    assert set(zip(a1.method, a1.metric)) == {(m, k) for m in ("hierarchical", "ess")
                                               for k in ("mean_time_s", "std_time_s")}
    # Table 1 prints "Ours (RN50)" with Table 2's RN50x4 numbers; the file keeps them as printed
    rn50_t1 = t1[(t1.method == "ours") & (t1.backbone == "rn50")].set_index("split").value
    rn50x4_t2 = t2[t2.backbone == "rn50x4"].set_index("split").value
    assert rn50_t1.sort_index().tolist() == rn50x4_t2.sort_index().tolist()
    assert not rn50_t1.equals(t2[t2.backbone == "rn50"].set_index("split").value)
    # Table 3's 2× column is Table 2's row for the same backbone
    for r in t3[t3.note == "upsample=2"].itertuples():
        assert cells["2", "ours", r.backbone, r.split, "acc", None] == r.value


def test_package_paper_results_match_the_paper_text():
    """Each row of grounding/paper_results.csv is the number the paper's text prints, and no printed cell is missing."""
    d = _paper_dir()
    if d is None:
        pytest.skip("the paper's text (../shared/paper/paper.txt) is not on this machine")
    text_cells, extra = parse_paper_tables((d / "paper.txt").read_text())
    pkg = _package_cells(paper_results(PAPER_CSV))
    assert len(text_cells) == 92
    assert set(pkg) == set(text_cells), (f"only in the package file: {sorted(set(pkg) - set(text_cells))}; "
                                         f"only in paper.txt: {sorted(set(text_cells) - set(pkg))}")
    wrong = {k: (pkg[k], text_cells[k]) for k in pkg if pkg[k] != pytest.approx(text_cells[k], rel=1e-9)}
    assert not wrong, f"package value vs paper.txt: {wrong}"
    # the supervision column of Table 1 as the tables print it
    t1 = build_tables([], PAPER_CSV)["table1_methods"].display
    sup = dict(zip(t1.method, t1.supervision))
    names = {"zsgnet": "ZSGNet", "wang_et_al": "Wang et al.", "parcalabescu_et_al": "Parcalabescu et al."}
    for (table, method, backbone), v in extra.items():
        if table == "1":
            assert sup[names.get(method, f"{method} ({backbone})")] == v
    # Table A1's hardware: the package notes start with what the paper prints
    a1 = paper_results(PAPER_CSV).query("table == 'A1'")
    for m, note in zip(a1.method, a1.note):
        assert note.startswith(extra["A1", m, ""])


def test_no_runs_shows_the_papers_values():
    t = build_tables([], PAPER_CSV)
    t1 = t["table1_methods"].display.set_index("method")
    assert t1.loc["ours (vit_l14)", "flickr_all"] == "(43.8)"
    assert t1.loc["ours (rn50)", "vg_s1"] == "(20.72)"
    assert t1.loc["Wang et al.", "flickr_other"] == "(34.71)" and t1.loc["Wang et al.", "vg_s0"] == ""
    assert t1.index[:3].tolist() == ["ZSGNet", "Wang et al.", "Parcalabescu et al."]
    assert t1.supervision.tolist() == ["Full", "BBox", "BBox", "CLIP", "CLIP", "CLIP", "CLIP"]
    assert (t1.drop(columns="supervision") != "").sum().sum() == 34  # every paper cell, nothing else
    for name in ("table1_methods", "table2_backbones"):
        assert any("RN50x4" in n and "as printed" in n for n in t[name].notes)
    t2 = t["table2_backbones"].display.set_index("backbone")
    assert t2.index.tolist() == ["rn50", "rn50x4", "vit_b32", "vit_b16", "vit_l14"]
    assert (t2 != "").all().all()
    t3 = t["table3_upsample"].display.set_index("model")
    assert t3.columns.tolist() == ["flickr_s0", "flickr_s1", "vg_s0", "vg_s1"]  # the paper's Table 3 splits
    assert t3.loc["vit_b16 1x", "vg_s0"] == "(13.51)" and t3.loc["vit_b16 2x", "vg_s0"] == "(18.23)"
    a1 = t["tableA1_box_search_time"]
    assert a1.display.values.tolist() == [
        ["Hierarchical", "paper", "RTX6000", "2.3×10⁻³", "2.6×10⁻⁵"],
        ["ESS (Python)", "paper", "CPU, Python", "3.1×10⁻¹", "4.1×10⁻¹"]]
    assert "make bench" in a1.notes[0] and "bench_box_search.py" in a1.notes[0]


def test_runs_read_ours_paper_delta_and_bench_rows_follow_the_paper(tmp_path, capsys):
    runs = tmp_path / "runs"
    _run(runs, "flickr_all", "ours", "vit_l14", 0.45)
    _run(runs, "flickr_s0", "ours", "vit_b16", 0.3, upsample=1, overrides={"upsample": 1})
    bench = tmp_path / "box_search.csv"
    pd.DataFrame([dict(method="hierarchical", maps=10, size=224, ms_mean=16.0, ms_std=0.5, device="CPU x86_64"),
                  dict(method="exact", maps=10, size=224, ms_mean=1.25, ms_std=0.05, device="CPU x86_64")]
                 ).to_csv(bench, index=False)
    t = build_tables([runs], PAPER_CSV, bench)
    assert t["table1_methods"].display.set_index("method").loc["ours (vit_l14)", "flickr_all"] == "45.0 (43.8, +1.2)"
    assert t["table2_backbones"].display.set_index("backbone").loc["vit_l14", "flickr_all"] == "45.0 (43.8, +1.2)"
    t3 = t["table3_upsample"].display.set_index("model")
    assert t3.loc["vit_b16 1x", "flickr_s0"] == "30.0 (34.1, -4.1)"
    assert t3.loc["vit_b16 2x", "flickr_s0"] == "(37.82)"  # the upsample=1 run is not the 2x cell
    a1 = t["tableA1_box_search_time"]
    assert a1.display.source.tolist() == ["paper", "paper", "this harness (10 maps of 224×224)",
                                          "this harness (10 maps of 224×224)"]
    assert a1.display.iloc[2].tolist() == ["hierarchical", "this harness (10 maps of 224×224)", "CPU x86_64",
                                           "1.6×10⁻²", "5.0×10⁻⁴"]
    assert a1.long.mean_s.iloc[3] == pytest.approx(1.25e-3) and a1.notes == []
    assert tables_main([str(runs), "-o", str(tmp_path / "o"), "--bench", str(bench)]) == 0
    out = capsys.readouterr().out
    for name in ("table1_methods.csv", "table1_methods.tex", "tableA1_box_search_time.tex", "tables.md"):
        assert f"wrote {tmp_path / 'o' / name}" in out


def _check_tex(tex: str):
    """No unescaped _ % # anywhere; in each tabular row, unescaped & only between columns; $ balanced."""
    bare = lambda ch, s: re.findall(r"(?<!\\)" + re.escape(ch), s)  # noqa: E731
    for ch in "_%#":
        assert not bare(ch, tex), f"unescaped {ch!r} in:\n{tex}"
    ncols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
    rows = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith("\\midrule")]
    assert rows and all(len(bare("&", ln)) == ncols - 1 for ln in rows), tex
    assert len(bare("$", tex)) % 2 == 0


def test_latex_escapes_every_cell_and_header(tmp_path):
    assert latex_text("a_b & 50% #1 ~^{}\\") == (r"a\_b \& 50\% \#1 \textasciitilde{}\textasciicircum{}"
                                                r"\{\}\textbackslash{}")
    assert latex_text("2.3×10⁻³") == r"2.3$\times10^{-3}$"
    runs = tmp_path / "runs"
    _run(runs, "my_split#1", "a_b&c%d", "vit_l14", 0.5)
    bench = tmp_path / "b.csv"
    pd.DataFrame([dict(method="hier_archical & #1 50%", maps=3, size=224, ms_mean=2.0, ms_std=0.1,
                       device="CPU_x & y")]).to_csv(bench, index=False)
    files = write_tables(build_tables([runs], PAPER_CSV, bench), tmp_path / "out")
    texs = [f for f in files if f.suffix == ".tex"]
    assert len(texs) == 4
    for f in texs:
        _check_tex(f.read_text())
    t1 = (tmp_path / "out" / "table1_methods.tex").read_text()
    assert r"my\_split\#1" in t1 and r"a\_b\&c\%d (vit\_l14)" in t1
    if shutil.which("pdflatex") is None:
        return
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage[utf8]{inputenc}\\usepackage{booktabs}\\begin{document}\n"
                   + "".join(f"\\input{{{f.as_posix()}}}\n\n" for f in texs) + "\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]


def test_bad_paper_or_bench_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tables_main(["-o", str(tmp_path / "o"), "--paper", str(tmp_path / "nope.csv")])
    assert "nope.csv" in capsys.readouterr().err
    bad = tmp_path / "bench.csv"
    bad.write_text("name,seconds\nx,1\n")
    with pytest.raises(ValueError, match="bench.csv: not a scripts/bench_box_search.py CSV"):
        build_tables([], PAPER_CSV, bad)


def _fake_run(root, name, **m):
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps(dict({"n": 10, "iou_threshold": 0.5, "params": {}, "overrides": {}}, **m)))


def test_zoo_and_refcoco_tables_from_runs(tmp_path):
    _fake_run(tmp_path, "a", split="flickr_s1", method="maskclip", backbone_key="vit_b16", accuracy=0.25, tuned=False)
    _fake_run(tmp_path, "b", split="flickr_s1", method="ours", backbone_key="vit_b16", accuracy=0.357)
    _fake_run(tmp_path, "c", split="refcoco_testA", method="ours", backbone_key="vit_b16", accuracy=0.4,
              iou_threshold=0.5)
    t = build_tables([tmp_path])
    zoo = t["table_zoo_dense_methods"]
    labels = list(zoo.display.iloc[:, 0])
    assert labels == ["ours (vit_b16)", "maskclip (vit_b16) †"]  # untuned rows marked, ours first for reference
    assert list(zoo.display.columns)[1:] == ["flickr_s1", "refcoco_testA"] and "not tuned" in zoo.notes[0]
    assert list(zoo.display["flickr_s1"]) == ["35.7", "25.0"] and list(zoo.display["refcoco_testA"]) == ["40.0", ""]
    ref = t["table_refcoco"]
    assert list(ref.display.columns) == ["method (backbone)", "refcoco_testA"] and list(ref.display.iloc[:, 1]) == ["40.0"]


def test_breakdown_table_from_metrics(tmp_path):
    bd = {"by_size": {"small": {"n": 4, "hits": 1, "acc": 0.25}, "medium": {"n": 0, "hits": 0, "acc": None}},
          "by_phrase_length": {"1": {"n": 4, "hits": 1, "acc": 0.25}}}
    _fake_run(tmp_path, "a", split="flickr_s1", method="ours", backbone_key="vit_b16", accuracy=0.25, n=4,
              breakdowns=bd)
    t = build_tables([tmp_path])["table_breakdowns"]
    row = t.display.iloc[0]
    assert row["run"] == "flickr_s1 · ours · vit_b16" and row["GT small"] == "25.0 (4)" and row["GT medium"] == ""
    assert set(t.long.breakdown) == {"by_size", "by_phrase_length"}


def test_sweep_summary_marks_the_best_job_per_split(tmp_path):
    from grounding.evaluation.sweep import summary_rows, summary_table

    for name, acc in (("a", 0.2), ("b", 0.4), ("c", 0.3)):
        _fake_run(tmp_path, name, split="demo", method="ours", backbone_key="toy", accuracy=acc)
    df = summary_table(summary_rows(tmp_path))
    assert list(df[df.best == "*"].run) == ["b"] and list(df["acc_%"]) == [20.0, 40.0, 30.0]


def test_open_clip_weights_get_their_own_table_rows(tmp_path):
    from grounding.evaluation.runner import backbone_label

    laion = backbone_label({"key": "vit_b16", "library": "open_clip", "arch": "ViT-B-16",
                            "pretrained": "/w/laion/open_clip_pytorch_model.bin"})
    assert backbone_label({"key": "vit_b16", "library": "openai"}) == "vit_b16" and laion != "vit_b16"
    _fake_run(tmp_path, "a", split="flickr_s1", method="ours", backbone_key="vit_b16", accuracy=0.357)
    _fake_run(tmp_path, "b", split="flickr_s1", method="ours", backbone_key="vit_b16", backbone_label=laion,
              accuracy=0.40)
    rows = list(build_tables([tmp_path])["table2_backbones"].display.iloc[:, 0])
    assert "vit_b16" in rows and laion in rows  # OpenAI's and LAION's ViT-B/16 are two rows, never one cell
