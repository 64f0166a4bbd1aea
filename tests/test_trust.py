"""Issue #11, tried as a hostile user: every way a run directory used to report a wrong accuracy with
exit code 0 now gives the correct number or a clear refusal (one line, naming the file / row / shard).

Each test names the bullet of the issue it reproduces ("Why" bullets) or the deliverable it checks.
The real CLI runs in a subprocess only where the CLI is the point (lock, exit code, run directories).
"""
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from grounding.config import compose, run_dir_name, run_spec
from grounding.data.datasets import DatasetError
from grounding.data.zsg import MAX_FIELD, load_zsg_csv
from grounding.evaluation.evaluate import evaluate_config
from grounding.evaluation.evaluate import file_sha256
from grounding.evaluation.merge import main as merge_main, merge_runs
from grounding.evaluation.runner import RunError, read_predictions, summarise_run
from grounding.methods.base import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CSV_REL = "ds_csv_ann/flickr30k_c1/csv_dir/test.csv"
COLUMNS = ["img_id", "bbox", "query"]
TEMPLATE = "{data_root}/flickr30k-images/{img_id}.jpg"
FAST = ["method=ours", "method.n_segments=[10]", "method.upsample=1", "method.box_search=exact",
        "cache.enabled=false", "progress=false"]
STABLE = ("accuracy", "n", "n_skipped", "skipped", "mean_iou", "acc_at", "iou_threshold")


def _args(root, ckpt, *extra):
    return ["split=flickr_s1", "backbone=vit_b32", f"backbone.name={ckpt}", f"data_root={root}", *FAST, *extra]


def _cfg(root, ckpt, *extra):
    return compose("config", _args(root, ckpt, *extra))


def _metrics(run):
    return json.loads((Path(run) / "metrics.json").read_text())


def _cli(args, cwd, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "grounding.eval", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    return r, time.perf_counter() - t0


def _error_lines(stderr: str):
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(("[", "  warnings.warn"))
            and "Warning" not in line]


@pytest.fixture
def own(data, tmp_path):
    """A private copy of the split (tests here edit the CSV and the images); the checkpoint is shared."""
    root, ckpt = data
    mine = tmp_path / "data"
    shutil.copytree(root, mine, ignore=shutil.ignore_patterns("*.pt"))
    return mine, ckpt


def _bomb_png(path: Path, width=20000, height=20000) -> None:
    """A valid little PNG whose header declares width × height pixels (> 2 × PIL's MAX_IMAGE_PIXELS)."""
    from PIL import Image

    Image.new("RGB", (8, 8)).save(path, format="PNG")
    b = bytearray(path.read_bytes())
    assert b[12:16] == b"IHDR"
    b[16:24] = struct.pack(">II", width, height)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    path.write_bytes(bytes(b))


# ------------------------------------------------------------------------------------ Why, bullet 1
def test_two_configs_on_one_run_dir_are_refused(data, tmp_path):
    """Why 1 (alpha=0.9 / alpha=0.1 mixing their rows). Run one after the other on one directory: the
    second is refused with the difference listed; the first's numbers are untouched. Their default run
    directories differ in the first place."""
    root, ckpt = data
    run = tmp_path / "run"
    m = evaluate_config(_cfg(root, ckpt, "limit=3", "method.alpha=0.9"), run)
    before = (run / "predictions.jsonl").read_text(), (run / "metrics.json").read_text()
    with pytest.raises(RunError) as e:
        evaluate_config(_cfg(root, ckpt, "limit=3", "method.alpha=0.1"), run)
    msg = str(e.value)
    assert "method.alpha: 0.9 -> 0.1" in msg and "method_params.alpha: 0.9 -> 0.1" in msg
    assert "another run directory" in msg and "\n" not in msg
    assert ((run / "predictions.jsonl").read_text(), (run / "metrics.json").read_text()) == before
    assert _metrics(run)["n"] == m["n"] == 3
    assert run_dir_name(_cfg(root, ckpt, "method.alpha=0.9")) != run_dir_name(_cfg(root, ckpt, "method.alpha=0.1"))


def test_concurrent_process_fails_at_once_and_stale_lock_does_not_block(data, tmp_path):
    """Why 1 / Deliver 2: while another process holds RUN_DIR/.lock, the real CLI on that directory exits
    2 with one line and writes nothing; once that process is gone, the leftover .lock blocks nothing."""
    root, ckpt = data
    run = tmp_path / "run"
    run.mkdir()
    holder = open(run / ".lock", "a+")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another evaluation" is running
    holder.write("12345\n")
    holder.flush()
    try:
        r, seconds = _cli(_args(root, ckpt, "limit=2", f"hydra.run.dir={run}"), cwd=tmp_path)
    finally:
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
        holder.close()  # the "killed" holder: its lock is gone, its .lock file stays
    print(f"locked run dir refused in {seconds:.1f} s")
    assert r.returncode == 2, r.stderr[-2000:]
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and "in use by another running evaluation" in lines[0] and str(run) in lines[0]
    assert not (run / "run.json").exists() and not (run / "predictions.jsonl").exists()
    m = evaluate_config(_cfg(root, ckpt, "limit=2"), run)  # the stale .lock file does not block a resume
    assert m["n"] == 2 and (run / ".lock").exists()


def test_lock_is_exclusive_within_the_machine(data, tmp_path):
    """Deliver 2, in process: a second RunLock on the same directory fails at once (one line)."""
    from grounding.evaluation.runner import RunLock

    with RunLock(tmp_path):
        with pytest.raises(RunError, match="in use by another running evaluation"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):  # released on exit
        pass


# ------------------------------------------------------------------------------------ Why, bullet 2
def test_edited_csv_is_refused_with_its_hash_listed(own, tmp_path):
    """Why 2: the CSV is edited and the same command rerun. The run directory's name does not change
    (it is derived from the config), the identity does: refused, listing the annotation file's hash."""
    root, ckpt = own
    csv = root / CSV_REL
    run = tmp_path / "run"
    name = run_dir_name(_cfg(root, ckpt, "limit=3"))
    old_hash = file_sha256(csv)
    evaluate_config(_cfg(root, ckpt, "limit=3"), run)
    assert json.loads((run / "run.json").read_text())["annotations"] == {str(csv): old_hash}
    csv.write_text(csv.read_text().replace("a person", "a dog", 1))
    assert run_dir_name(_cfg(root, ckpt, "limit=3")) == name
    with pytest.raises(RunError) as e:
        evaluate_config(_cfg(root, ckpt, "limit=3"), run)
    assert f"annotations.{csv}: \"{old_hash}\" -> \"{file_sha256(csv)}\"" in str(e.value)


# ------------------------------------------------------------------------------------ Why, bullet 3
def test_skips_are_retried_once_the_fault_is_fixed(own, tmp_path):
    """Why 3 / Deliver 3 and 4: rows skipped because an image was unreadable are evaluated again on the
    next run; a run that stops on the fault leaves no metrics.json (never the previous run's numbers);
    after the fix, metrics.json is that of a clean run."""
    root, ckpt = own
    img = root / "flickr30k-images" / "1001.jpg"  # rows 3, 4, 5
    good = img.read_bytes()
    clean = evaluate_config(_cfg(root, ckpt, "limit=6"), tmp_path / "clean")
    run = tmp_path / "run"
    img.write_bytes(good[:len(good) // 3])  # truncated JPEG: the header reads, the pixels do not
    m = evaluate_config(_cfg(root, ckpt, "limit=6", "on_error=skip"), run)
    assert m["n"] == 6 and m["skipped"] == [3, 4, 5] and _metrics(run)["skipped"] == [3, 4, 5]
    with pytest.raises(RunError, match="1001.jpg"):  # same identity (on_error is not in it), still broken
        evaluate_config(_cfg(root, ckpt, "limit=6"), run)
    assert not (run / "metrics.json").exists(), "metrics.json must not outlive the predictions it summarised"
    img.write_bytes(good)  # the fault is fixed
    m = evaluate_config(_cfg(root, ckpt, "limit=6", "on_error=skip"), run)
    assert m["n_skipped"] == 0 and m["skipped"] == []
    assert {k: m[k] for k in STABLE} == {k: clean[k] for k in STABLE}
    assert (run / "predictions.jsonl").read_text() == (tmp_path / "clean" / "predictions.jsonl").read_text()
    assert {k: _metrics(run)[k] for k in STABLE} == {k: clean[k] for k in STABLE}


def test_cli_validation_error_exit_2_one_line_no_run_dir(data, tmp_path):
    """Why 5 (limit=-5 reported "Acc 0.00 % (n=0)" with rc 0) through the real command: exit 2, one
    line, no run directory. Every other validation case (temperature=0 under on_error=skip, Why 3,
    among them) goes through the same entry point in process below."""
    root, ckpt = data
    r, seconds = _cli(_args(root, ckpt, "on_error=skip", "limit=-5"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    assert _error_lines(r.stderr) == ["error: limit=-5: expected an integer >= 1 (or leave it unset for the whole "
                                      "split)"]
    assert not (tmp_path / "outputs").exists() and "Acc" not in r.stdout


# ------------------------------------------------------------------------------------ Why, bullet 4
@pytest.fixture(scope="module")
def shards(data, tmp_path_factory):
    """Shard runs of the first 6 rows (0/2, 1/2), and a 1/2 shard run with limit=4."""
    root, ckpt = data
    base = tmp_path_factory.mktemp("shards")
    for name, extra in (("s0", ["limit=6", "shard=0/2"]), ("s1", ["limit=6", "shard=1/2"]),
                        ("s1_limit4", ["limit=4", "shard=1/2"])):
        evaluate_config(_cfg(root, ckpt, *extra), base / name)
    return base


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_merge_refuses_limit_stale_gap_overlap_foreign(shards, tmp_path, capsys):
    """Why 4 / Deliver 5: every wrong combination of shards is refused, naming the shard directory."""
    s0, s1, s1_lim = shards / "s0", shards / "s1", shards / "s1_limit4"
    with pytest.raises(RunError) as e:  # a limit=4 shard with a limit=6 shard (main accepted it: n=5 of 6)
        merge_runs(tmp_path / "m", [s0, s1_lim])
    assert str(s1_lim) in str(e.value) and "limit: 6 -> 4" in str(e.value)

    stale = _copy(s1, tmp_path / "stale")  # metrics.json no longer summarises predictions.jsonl
    lines = (stale / "predictions.jsonl").read_text().splitlines(keepends=True)
    rec = json.loads(lines[0])
    rec.update(hit=not rec["hit"], pred_box=rec["gt_box"], iou=1.0)
    (stale / "predictions.jsonl").write_text(json.dumps(rec) + "\n" + "".join(lines[1:]))
    with pytest.raises(RunError, match=f"{stale}: metrics.json is stale"):
        merge_runs(tmp_path / "m", [s0, stale])

    with pytest.raises(RunError, match=r"shard\(s\) 1/2 missing.*" + str(s0)):  # a gap
        merge_runs(tmp_path / "m", [s0])
    dup = _copy(s0, tmp_path / "dup")
    with pytest.raises(RunError, match=f"{dup}: row 0 is also in another shard"):  # an overlap
        merge_runs(tmp_path / "m", [s0, dup, s1])
    partial = _copy(s1, tmp_path / "partial")  # an unfinished shard: rows missing, metrics recomputed to match
    keep = (partial / "predictions.jsonl").read_text().splitlines(keepends=True)[:-1]
    (partial / "predictions.jsonl").write_text("".join(keep))
    ident = json.loads((partial / "run.json").read_text())
    (partial / "metrics.json").write_text(json.dumps(summarise_run(partial, ident)))
    with pytest.raises(RunError, match=f"{partial}: shard 1/2 holds 2 rows, its part of the split has 3"):
        merge_runs(tmp_path / "m", [s0, partial])
    other_n = _copy(s1, tmp_path / "other_n")  # a shard of another split into n
    ident = json.loads((other_n / "run.json").read_text())
    (other_n / "run.json").write_text(json.dumps(dict(ident, shard="1/3")))
    with pytest.raises(RunError, match=f"{other_n} is shard 1/3"):
        merge_runs(tmp_path / "m", [s0, other_n])
    broken = _copy(s1, tmp_path / "broken")
    (broken / "metrics.json").write_text("{not json")
    with pytest.raises(RunError, match=f"{broken / 'metrics.json'} is corrupt"):
        merge_runs(tmp_path / "m", [s0, broken])
    with pytest.raises(RunError, match="is one of the inputs"):
        merge_runs(s1, [s0, s1])
    with open(s1 / ".lock", "a+") as holder:  # a shard still being written by another process
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunError, match=f"{s1} is in use by another running evaluation"):
            merge_runs(tmp_path / "m", [s0, s1])

    assert merge_main(["-o", str(s0), str(s0), str(s1)]) == 2  # the command: exit 2, one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: -o") and "is one of the inputs" in err[0]
    assert not (tmp_path / "m").exists()


def test_merge_of_good_shards_is_the_whole_split(shards, tmp_path):
    """Deliver 4 / 5: the merged metrics.json is recomputed from the merged predictions (n = 6)."""
    m = merge_runs(tmp_path / "m", [shards / "s1", shards / "s0"])
    rows = read_predictions(tmp_path / "m" / "predictions.jsonl")
    assert [r["index"] for r in rows] == list(range(6)) and m["n"] == 6
    assert m["accuracy"] == pytest.approx(sum(r["hit"] for r in rows) / 6)
    assert json.loads((tmp_path / "m" / "run.json").read_text())["shard"] is None
    with pytest.raises(RunError, match="holds a run of another configuration"):  # -o an unrelated run
        merge_runs(shards / "s1_limit4", [shards / "s0", shards / "s1"])


# ------------------------------------------------------------------------------------ Why, bullet 5
def test_another_limit_on_a_finished_run_dir_is_refused(data, tmp_path):
    """Why 5 (limit=10 on a finished run overwrote metrics.json): limit is in the identity."""
    root, ckpt = data
    run = tmp_path / "run"
    evaluate_config(_cfg(root, ckpt, "limit=6"), run)
    before = (run / "metrics.json").read_text()
    with pytest.raises(RunError, match="limit: 6 -> 3"):
        evaluate_config(_cfg(root, ckpt, "limit=3"), run)
    assert (run / "metrics.json").read_text() == before and len(read_predictions(run / "predictions.jsonl")) == 6
    assert summarise_run(run, json.loads((run / "run.json").read_text()))["n"] == _metrics(run)["n"] == 6


@pytest.mark.slow
def test_cli_limits_land_in_their_own_run_dirs(data, tmp_path):
    """Why 5 through the CLI: limit=1 and limit=2 in one working directory give two run directories,
    neither overwriting the other's metrics."""
    root, ckpt = data
    for limit in (1, 2):
        r, seconds = _cli(_args(root, ckpt, f"limit={limit}"), cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        print(f"CLI limit={limit}: {seconds:.1f} s")
    runs = sorted(p.parent for p in (tmp_path / "outputs").rglob("metrics.json"))
    assert len(runs) == 2
    assert sorted(_metrics(p)["n"] for p in runs) == [1, 2]
    for p in runs:
        assert json.loads((p / "run.json").read_text())["limit"] == _metrics(p)["n"]
        assert len(read_predictions(p / "predictions.jsonl")) == _metrics(p)["n"]


VALIDATION = [
    ("method.alpha=abc", "method.alpha='abc': expected a finite number"),
    ("+method.window=3", "unknown key method.window for method 'ours'"),
    ("method.temperature=0", "method.temperature=0: expected a finite number (> 0)"),
    ("limit=0", "limit=0: expected an integer >= 1"),
    ("limit=-5", "limit=-5: expected an integer >= 1"),
    ("split.iou_threshold=1.5", "split.iou_threshold=1.5: expected a number in (0, 1)"),
    ("method.n_segments=[]", "method.n_segments=[]: expected a non-empty list of integers"),
    ("method.upsample=0", "method.upsample=0: expected an integer (>= 1)"),
    ("method.alpha=nan", "method.alpha=nan: expected a finite number"),
]


@pytest.mark.parametrize("arg,message", VALIDATION, ids=[a for a, _ in VALIDATION])
def test_validation_errors_exit_2_one_line_no_run_dir(arg, message, data, tmp_path, monkeypatch, capsys):
    """Why 5 (limit=0 / -5 reported "Acc 0.00 % (n=0)") / Deliver 6: the command's entry point
    (grounding.eval.main, what `python -m grounding.eval` runs) exits 2 with one line before any model
    loads, and leaves no run directory. (The real subprocess is checked for temperature=0 above.)"""
    import grounding.eval as cli

    root, ckpt = data
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["grounding.eval", *_args(root, ckpt, "on_error=skip", arg)])
    monkeypatch.setattr(cli, "app", lambda: pytest.fail("the Hydra app ran despite an invalid configuration"))
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "outputs").exists()
    with pytest.raises(ConfigError):  # evaluate_config() itself refuses too, before creating its directory
        evaluate_config(compose("config", _args(root, ckpt, arg)), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ Why, bullet 6
def test_row_missing_its_last_field_is_never_phrase_none(own, tmp_path):
    """Why 6: under raise, an error naming the file and row; under skip, a skipped row (a miss) whose
    phrase is empty, never "None"."""
    root, ckpt = own
    csv = root / CSV_REL
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]  # data row 2: 1000,"[...]"   (no query)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as e:
        evaluate_config(_cfg(root, ckpt, "limit=3"), tmp_path / "raise")
    assert f"{csv}, data row 2 (line 3): has 2 fields, expected 3" in str(e.value)
    m = evaluate_config(_cfg(root, ckpt, "limit=3", "on_error=skip"), tmp_path / "skip")
    assert m["n"] == 3 and m["skipped"] == [1]
    rows = read_predictions(tmp_path / "skip" / "predictions.jsonl")
    assert rows[1]["phrase"] == "" and rows[1]["hit"] is False and "data row 2" in rows[1]["error"]
    assert all(r["phrase"] not in (None, "None") for r in rows)


# ------------------------------------------------------------------------------------ Why, bullet 7
def test_every_prediction_setting_is_in_both_dir_name_and_identity(data):
    """Why 7 / Deliver 1: data_root, limit, shard, precision, device, the split's settings and the
    method's hyperparameters change the run directory's name (derived from the same spec as the
    identity); workers, cache.*, progress, viz and on_error change neither."""
    from omegaconf import OmegaConf

    root, ckpt = data
    cfg = _cfg(root, ckpt)
    base = run_dir_name(cfg)

    def with_(key, value):
        c = cfg.copy()
        OmegaConf.update(c, key, value, merge=False)
        return c

    for key, value in (("limit", 5), ("shard", "0/2"), ("precision", "fp32"), ("precision", "fp16"),
                       ("device", "cuda"), ("data_root", f"{root}/sub"), ("method.alpha", 0.5),
                       ("method.n_segments", [12]), ("split.iou_threshold", 0.4),
                       ("split.loader.image_template", "{data_root}/x/{img_id}.png"), ("backbone.name", "ViT-B/32")):
        assert run_dir_name(with_(key, value)) != base, key
    for key, value in (("workers", 2), ("cache.enabled", True), ("cache.dir", "/tmp/elsewhere"), ("progress", True),
                       ("on_error", "skip"), ("viz", 2)):
        c = with_(key, value)
        assert run_dir_name(c) == base and run_spec(c) == run_spec(cfg), key
    assert run_dir_name(_cfg(root, ckpt, "on_error=skip", "workers=2")) == base  # composed alike


def test_precision_auto_and_fp32_on_cpu_are_different_run_dirs(data, tmp_path):
    """Why 7 (precision=fp32 on an existing run aborted): the spec holds the precision as written, so
    precision=auto and precision=fp32 — the same float32 on a CPU, hence the same predictions — get
    different run directories (safe: never mixed, at worst computed twice), and one is never run into
    the other's directory."""
    from grounding.models.backbones import resolve_precision

    root, ckpt = data
    import torch

    assert resolve_precision("auto", "cpu") == resolve_precision("fp32", "cpu") == torch.float32
    auto, fp32 = _cfg(root, ckpt, "limit=1"), _cfg(root, ckpt, "limit=1", "precision=fp32")
    assert run_dir_name(auto) != run_dir_name(fp32)
    assert run_spec(auto)["precision"] == "auto" and run_spec(fp32)["precision"] == "fp32"
    m = evaluate_config(auto, tmp_path / "auto")
    with pytest.raises(RunError, match='precision: "auto" -> "fp32"'):
        evaluate_config(fp32, tmp_path / "auto")
    assert evaluate_config(fp32, tmp_path / "fp32")["accuracy"] == m["accuracy"]
    assert (tmp_path / "fp32" / "predictions.jsonl").read_text() == (tmp_path / "auto" / "predictions.jsonl").read_text()


def test_identity_holds_what_changes_a_prediction(data, tmp_path):
    """Deliver 1: run.json holds the resolved hyperparameters (no nulls), the backbone file, the split,
    the annotation hash, the image template, limit, shard and the feature-code version; not workers,
    cache, progress or on_error — so a rerun changing only those resumes the same directory."""
    from grounding.methods.dense import FEATURE_VERSION

    root, ckpt = data
    run = tmp_path / "run"
    evaluate_config(_cfg(root, ckpt, "limit=2", "shard=0/1"), run)
    ident = json.loads((run / "run.json").read_text())
    params = ident["method_params"]
    assert params["n_segments"] == [10] and params["alpha"] == 0.9 and None not in params.values()
    assert set(params) >= {"alpha", "temperature", "box_search", "n_segments", "compactness", "sigma", "upsample",
                           "aggregation", "stem_padding"}
    assert None not in ident["method"].values()
    assert ident["backbone_file"] and ident["split"]["name"] == "flickr_s1"
    assert ident["split"]["loader"]["image_template"] == TEMPLATE
    assert ident["annotations"] == {str(root / CSV_REL): file_sha256(root / CSV_REL)}
    assert ident["limit"] == 2 and ident["shard"] == "0/1" and ident["feature_version"] == FEATURE_VERSION
    text = json.dumps(ident)
    for key in ("workers", "cache", "progress", "on_error"):
        assert f'"{key}"' not in text, key
    m = evaluate_config(_cfg(root, ckpt, "limit=2", "shard=0/1", "on_error=skip", "workers=1", "progress=true"), run)
    assert m["n"] == 2


# ------------------------------------------------------------------------------------ Deliver 7
def _write_csv(path: Path, rows, bom=False, header="img_id,bbox,query"):
    path.parent.mkdir(parents=True, exist_ok=True)
    body = (header + "\n").encode() + b"".join(r + b"\n" for r in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body)


BOX = b'"[10, 20, 100, 140]"'  # inside every image of the fixture (the smallest is 226x150)
BAD_ROWS = {  # data row 2 of a three-row CSV; what the error says
    "short row": (b"1001," + BOX, "has 2 fields, expected 3"),
    "long row": (b"1001," + BOX + b",a cup,extra", "has 4 fields, expected 3"),
    "non-UTF-8 byte": (b"1001," + BOX + b",caf\xe9 au lait", "field 'query' is not valid UTF-8"),
    "over-long field": (b"1001," + BOX + b"," + b"x" * (MAX_FIELD + 1), f"longer than {MAX_FIELD} characters"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_bad_csv_row_names_file_and_row_under_both_modes(kind, tmp_path):
    """Deliver 7: a bad row is a one-line error naming the file and its data row under on_error=raise,
    and a kept row carrying that error (recorded as a skipped miss) under on_error=skip."""
    row, what = BAD_ROWS[kind]
    csv = tmp_path / CSV_REL
    _write_csv(csv, [b"1000," + BOX + b",a person", row, b"1002," + BOX + b",the sky"], bom=True)
    kw = dict(data_root=str(tmp_path), name="t", csv=CSV_REL, columns=COLUMNS, image_template=TEMPLATE)
    with pytest.raises(DatasetError) as e:
        load_zsg_csv(**kw)
    assert str(e.value).startswith(f"{csv}, data row 2 (line 3): ") and what in str(e.value)
    assert len(str(e.value)) < 400
    split = load_zsg_csv(**kw, on_error="skip")
    assert [s.error is not None for s in split] == [False, True, False]
    assert f"{csv}, data row 2" in split[1].error and what in split[1].error
    assert split[1].phrase != "None" and split[0].phrase == "a person"  # the BOM did not eat the header


def test_bom_is_accepted(tmp_path):
    csv = tmp_path / CSV_REL
    _write_csv(csv, [b"1000," + BOX + b",a person"], bom=True)
    split = load_zsg_csv(data_root=str(tmp_path), name="t", csv=CSV_REL, columns=COLUMNS, image_template=TEMPLATE)
    assert len(split) == 1 and split[0].gt_box == (10.0, 20.0, 100.0, 140.0) and split[0].error is None


def test_bad_rows_and_a_decompression_bomb_are_skipped_rows_of_a_run(own, tmp_path):
    """Deliver 7 through a run: under on_error=skip, every bad row (short, long, non-UTF-8, over-long,
    decompression bomb) is a recorded miss naming its row; the good rows are evaluated; under
    on_error=raise the bomb is one error naming the image and the row, not a crash."""
    root, ckpt = own
    _bomb_png(root / "flickr30k-images" / "bomb.jpg")
    rows = [b"1000," + BOX + b",a person"] + [BAD_ROWS[k][0] for k in sorted(BAD_ROWS)] + [
        b"bomb," + BOX + b",a cat", b"1002," + BOX + b",the sky"]
    _write_csv(root / CSV_REL, rows, bom=True)
    m = evaluate_config(_cfg(root, ckpt, "on_error=skip"), tmp_path / "skip")
    assert m["n"] == 7 and m["skipped"] == [1, 2, 3, 4, 5]
    recs = read_predictions(tmp_path / "skip" / "predictions.jsonl")
    for k, kind in enumerate(sorted(BAD_ROWS), start=1):
        assert f"data row {k + 1}" in recs[k]["error"] and BAD_ROWS[kind][1] in recs[k]["error"], kind
    assert "DecompressionBombError" in recs[5]["error"] and "bomb.jpg" in recs[5]["error"]
    assert "annotation row 6" in recs[5]["error"]
    assert not recs[0].get("skipped") and not recs[6].get("skipped")
    _write_csv(root / CSV_REL, [b"bomb," + BOX + b",a cat"])
    with pytest.raises(RunError) as e:
        evaluate_config(_cfg(root, ckpt), tmp_path / "raise")
    assert "row 0 (annotation row 1)" in str(e.value) and "DecompressionBombError" in str(e.value)
    assert "bomb.jpg" in str(e.value)


@pytest.fixture(scope="module")
def small_run(data, tmp_path_factory):
    root, ckpt = data
    run = tmp_path_factory.mktemp("small") / "run"
    evaluate_config(_cfg(root, ckpt, "limit=4"), run)
    return run


def test_corrupt_run_json_is_named(data, small_run, tmp_path):
    """Deliver 7: a corrupt run.json → a clear refusal naming the file."""
    root, ckpt = data
    run = _copy(small_run, tmp_path / "run")
    (run / "run.json").write_text('{"spec_version": 1, "method": ')
    with pytest.raises(RunError) as e:
        evaluate_config(_cfg(root, ckpt, "limit=4"), run)
    assert f"{run / 'run.json'} is corrupt" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("bad", ['{"index": 1, "ima', '[1, 2]', '{"no_index": true}'])
def test_corrupt_prediction_line_in_the_middle_is_named(bad, data, small_run, tmp_path):
    """Deliver 7: a corrupt line in the middle of predictions.jsonl (not a torn last line, which is
    redone) → a refusal naming the file and the line; in the run and in a merge alike."""
    root, ckpt = data
    run = _copy(small_run, tmp_path / "run")
    lines = (run / "predictions.jsonl").read_text().splitlines(keepends=True)
    (run / "predictions.jsonl").write_text(lines[0] + bad + "\n" + "".join(lines[2:]))
    with pytest.raises(RunError, match=f"{run / 'predictions.jsonl'}: line 2 "):
        evaluate_config(_cfg(root, ckpt, "limit=4"), run)
    ident = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(dict(ident, shard="0/1")))  # as a one-shard run, for grounding-merge
    with pytest.raises(RunError, match=f"{run / 'predictions.jsonl'}: line 2 "):
        merge_runs(tmp_path / "m", [run])


def test_predictions_without_run_json_are_never_adopted(data, small_run, tmp_path):
    """Deleting a corrupt run.json (or copying a predictions file into a new directory) must not make
    a run adopt predictions of an unknown configuration."""
    root, ckpt = data
    run = _copy(small_run, tmp_path / "run")
    (run / "run.json").unlink()
    with pytest.raises(RunError, match="holds predictions.jsonl but no run.json"):
        evaluate_config(_cfg(root, ckpt, "limit=4", "method.alpha=0.1"), run)
    assert not (run / "run.json").exists()


def test_torn_last_line_is_redone_not_refused(data, small_run, tmp_path):
    root, ckpt = data
    run = _copy(small_run, tmp_path / "run")
    lines = (run / "predictions.jsonl").read_text().splitlines(keepends=True)
    (run / "predictions.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    m = evaluate_config(_cfg(root, ckpt, "limit=4"), run)
    assert (run / "predictions.jsonl").read_text() == (small_run / "predictions.jsonl").read_text()
    assert {k: m[k] for k in STABLE} == {k: _metrics(small_run)[k] for k in STABLE}


# ------------------------------------------------------------------------------------ Deliver 8
@pytest.mark.slow
def test_a_million_row_csv_loads_in_seconds(tmp_path):
    """Deliver 8: loading streams (no image is opened): 1,000,000 rows in seconds."""
    csv = tmp_path / CSV_REL
    csv.parent.mkdir(parents=True)
    with open(csv, "w") as f:
        f.write("img_id,bbox,query\n")
        f.writelines(f'{1000 + i % 30000},"[{i % 50}, 20, {100 + i % 7}, 220]",a dog number {i}\n'
                     for i in range(1_000_000))
    t0, c0 = time.perf_counter(), time.process_time()
    split = load_zsg_csv(data_root=str(tmp_path), name="big", csv=CSV_REL, columns=COLUMNS, image_template=TEMPLATE)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"1,000,000-row CSV loaded in {seconds:.1f} s ({cpu:.1f} s of CPU; load average {os.getloadavg()[0]:.1f})")
    assert len(split) == 1_000_000 and split.n_errors == 0 and split[999_999].phrase == "a dog number 999999"
    assert split[7].gt_box == (7.0, 20.0, 100.0, 220.0) and split.n_images == 30000
    assert cpu < 15  # CPU time: on a shared machine the wall clock also measures the other processes
