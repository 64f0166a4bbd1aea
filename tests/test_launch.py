"""grounding.launch.slurm without a cluster: job states from a fake squeue when sacct says accounting is disabled
(a job that left the queue is seen to end), and the short report of failed shards. The live cluster: test_slurm.py."""
import os
import stat
import types
from pathlib import Path

import pytest

from grounding.launch.slurm import LEFT, QueueWatcher, await_jobs, job_failure, report_and_exit


def _script(path: Path, body: str):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    b = tmp_path / "bin"
    b.mkdir()
    queue = tmp_path / "queue.txt"
    _script(b / "squeue", f'echo "$@" >> {tmp_path}/squeue.calls\ncat {queue}\n')
    _script(b / "sacct", f'echo x >> {tmp_path}/sacct.calls\n'
                         'echo "sacct: error: Slurm accounting storage is disabled" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{b}{os.pathsep}{os.environ['PATH']}")
    return queue, tmp_path


def test_without_accounting_a_job_that_left_the_queue_has_ended(fake_slurm, caplog):
    queue, d = fake_slurm
    queue.write_text("7_0|RUNNING|vm\n7_1|CANCELLED|vm\n7_[2-3]|PENDING|\n")
    w = QueueWatcher(delay_s=0)
    for j in ("7_0", "7_1", "7_2", "7_3", "8"):
        w.register_job(j)
    w.update()
    assert [w.get_state(j, mode="cache") for j in ("7_0", "7_1", "7_2", "7_3")] == ["RUNNING", "CANCELLED", "PENDING", "PENDING"]
    assert w.is_done("7_1", mode="cache") and not w.is_done("7_0", mode="cache")
    assert not w.is_done("8", mode="cache") and w.accounting is False  # unseen once: not yet called ended
    assert "--states=all" in (d / "squeue.calls").read_text()
    queue.write_text("7_0|RUNNING|vm\n7_2|RUNNING|vm\n")  # 7_3 vanished too (a pending array task cancelled)
    w.update()
    assert w.get_state("8", mode="cache") == LEFT and w.is_done("8", mode="cache")
    assert not w.is_done("7_3", mode="cache")  # first miss
    w.update()
    assert w.is_done("7_3", mode="cache") and w.get_state("7_0", mode="cache") == "RUNNING"
    assert len((d / "sacct.calls").read_text().splitlines()) == 1  # asked once, then known to be disabled
    assert "Bypassing sacct" not in caplog.text


def _job(tmp_path, job_id, stderr="", result=False):
    d = tmp_path / job_id
    d.mkdir()
    (d / "log.err").write_text(stderr)
    paths = types.SimpleNamespace(stderr=d / "log.err", result_pickle=d / "result.pkl")
    if result:
        paths.result_pickle.write_text("x")
    return types.SimpleNamespace(job_id=job_id, paths=paths, results=lambda: ["ret-" + job_id])


def test_failed_and_cancelled_jobs_are_reported_in_a_few_lines(fake_slurm, tmp_path, capsys):
    queue, _ = fake_slurm
    queue.write_text("9_0|COMPLETED|vm\n9_1|FAILED|vm\n9_2|CANCELLED by 0|vm\n")
    tb = "Traceback (most recent call last):\n" + "  File x\n" * 60
    jobs = [_job(tmp_path, "9_0", result=True),
            _job(tmp_path, "9_1", tb + "error: data/x.csv row 5: bad box [1, 2]; fix the row\nsrun: error: task 0\n"),
            _job(tmp_path, "9_2", "")]
    labels = ["#0 shard=0/3", "#1 shard=1/3", "#2 shard=2/3"]
    done, failed = await_jobs(jobs, labels, QueueWatcher(delay_s=0), poll_s=0)
    assert done == {0: "ret-9_0"} and set(failed) == {1, 2}
    assert "error: data/x.csv row 5: bad box [1, 2]; fix the row" in failed[1] and "Traceback" not in failed[1]
    assert "CANCELLED" in failed[2] and "run the same command again" in failed[2]
    with pytest.raises(SystemExit) as e:
        report_and_exit(labels, failed, "multirun/.submitit")
    assert e.value.code == 1  # a cancelled job is not an input error
    err = capsys.readouterr().err
    report = err[err.index("error: 2 of 3 jobs"):].splitlines()
    assert len(report) == 4 and report[1].startswith("  #1 shard=1/3: job 9_1 FAILED: error: data/x.csv row 5")
    with pytest.raises(SystemExit) as e:
        report_and_exit(labels, {1: failed[1]}, "multirun/.submitit")
    assert e.value.code == 2  # every failure is the harness's one-line input error


def test_job_failure_without_error_line_shows_the_last_stderr_line(tmp_path):
    job = _job(tmp_path, "5", "something\nKilled: out of memory\n")
    assert job_failure(job, "OUT_OF_MEMORY").startswith("job 5 OUT_OF_MEMORY: Killed: out of memory")
