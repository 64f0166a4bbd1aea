"""The one reader of run-directory files (grounding.evaluation.runfiles) and its one policy for a corrupt
file: writers (runner, merge) refuse with a one-line RunError naming the file and the fix; the gatherers of
runs for display (grounding-tables, the sweep summary, grounding-report) leave that run out with a one-line
warning naming the file — the same for all three."""
from __future__ import annotations

import json
import logging
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from grounding.evaluation import runfiles
from grounding.evaluation.report.cli import main as report_main
from grounding.evaluation.report.load import load_runs
from grounding.evaluation.runfiles import (RunError, atomic_write_text, read_identity, read_metrics,
                                           read_predictions)
from grounding.evaluation.sweep import summary_rows
from grounding.evaluation.tables import collect_runs

ROOT = Path(__file__).resolve().parents[1]
GOOD_METRICS = {"split": "demo", "method": "ours", "backbone_key": "toy", "accuracy": 0.5, "n": 2, "n_skipped": 0,
                "iou_threshold": 0.5, "params": {}, "overrides": {}}


def make_run(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    rows = [{"index": i, "image": "/nonexistent.png", "phrase": "a dog", "gt_box": [0.0, 0.0, 10.0, 10.0],
             "pred_box": [0.0, 0.0, 10.0, 10.0 if i else 2.0], "image_size": [20, 20], "iou": 1.0 if i else 0.2,
             "hit": bool(i)} for i in range(2)]
    (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "run.json").write_text(json.dumps({"split": {"name": "demo"}, "method": {"name": "ours"}}))
    (d / "metrics.json").write_text(json.dumps(GOOD_METRICS))
    return d


# ------------------------------------------------------------------------------------------ readers
@pytest.mark.parametrize("text, why", [("{not json", "Expecting"), ("[1, 2]", "not a JSON object"),
                                       ('{"n": 3}', 'no numeric "accuracy"'), ('{"accuracy": true}', "accuracy"),
                                       ('{"accuracy": "0.5"}', "accuracy"), (b"\xff\xfe{", "codec")])
def test_corrupt_metrics_is_a_one_line_error_naming_file_and_fix(tmp_path, text, why):
    p = tmp_path / "metrics.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunError) as e:
        read_metrics(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{p} is corrupt (") and why in msg and "\n" not in msg and "rerun" in msg
    with pytest.raises(RunError, match="rerun that shard"):
        read_metrics(tmp_path, "rerun that shard to rewrite it")


def test_readers_of_absent_and_good_files(tmp_path):
    assert read_metrics(tmp_path) is None and read_identity(tmp_path) is None
    assert read_predictions(tmp_path / "predictions.jsonl") == []
    run = make_run(tmp_path, "a")
    assert read_metrics(run) == GOOD_METRICS and read_identity(run)["method"] == {"name": "ours"}
    assert [r["index"] for r in read_predictions(run / "predictions.jsonl")] == [0, 1]
    (run / "run.json").write_text('{"split": ')
    with pytest.raises(RunError, match=f"{run / 'run.json'} is corrupt .*move the run directory away"):
        read_identity(run)


def test_predictions_torn_end_is_dropped_middle_corruption_is_refused(tmp_path):
    p = tmp_path / "predictions.jsonl"
    p.write_text('{"index": 0}\n{"index": 1}\n{"index": 2, "ima')
    assert [r["index"] for r in read_predictions(p)] == [0, 1] and p.read_text().endswith('"ima')
    assert len(read_predictions(p, repair=True)) == 2 and p.read_text() == '{"index": 0}\n{"index": 1}\n'
    for bad in ('{"index": 1, "ima', '{"index": true}', '[1]'):
        p.write_text('{"index": 0}\n' + bad + '\n{"index": 2}\n')
        with pytest.raises(RunError, match=f"{p}: line 2 "):
            read_predictions(p)


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    atomic_write_text(tmp_path / "x.json", "{}")
    atomic_write_text(tmp_path / "x.json", '{"a": 1}')
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"] and (tmp_path / "x.json").read_text() == '{"a": 1}'


def test_runner_and_merge_use_this_reader():
    from grounding.evaluation import merge, runner

    for name in ("RunError", "read_predictions", "read_identity", "read_json_object", "atomic_write_text"):
        assert getattr(runner, name) is getattr(runfiles, name)
    assert merge.read_metrics is runfiles.read_metrics and merge.read_predictions is runfiles.read_predictions


# ------------------------------------------------------------------------- the gatherers' one policy
GATHERERS = {
    "tables": lambda root: sorted(Path(d).name for d in collect_runs([root]).run_dir),
    "sweep": lambda root: sorted(r["run"] for r in summary_rows(root)),
    "report": lambda root: sorted(r.dir.name for r in load_runs([root])),
}


@pytest.mark.parametrize("gatherer", sorted(GATHERERS))
@pytest.mark.parametrize("text", ["{not json", '{"n": 2}', "[]"])
def test_corrupt_metrics_leaves_the_run_out_with_one_warning(tmp_path, caplog, gatherer, text):
    make_run(tmp_path, "a")
    bad = make_run(tmp_path, "b")
    (bad / "metrics.json").write_text(text)
    make_run(tmp_path, "c")
    with caplog.at_level(logging.WARNING, logger="grounding.evaluation.runfiles"):
        assert GATHERERS[gatherer](tmp_path) == ["a", "c"]
    warned = [r.getMessage() for r in caplog.records if r.name == "grounding.evaluation.runfiles"]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith(f"warning: {bad / 'metrics.json'} is corrupt") and "left out" in warned[0]


def test_report_leaves_out_a_run_with_a_corrupt_run_json_or_predictions(tmp_path, caplog):
    make_run(tmp_path, "a")
    (make_run(tmp_path, "b") / "run.json").write_text("{")
    c = make_run(tmp_path, "c")
    (c / "predictions.jsonl").write_text('{"index": 0}\n{oops\n{"index": 1}\n')
    with caplog.at_level(logging.WARNING, logger="grounding.evaluation.runfiles"):
        assert [r.dir.name for r in load_runs([tmp_path])] == ["a"]
    warned = sorted(r.getMessage() for r in caplog.records if r.name == "grounding.evaluation.runfiles")
    assert warned[0].startswith(f"warning: {tmp_path / 'b' / 'run.json'} is corrupt")
    assert warned[1].startswith(f"warning: {c / 'predictions.jsonl'}: line 2 is not valid JSON")


@pytest.mark.parametrize("bad", [{"iou_compare": "=>"}, {"iou_threshold": "0.5"}, {"iou_threshold": 5}])
def test_report_leaves_out_a_run_whose_hit_rule_is_corrupt(tmp_path, caplog, bad):
    make_run(tmp_path, "a")
    b = make_run(tmp_path, "b")
    (b / "metrics.json").write_text(json.dumps(dict(GOOD_METRICS, **bad)))
    with caplog.at_level(logging.WARNING, logger="grounding.evaluation.runfiles"):
        assert [r.dir.name for r in load_runs([tmp_path])] == ["a"]
    assert [r.getMessage() for r in caplog.records][0].startswith(f"warning: {b / 'metrics.json'} is corrupt")


def test_report_command_with_nothing_readable_is_one_error_line(tmp_path, capsys):
    bad = make_run(tmp_path, "b")
    (bad / "metrics.json").write_text("{")
    out = tmp_path / "r.html"
    assert report_main([str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and err[-1].startswith("error: none of the 1 run directory")
    assert not out.exists()
    assert report_main([str(tmp_path / "b"), str(make_run(tmp_path, "a")), "-o", str(out)]) == 0 and out.is_file()


# ------------------------------------------------------------------------------------- packaging
def test_report_templates_are_declared_package_data():
    """A non-editable install carries the templates, CSS and JS (pyproject package-data covers them)."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["grounding"]
    files = sorted((ROOT / "grounding" / "evaluation" / "report" / "templates").iterdir())
    assert {p.name for p in files} >= {"report.html.j2", "report.css", "report.js"}
    for p in files:
        rel = p.relative_to(ROOT / "grounding").as_posix()
        assert any(fnmatch(rel, pat) for pat in patterns), rel
    assert conf["project"]["scripts"]["grounding-report"] == "grounding.evaluation.report.cli:main"


def test_report_shows_proposal_recall_next_to_accuracy(tmp_path):
    """Issue 21 item 4: a run with proposals shows what its proposal set allowed at best (recall)."""
    with_props = make_run(tmp_path, "p")
    m = json.loads((with_props / "metrics.json").read_text())
    m["proposals"] = {"source": "gt", "mean_count": 7.25, "recall": 0.875, "dropped": 3}
    (with_props / "metrics.json").write_text(json.dumps(m))
    plain, out = make_run(tmp_path, "q"), tmp_path / "r.html"
    assert report_main([str(with_props), str(plain), "-o", str(out)]) == 0
    page = out.read_text()
    assert "proposal recall" in page and "87.50%" in page and "(gt, 7.2 per row, 3 dropped)" in page
