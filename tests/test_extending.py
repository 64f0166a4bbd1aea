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


def test_out_of_tree_method_runs_as_documented(tmp_path):
    files, commands = {}, []
    for info, body in blocks(DOC.read_text()):
        m = re.search(r"file=(\S+)", info)
        if m:
            files[m.group(1)] = body
        elif "run" in info.split():
            commands.append(body.strip())
    assert {"my_methods.py", "conf/method/vanilla_patches.yaml"} <= set(files) and len(commands) == 1
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "data").symlink_to(ROOT / "data")  # the bundled demo
    cmd = commands[0].replace("$PWD", str(tmp_path))
    env_part, rest = cmd.split(" ", 1)
    key, value = env_part.split("=", 1)
    argv = shlex.split(rest)
    assert argv[:3] == ["python", "-m", "grounding.eval"]
    env = dict(os.environ)
    env[key] = value
    r = subprocess.run([sys.executable, *argv[1:], "progress=false"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = [json.loads(p.read_text()) for p in tmp_path.rglob("metrics.json")]
    assert len(metrics) == 1 and metrics[0]["method"] == "vanilla_patches" and metrics[0]["n"] == 6
    assert not (ROOT / "grounding" / "methods" / "my_methods.py").exists()
