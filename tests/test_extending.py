"""docs/extending.md's out-of-tree method runs as written: its files are written out of the document, and
its command is run (a module on PYTHONPATH, a YAML on hydra.searchpath, no edit to the package)."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"


def blocks(text):
    """(info string, body) of each fenced block."""
    return re.findall(r"```([^\n]*)\n(.*?)```", text, flags=re.S)


def _documented(tmp_path):
    """The document's files written under ``tmp_path`` and its commands, in order."""
    files, commands = {}, []
    for info, body in blocks(DOC.read_text()):
        m = re.search(r"file=(\S+)", info)
        if m:
            files[m.group(1)] = body
        elif "run" in info.split():
            commands.append(body.strip())
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "data").symlink_to(ROOT / "data")  # the bundled demo
    return files, commands


def _run_documented(cmd, tmp_path):
    """Run one documented command line in ``tmp_path``; returns the metrics.json it wrote."""
    cmd = cmd.replace("$PWD", str(tmp_path))
    env_part, rest = cmd.split(" ", 1)
    key, value = env_part.split("=", 1)
    argv = shlex.split(rest)
    assert argv[:3] == ["python", "-m", "grounding.eval"]
    env = dict(os.environ)
    env[key] = value + (os.pathsep + os.environ[key] if os.environ.get(key) else "")  # keep this checkout first
    before = set(tmp_path.rglob("metrics.json"))
    r = subprocess.run([sys.executable, *argv[1:], "progress=false"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    new = sorted(set(tmp_path.rglob("metrics.json")) - before)
    assert len(new) == 1, new
    return new[0]


def test_out_of_tree_methods_run_as_documented(tmp_path):
    files, commands = _documented(tmp_path)
    assert {"my_methods.py", "conf/method/vanilla_patches.yaml", "center_box.py",
            "conf/method/center_box.yaml"} <= set(files) and len(commands) == 2
    assert "import" not in files["center_box.py"].replace("from types import SimpleNamespace", "")  # duck-typed
    by_method = {}
    for cmd in commands:
        path = _run_documented(cmd, tmp_path)
        m = json.loads(path.read_text())
        by_method[m["method"]] = path.parent
        assert m["n"] == 6
    assert set(by_method) == {"vanilla_patches", "center_box"}
    assert not (ROOT / "grounding" / "methods" / "my_methods.py").exists()
    _predictions_are_its_boxes(tmp_path, by_method["center_box"])
    # keys declared once by the class: the YAML's values stay (not replaced by the paper table), a key the YAML
    # does not name takes an override, the others come from the class's paper table
    params = json.loads((by_method["vanilla_patches"] / "run.json").read_text())["method_params"]
    assert params == {"alpha": 0.8, "temperature": 0.01, "prompt": "a photo of {}.", "box_search": "hierarchical"}


def _predictions_are_its_boxes(tmp_path, run):
    """The duck-typed method's predictions are the boxes it returns for each row's image (its own code as oracle)."""
    from PIL import Image

    sys.path.insert(0, str(tmp_path))
    try:
        from center_box import CenterBox
    finally:
        sys.path.remove(str(tmp_path))
    method = CenterBox(scale=0.5)
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and not any(r.get("skipped") for r in rows)
    for r in rows:
        with Image.open(r["image"]) as im:
            want = method.localize_prepared(method.prepare(im), r["phrase"]).box
        assert r["pred_box"] == [float(v) for v in want], r
        assert r["pointing"] is None  # no score map
