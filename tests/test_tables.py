"""Tables: runs gathered into the paper's layout; our value, the paper's and the difference; blanks."""
import json

import pandas as pd
import pytest

from grounding.evaluation.tables import build_tables, main as tables_main, write_tables


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
