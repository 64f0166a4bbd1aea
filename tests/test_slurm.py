"""The Slurm path on a live one-node cluster (scripts/slurm_local.sh; `make test-slurm`, run by .ci/run): README's
commands as written, merge == single-process run byte for byte, scancel part-way → the sweep ends within a minute
naming the shard → the same command resumes it without recomputing kept rows, and a shard's bad input reported in
a few lines. Skipped, with the reason, when Slurm is not installed."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # python and grounding-merge of this environment
HOOK_DIR = Path(__file__).resolve().parent / "slurm_hook"
SHARDS = "shard=0/3,1/3,2/3"
RUN_S = 1200  # generous bound on one multirun (a loaded 2-core machine); every wait below is bounded


def _node_state() -> str:
    try:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout.split()[0] if r.returncode == 0 and r.stdout.split() else ""


@pytest.fixture(scope="module")
def cluster():
    """A Slurm cluster answering `sinfo`: the running one, else one started by scripts/slurm_local.sh (root)."""
    missing = [b for b in ("sbatch", "squeue", "scancel", "sinfo", "slurmctld", "slurmd", "munged") if not shutil.which(b)]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    started = False
    if _node_state().rstrip("*") not in {"idle", "mix", "alloc"}:
        if os.geteuid() != 0:
            pytest.skip("no Slurm cluster answers and not root: start one with sudo scripts/slurm_local.sh start")
        r = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "start"], capture_output=True,
                           text=True, timeout=240)
        assert r.returncode == 0, f"scripts/slurm_local.sh start failed:\n{r.stdout}\n{r.stderr}"
        started = True
    yield
    if started:
        subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh"), "stop"], timeout=120)


def _env(**extra):
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    env.pop("HYDRA_FULL_ERROR", None)
    env.update(extra)
    return env


def _cancel_all(cwd: Path):
    """scancel every job this test submitted (their ids are the submitit folders' names)."""
    ids = {p.name.split("_")[0] for p in (cwd / "multirun" / ".submitit").glob("*") if p.name.split("_")[0].isdigit()}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], capture_output=True, timeout=60)


def _sweep(cwd: Path, *extra, env=None, timeout=RUN_S):
    cmd = [sys.executable, "-m", "grounding.eval", "-m", "hydra/launcher=slurm_cpu", "experiment=demo",
           "method=ours", SHARDS, "progress=false", *extra]
    return subprocess.run(cmd, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)


def _single(cwd: Path):
    """The single-process run of the demo (ours) in ``cwd`` (rows name their images by absolute path, so the
    comparison is made in the sweep's own directory): its predictions.jsonl bytes and metrics."""
    r = subprocess.run([sys.executable, "-m", "grounding.eval", "experiment=demo", "method=ours", "progress=false"],
                       cwd=cwd, env=_env(), capture_output=True, text=True, timeout=RUN_S)
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = [p.parent for p in (cwd / "multirun" / "demo" / "ours" / "toy").glob("paper-*/predictions.jsonl")]
    return (run / "predictions.jsonl").read_bytes(), json.loads((run / "metrics.json").read_text())


def readme_slurm_commands():
    section = re.search(r"^### Run on a Slurm cluster\n(.*?)^##", (ROOT / "README.md").read_text(), re.S | re.M)
    assert section, "README has no 'Run on a Slurm cluster' section"
    blocks = re.findall(r"```sh\n(.*?)```", section.group(1), re.S)
    return [l.strip() for b in blocks for l in b.splitlines() if l.strip()]


def _same_as_single(merged: Path, single):
    preds, metrics = single
    assert (merged / "predictions.jsonl").read_bytes() == preds
    m = json.loads((merged / "metrics.json").read_text())
    assert (m["accuracy"], m["n"], m.get("n_skipped", 0)) == (metrics["accuracy"], metrics["n"], metrics.get("n_skipped", 0))


def test_readme_commands_on_slurm_merge_to_the_single_run(cluster, tmp_path):
    """README's three commands, exactly as written (python/grounding-merge from this environment, via PATH)."""
    cmds = readme_slurm_commands()
    assert len(cmds) == 3 and "hydra/launcher=slurm_cpu" in cmds[0] and cmds[1].startswith("squeue")
    assert cmds[2].startswith("grounding-merge")
    try:
        for cmd in cmds:
            r = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                               timeout=RUN_S)
            assert r.returncode == 0, f"{cmd}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            assert "Bypassing sacct" not in r.stderr  # accounting is off on this cluster: no sacct noise
    finally:
        _cancel_all(tmp_path)
    shards = sorted((tmp_path / "multirun" / "demo" / "ours" / "toy").glob("shard=*"))
    assert len(shards) == 3 and all((s / "metrics.json").exists() for s in shards)
    _same_as_single(tmp_path / "outputs" / "demo_merged", _single(tmp_path))


def _rows(run: Path) -> int:
    f = run / "predictions.jsonl"
    return sum(1 for l in f.read_text().splitlines() if l.endswith("}")) if f.exists() else 0


def _calls(hook: Path, task: str) -> int:
    return sum(len(p.read_text().splitlines()) for p in hook.glob(f"calls-{task}-*"))


def _wait(cond, what: str, limit: float):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < limit, f"timed out after {limit:.0f}s waiting for {what}"
        time.sleep(1)


def test_scancel_ends_the_sweep_and_the_same_command_resumes(cluster, tmp_path):
    """Shard 0's job is held after 3 rows (tests/slurm_hook), cancelled with scancel while shards 1 and 2 are done:
    the sweep ends within a minute naming shard 0; the same command again computes only the missing rows."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "hold").touch()
    env = _env(GROUNDING_TEST_HOOK=str(hook), GROUNDING_TEST_HOLD_AFTER="3",
               PYTHONPATH=os.pathsep.join([str(HOOK_DIR), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "grounding.eval", "-m", "hydra/launcher=slurm_cpu", "experiment=demo", "method=ours",
           SHARDS, "progress=false", "hydra.launcher.cpus_per_task=1"]
    toy = tmp_path / "multirun" / "demo" / "ours" / "toy"
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        shard = lambda i: next(iter(toy.glob(f"shard={i}_3-*")), tmp_path / "none")
        _wait(lambda: _rows(shard(0)) >= 3 and all((shard(i) / "metrics.json").exists() for i in (1, 2)),
              "shards 1, 2 done and shard 0 held after 3 rows", RUN_S)
        assert p.poll() is None
        (job0,) = [d.name for d in (tmp_path / "multirun" / ".submitit").glob("*_0")]
        subprocess.run(["scancel", job0], check=True, timeout=60)
        t0 = time.time()
        out, err = p.communicate(timeout=120)
        took = time.time() - t0
    finally:
        if p.poll() is None:
            p.kill()
        _cancel_all(tmp_path)
    assert took < 60, f"the sweep took {took:.0f}s to end after scancel"
    assert p.returncode == 1, err[-3000:]
    report = err[err.index("error: 1 of 3 jobs did not finish"):]
    assert "shard=0/3" in report and "CANCELLED" in report and "run the same command again" in report
    assert "shard=1/3" not in report and "Traceback" not in err and len(report.splitlines()) <= 4, report
    kept = _rows(shard(0))
    assert 3 <= kept < 31 and not (shard(0) / "metrics.json").exists()
    calls = {t: _calls(hook, t) for t in "012"}

    (hook / "hold").unlink()
    try:
        r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_S)
    finally:
        _cancel_all(tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    # the same command: shard 0 computed only its missing rows; shards 1 and 2 recomputed nothing
    assert _calls(hook, "0") - calls["0"] == 31 - kept
    assert (_calls(hook, "1"), _calls(hook, "2")) == (calls["1"], calls["2"])
    m = subprocess.run([str(BIN / "grounding-merge"), "-o", str(tmp_path / "merged"),
                        *[str(shard(i)) for i in range(3)]], capture_output=True, text=True, env=_env(), timeout=300)
    assert m.returncode == 0, m.stderr[-2000:]
    _same_as_single(tmp_path / "merged", _single(tmp_path))


def test_a_shard_failing_on_bad_input_is_reported_in_a_few_lines(cluster, tmp_path):
    """on_error=raise: a truncated image fails the shards holding its rows; the sweep names them and the file."""
    r = subprocess.run([sys.executable, "-c", "from grounding.data.demo import ensure_demo_data; ensure_demo_data('data')"],
                       cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = (tmp_path / "data" / "ds_csv_ann" / "demo" / "csv_dir" / "test.csv").read_text().splitlines()[1:]
    victim = rows[-1].split(",")[0]  # the last image: its rows are at the end of the split
    bad = {p % 3 for p, row in enumerate(rows) if row.split(",")[0] == victim}
    png = tmp_path / "data" / "demo-images" / f"{victim}.png"
    png.write_bytes(png.read_bytes()[:200])
    try:
        r = _sweep(tmp_path, "on_error=raise", "hydra.launcher.cpus_per_task=1")
    finally:
        _cancel_all(tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    report = r.stderr[r.stderr.index(f"error: {len(bad)} of 3 jobs did not finish"):]
    lines = report.splitlines()
    assert len(lines) == len(bad) + 2 and "Traceback" not in r.stderr and ".pkl" not in report, report
    for i in range(3):
        assert (f"shard={i}/3" in report) == (i in bad), report
    assert all(f"{victim}.png" in l and "FAILED" in l for l in lines[1:-1]), report
