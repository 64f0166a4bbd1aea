"""Test-only hook for tests/test_slurm.py, active only when GROUNDING_TEST_HOOK names a directory (this folder is
put first on PYTHONPATH by the test, and Slurm jobs inherit the environment). Per evaluated row it appends one
line to HOOK/calls-<array task>-<pid> (to count rows computed), and array task 0 stops after
GROUNDING_TEST_HOLD_AFTER rows while HOOK/hold exists (at most 10 minutes) — a job held mid-run, so the test can
scancel it part-way at a moment it controls. No prediction is changed."""
import os

if os.environ.get("GROUNDING_TEST_HOOK"):
    import time

    from grounding.methods.dense import DenseMethod

    _hook = os.environ["GROUNDING_TEST_HOOK"]
    _task = os.environ.get("SLURM_ARRAY_TASK_ID", "x")
    _orig = DenseMethod.localize_prepared
    _seen = [0]

    def localize_prepared(self, *args, **kwargs):
        hold = os.path.join(_hook, "hold")
        if _task == "0" and _seen[0] >= int(os.environ.get("GROUNDING_TEST_HOLD_AFTER", "3")):
            t0 = time.time()
            while os.path.exists(hold) and time.time() - t0 < 600:
                time.sleep(0.2)
        _seen[0] += 1
        with open(os.path.join(_hook, f"calls-{_task}-{os.getpid()}"), "a") as f:
            f.write("1\n")
        return _orig(self, *args, **kwargs)

    DenseMethod.localize_prepared = localize_prepared
