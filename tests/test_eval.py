"""The evaluation app end to end on a generated split: outputs, resume, torn lines, skips, shards."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grounding.config import compose
from grounding.evaluation.evaluate import evaluate_config
from grounding.evaluation.merge import merge_runs
from grounding.evaluation.runner import read_predictions

ROOT = Path(__file__).resolve().parents[1]


def _cfg(data, *extra):
    root, ckpt = data
    return compose("config", ["split=flickr_s1", "backbone=vit_b32", f"backbone.name={ckpt}", "method=ours",
                              f"data_root={root}", "method.n_segments=[30,60]", "cache.enabled=false", *extra])


def _preds(run):
    return (run / "predictions.jsonl").read_text()


def test_outputs_contract(data, tmp_path):
    m = evaluate_config(_cfg(data), tmp_path / "run")
    lines = [json.loads(l) for l in _preds(tmp_path / "run").splitlines()]
    assert len(lines) == 18 and [r["index"] for r in lines] == list(range(18))
    for r in lines:
        assert {"index", "image", "phrase", "gt_box", "pred_box", "iou", "hit"} <= set(r)
        assert r["hit"] == (r["iou"] > 0.5)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"accuracy", "n", "iou_threshold"} <= set(saved) and saved["n"] == 18 and saved["iou_threshold"] == 0.5
    assert saved["accuracy"] == pytest.approx(np.mean([r["hit"] for r in lines]))
    assert 0 <= saved["accuracy"] <= 1 and saved["params"]["alpha"] == 0.9  # the paper's ViT-B/32 Flickr α
    assert m["accuracy"] == saved["accuracy"]


def test_resume_recomputes_nothing_and_matches(data, tmp_path, monkeypatch):
    full = tmp_path / "full"
    evaluate_config(_cfg(data), full)
    part = tmp_path / "part"
    evaluate_config(_cfg(data), part)
    # an interrupted run: 7 rows written, then a torn last line (a kill in the middle of a write)
    lines = (part / "predictions.jsonl").read_text().splitlines(keepends=True)
    (part / "predictions.jsonl").write_text("".join(lines[:7]) + '{"index": 7, "image": "x", "phr')
    from grounding.methods.dense import DenseMethod

    seen = []
    orig = DenseMethod.localize_prepared
    monkeypatch.setattr(DenseMethod, "localize_prepared",
                        lambda self, prep, phrase, **kw: seen.append(phrase) or orig(self, prep, phrase, **kw))
    evaluate_config(_cfg(data), part)
    assert len(seen) == 18 - 7  # rows 0..6 were not recomputed; the torn row 7 was
    assert _preds(part) == _preds(full)


def test_run_dir_refuses_another_config(data, tmp_path):
    evaluate_config(_cfg(data, "limit=2"), tmp_path / "r")
    with pytest.raises(RuntimeError, match="another configuration"):
        evaluate_config(_cfg(data, "limit=2", "method.alpha=0.5"), tmp_path / "r")


def test_skip_counts_as_miss(data, tmp_path):
    root, ckpt = data
    bad = Path(root) / "flickr30k-images" / "1003.jpg"
    good = bad.read_bytes()
    try:
        bad.write_bytes(good[:len(good) // 2])  # truncated JPEG: header readable, pixels not
        with pytest.raises(RuntimeError, match="1003.jpg"):
            evaluate_config(_cfg(data), tmp_path / "raise")
        m = evaluate_config(_cfg(data, "on_error=skip"), tmp_path / "skip")
    finally:
        bad.write_bytes(good)
    assert m["n"] == 18 and m["n_skipped"] == 3 and m["skipped"] == [9, 10, 11]
    rows = read_predictions(tmp_path / "skip" / "predictions.jsonl")
    assert all(r["hit"] is False and r["skipped"] for r in rows if r["index"] in (9, 10, 11))
    assert m["accuracy"] == pytest.approx(sum(r["hit"] for r in rows) / 18)


def test_shards_merge_to_the_single_run(data, tmp_path):
    evaluate_config(_cfg(data), tmp_path / "single")
    dirs = []
    for i in range(3):
        evaluate_config(_cfg(data, f"shard={i}/3"), tmp_path / f"s{i}")
        dirs.append(tmp_path / f"s{i}")
    m = merge_runs(tmp_path / "merged", dirs)
    assert _preds(tmp_path / "merged") == _preds(tmp_path / "single")
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    assert m["accuracy"] == single["accuracy"] and m["n"] == single["n"]
    with pytest.raises(RuntimeError, match="not exactly 0/3"):
        merge_runs(tmp_path / "bad", dirs[:2])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_kill_then_restart_is_identical(data, tmp_path, sig):
    """Kill the real CLI mid-run (SIGKILL or Ctrl-C), restart it on the same run directory."""
    root, ckpt = data
    args = [sys.executable, "-m", "grounding.eval", "split=flickr_s1", "backbone=vit_b32", f"backbone.name={ckpt}",
            f"data_root={root}", "method.n_segments=[30,60]", "cache.enabled=false"]
    ref = tmp_path / "ref"
    subprocess.run(args + [f"hydra.run.dir={ref}"], check=True, capture_output=True, cwd=ROOT, timeout=300)
    run = tmp_path / "killed"
    # a job started in the background by a non-interactive shell inherits SIGINT ignored (and Python then
    # installs no KeyboardInterrupt handler): give the child the default action, as in a terminal
    p = subprocess.Popen(args + [f"hydra.run.dir={run}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline:
        f = run / "predictions.jsonl"
        if f.exists() and f.read_text().count("\n") >= 4:
            break
        time.sleep(0.05)
    p.send_signal(sig)
    p.wait()
    n_before = (run / "predictions.jsonl").read_text().count("\n")
    assert 0 < n_before < 18, "the run finished before it could be killed"
    subprocess.run(args + [f"hydra.run.dir={run}"], check=True, capture_output=True, cwd=ROOT, timeout=300)
    assert _preds(run) == _preds(ref)


@pytest.mark.slow
def test_submitit_local_shards_then_merge(data, tmp_path):
    """Hydra's submitit launcher (local executor) runs the shards as jobs; merging gives the single run."""
    root, ckpt = data
    common = ["split=flickr_s1", "backbone=vit_b32", f"backbone.name={ckpt}", f"data_root={root}",
              "method.n_segments=[30,60]", "cache.enabled=false"]
    evaluate_config(_cfg(data), tmp_path / "single")
    sweep = tmp_path / "sweep"
    subprocess.run([sys.executable, "-m", "grounding.eval", "-m", "hydra/launcher=submitit_local",
                    "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}", "shard=0/2,1/2", *common],
                   check=True, capture_output=True, cwd=ROOT, timeout=600)
    shard_dirs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(shard_dirs) == 2
    merge_runs(tmp_path / "merged", shard_dirs)
    assert _preds(tmp_path / "merged") == _preds(tmp_path / "single")


@pytest.mark.slow
def test_same_predictions_with_dataloader_workers(data, tmp_path):
    evaluate_config(_cfg(data), tmp_path / "w0")
    evaluate_config(_cfg(data, "workers=2"), tmp_path / "w2")
    assert _preds(tmp_path / "w2") == _preds(tmp_path / "w0")


def test_crop_rank_reference_variant_shortcut(data, tmp_path):
    root, ckpt = data
    cfg = compose("config", ["split=flickr_s1", "backbone=vit_b32", f"backbone.name={ckpt}", "method=crop_rank",
                             "variant=reference", f"data_root={root}", "limit=3"])
    m = evaluate_config(cfg, tmp_path / "cr")
    assert m["params"] == {"variant": "reference", "num_proposals": 100, "batch_size": 64} and m["n"] == 3
    assert m["pointing_game"] is None  # no score map for Crop & Rank


def test_cfg_job_shows_the_paper_numbers(tmp_path):
    """No sys.argv rewriting: `--cfg job` is Hydra's own, and the composed config holds real values."""
    r = subprocess.run([sys.executable, "-m", "grounding.eval", "--cfg", "job", "backbone=vit_b16", "split=vg_s0"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    method = r.stdout.split("method:", 1)[1]
    assert "alpha: 0.85" in method and "temperature: 0.01" in method and "alpha: null" not in method


def test_batched_region_tokens_give_the_same_predictions(data, tmp_path, monkeypatch):
    """batch_images=3 (region tokens of three images in one forward, the CUDA default is 4) is exact."""
    from grounding.methods.ours_vit import OursViT

    evaluate_config(_cfg(data), tmp_path / "one")
    batched, orig = [], OursViT.prepare_features
    monkeypatch.setattr(OursViT, "prepare_features", lambda self, items: batched.append(len(items)) or orig(self, items))
    m = evaluate_config(_cfg(data, "batch_images=3"), tmp_path / "three")
    assert batched == [3, 3]  # 6 images in two forwards
    assert _preds(tmp_path / "three") == _preds(tmp_path / "one") and m["n"] == 18


@pytest.mark.parametrize("method", ["ours", "crop_rank", "gem"])
def test_a_run_without_overrides_records_none(method, tmp_path):
    """run.json's ``overrides`` (what differs from the class's defaults) is empty for a run that overrides nothing,
    so the paper tables pick it (a crop_rank run once recorded its resolved ``num_proposals`` as an override)."""
    cfg = compose("config", ["split=demo", "backbone=toy", f"method={method}", "limit=2", "cache.enabled=false",
                             f"data_root={ROOT / 'data'}"])
    evaluate_config(cfg, tmp_path / "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["overrides"] == {}, run["overrides"]
    cfg = compose("config", ["split=demo", "backbone=toy", f"method={method}", "limit=2", "cache.enabled=false",
                             f"data_root={ROOT / 'data'}", "method.alpha=0.123" if method != "crop_rank" else "variant=reference"])
    evaluate_config(cfg, tmp_path / "changed")
    changed = json.loads((tmp_path / "changed" / "run.json").read_text())["overrides"]
    assert changed == ({"variant": "reference"} if method == "crop_rank" else {"alpha": 0.123}), changed


@pytest.mark.parametrize("method,given,want", [
    ("crop_rank", ["method.num_proposals=50"], {"num_proposals": 50}),
    ("dense_rank", ["method.alpha=0.3"], {"alpha": 0.3}),
    ("dense_rank", [], {}),
    ("dense_rank", ["method.dense_params={temperature:0.02}"], "dense_params"),
    ("ours", ["method.alpha=0.5"], {}),  # the toy's paper α is 0.5: giving it is no override
])
def test_overrides_count_a_key_without_default_once_it_is_given(method, given, want, tmp_path):
    extra = ["proposals=selective_search"] if method == "dense_rank" else []
    cfg = compose("config", ["split=demo", "backbone=toy", f"method={method}", "limit=1", "cache.enabled=false",
                             f"data_root={ROOT / 'data'}", *extra, *given])
    evaluate_config(cfg, tmp_path / "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    if want == "dense_params":  # the inner method got the value (its own defaults for the rest)
        assert run["method_params"]["dense_params"]["temperature"] == 0.02
        assert run["overrides"] == {"dense_params": run["method_params"]["dense_params"]}
    else:
        assert run["overrides"] == want


def test_a_changed_derived_field_is_updated_not_refused(data, tmp_path):
    """run.json's ``overrides`` is bookkeeping derived from the parameters: an older rule's value is brought up to
    date on resume (the predictions are kept), while a changed parameter is still refused."""
    run = tmp_path / "r"
    evaluate_config(_cfg(data, "limit=2"), run)
    ident = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(ident, overrides={"num_proposals": 200})))
    before = _preds(run)
    evaluate_config(_cfg(data, "limit=2"), run)
    assert json.loads((run / "run.json").read_text())["overrides"] == ident["overrides"] and _preds(run) == before
    (run / "run.json").write_text(json.dumps(dict(ident, method_params=dict(ident["method_params"], alpha=0.1))))
    with pytest.raises(RuntimeError, match="another configuration; differing: method_params.alpha"):
        evaluate_config(_cfg(data, "limit=2"), run)
