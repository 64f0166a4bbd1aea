"""Hydra's submitit Slurm launcher, made to end: ``hydra/launcher=slurm`` / ``slurm_cpu`` use :class:`SlurmLauncher`.

Two changes to ``hydra_submitit_launcher``'s SlurmLauncher, nothing else:

* **Job states without accounting.** submitit learns that a job ended from its result file or from ``sacct``.
  Where Slurm keeps no accounting (``AccountingStorageType=accounting_storage/none``, common on small
  clusters), ``sacct`` fails — submitit warned "Bypassing sacct error" at every poll — and a job that ended
  without a result file (``scancel``, preemption, out of memory, a killed node) was never seen to end: the
  multirun waited forever. :class:`QueueWatcher` reads ``squeue --states=all`` (the controller remembers
  finished jobs for ``MinJobAge``, 300 s by default), asks ``sacct`` only when accounting works, and calls a
  job that neither knows on two polls in a row ``LEFT_QUEUE`` (ended). It polls every ``POLL_S`` seconds.
* **A short report.** Every job is awaited (one line as soon as one fails or is cancelled); then, if any did
  not finish, the multirun ends with one line per such job — its overrides (``shard=1/3 …``), Slurm's state and
  the job's own ``error:`` line — and the hint to run the same command again (each job resumes its run
  directory). Exit code 2 when every failure is the harness's one-line input error, else 1.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
from omegaconf import OmegaConf
from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmInfoWatcher

log = logging.getLogger(__name__)

POLL_S = 10.0  # seconds between two looks at the queue (one squeue call for all jobs of the sweep)
LEFT = "LEFT_QUEUE"  # a job the scheduler no longer knows: it has ended (its result file says how)
_INTERRUPTED = {"CANCELLED", "PREEMPTED", "DEADLINE", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "REVOKED", LEFT}


class QueueWatcher(SlurmInfoWatcher):
    """Job states from ``squeue`` (and ``sacct`` where accounting is on); drop-in for submitit's watcher."""

    def __init__(self, delay_s: float = POLL_S) -> None:
        super().__init__(delay_s=int(delay_s))
        self.accounting: Optional[bool] = None  # None: not asked yet
        self._unseen: Dict[str, int] = {}

    def _ask(self, command: List[str]) -> Optional[str]:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
        except subprocess.CalledProcessError as e:
            if command[0] == "sacct" and "accounting storage is disabled" in (e.stderr or ""):
                self.accounting = False
                log.info("Slurm accounting is disabled on this cluster: job states are read from squeue")
            else:
                log.debug("%s failed: %s", command[0], (e.stderr or "").strip())
        except (OSError, subprocess.TimeoutExpired) as e:
            log.debug("%s failed: %s", command[0], e)
        return None

    def update(self) -> None:
        to_check = self._registered - self._finished
        if not to_check:
            return
        self._num_calls += 1
        ids = ",".join(sorted({j.split("_")[0] for j in to_check}))
        out = self._ask(["squeue", "--states=all", "--noheader", "--format=%i|%T|%N", f"--jobs={ids}"])
        info = self.read_info("JobID|State|NodeList\n" + out) if out is not None else {}
        missing = to_check - set(info)
        if missing and self.accounting is not False:
            acct = self._ask(["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", ids])
            if acct is not None:
                self.accounting = True
                info.update({k: v for k, v in self.read_info(acct).items() if k in missing})
        self._info_dict.update(info)
        if out is not None:  # squeue answered: a job it does not list (twice in a row) has left the queue
            for job_id in to_check - set(info):
                self._unseen[job_id] = self._unseen.get(job_id, 0) + 1
                if self._unseen[job_id] >= 2:
                    self._info_dict[job_id] = {"JobID": job_id, "State": LEFT}
        self._last_status_check = time.time()
        for job_id in to_check:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


def _job_error_lines(job: Any) -> str:
    """The job's own one-line errors (``error: …``/``hint: …`` on its stderr), else its last stderr line."""
    try:
        text = job.paths.stderr.read_text(errors="replace")
    except OSError:
        return ""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    ours = [l for l in lines if l.startswith(("error:", "hint:"))]
    return " ".join(ours[-2:]) if ours else (lines[-1] if lines else "")


def job_failure(job: Any, state: str) -> str:
    """Why ``job`` did not return a result, in one line (its label is added by the caller)."""
    if state.split()[0] in _INTERRUPTED:
        return (f"job {job.job_id} {state} (scancel, preemption or time limit) before it finished; the rows it "
                f"wrote are kept: run the same command again to resume")
    why = _job_error_lines(job) or "no error message"
    return f"job {job.job_id} {state}: {why} (log: {job.paths.stderr})"


def _outcome(job: Any, state: str):
    """("ok", JobReturn) or ("failed", one line) for a job that has ended."""
    if not job.paths.result_pickle.exists() and state != "COMPLETED":  # (COMPLETED: the file may lag on NFS)
        return "failed", job_failure(job, state)
    try:
        return "ok", job.results()[0]
    except UncompletedJobError as e:
        if not job.paths.result_pickle.exists():
            return "failed", job_failure(job, state)
        last = [l.strip() for l in str(e).splitlines() if l.strip()]  # a Python exception raised in the job
        return "failed", f"job {job.job_id} raised {last[-1] if last else 'an exception'} (log: {job.paths.stderr})"


def await_jobs(jobs: Sequence[Any], labels: Sequence[str], watcher: QueueWatcher, poll_s: float = POLL_S,
               echo=print) -> tuple:
    """Wait until every job has ended; return ({index: JobReturn}, {index: failure line})."""
    for job in jobs:
        job.watcher = watcher  # this instance's state source (submitit's class attribute asks sacct only)
        watcher.register_job(job.job_id)
    done: Dict[int, Any] = {}
    failed: Dict[int, str] = {}
    while len(done) + len(failed) < len(jobs):
        watcher.update()
        for i, job in enumerate(jobs):
            if i in done or i in failed:
                continue
            state = watcher.get_state(job.job_id, mode="cache")
            if not (job.paths.result_pickle.exists() or watcher.is_done(job.job_id, mode="cache")):
                continue
            kind, value = _outcome(job, state)
            if kind == "ok":
                done[i] = value
            else:
                failed[i] = value
                echo(f"[slurm] {labels[i]}: {value}", file=sys.stderr, flush=True)
        if len(done) + len(failed) < len(jobs):
            time.sleep(poll_s)
    return done, failed


def report_and_exit(labels: Sequence[str], failed: Dict[int, str], folder: str, echo=print) -> None:
    user_error = all(": error:" in line for line in failed.values())
    echo(f"error: {len(failed)} of {len(labels)} jobs did not finish:", file=sys.stderr)
    for i, line in sorted(failed.items()):
        echo(f"  {labels[i]}: {line}", file=sys.stderr)
    echo("hint: finished rows are kept in each run directory; fix what is named above (if anything), then run "
         f"the same command again: every job resumes its run directory. Job logs: {folder}", file=sys.stderr)
    sys.stdout.flush()
    sys.exit(2 if user_error else 1)


class SlurmLauncher(_SubmititSlurmLauncher):
    """submitit's Slurm launcher whose multirun ends when its jobs leave the queue, with a short report."""

    def _executor(self):
        import submitit

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init["slurm_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster="slurm", **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in self.params.items()
                                      if k not in {"submitit_folder", "max_num_timeout"}})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and len(job_overrides) > 0
        executor = self._executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit 'slurm' sweep output dir : {sweep_dir}")
        labels, params = [], []
        for k, overrides in enumerate(job_overrides):
            idx = initial_job_idx + k
            labels.append(f"#{idx} {' '.join(filter_overrides(overrides))}")
            log.info(f"\t{labels[-1]}")
            params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*params))
        log.info("Slurm jobs %s submitted; watch them with: squeue --jobs=%s", ",".join(j.job_id for j in jobs),
                 jobs[0].job_id.split("_")[0])
        done, failed = await_jobs(jobs, labels, QueueWatcher())
        if failed:
            report_and_exit(labels, failed, str(Path(self.params["submitit_folder"]).parent))
        return [done[i] for i in range(len(jobs))]
