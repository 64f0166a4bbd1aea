"""The benchmark scripts' quick modes run in CI (their numbers are reported, not asserted)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script,expect", [
    ("bench_box_search.py", "faster than hierarchical"),
    ("bench_pipeline.py", "reuse speed-up"),
    ("bench_scaling.py", "region tokens s/image"),
    ("bench_gpu.py", "GPU"),
])
def test_quick_mode_runs(tmp_path, script, expect):
    out = tmp_path / "bench.md"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert expect in out.read_text()
