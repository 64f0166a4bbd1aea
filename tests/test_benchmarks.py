"""The benchmark scripts' quick modes run in CI (their numbers are reported, not asserted)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
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


def test_tuning_recipe_reads_a_sweep_and_prints_the_line(tmp_path):
    import json

    for k, (acc, a, t) in enumerate([(0.2, 0.7, 0.01), (0.4, 0.8, 0.02), (0.3, 0.9, 0.01)]):
        d = tmp_path / f"job{k}"
        d.mkdir()
        (d / "metrics.json").write_text(json.dumps({"accuracy": acc, "n": 5, "params": {"alpha": a, "temperature": t}}))
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "tune.py"), "--method", "maskclip", "--backbone",
                        "vit_b16", "--split", "vg_val", "--from-sweep", str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert 'TUNED[("maskclip", "vit_b16", "vg")] = {"alpha": 0.8, "temperature": 0.02}' in r.stdout
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "tune.py"), "--method", "gem", "--backbone", "vit_b16",
                        "--split", "flickr_s1", "--print-only"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "test split" in r.stderr  # never tune on a test split
