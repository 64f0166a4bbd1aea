"""README matches what happens: every command in its shell blocks is checked — `python -m grounding.eval …`
and `grounding-localize …` command lines compose and validate (every override key and value; files are not
required), `make` targets exist, console scripts are installed entry points — and the demo it promises runs
(tests/test_extending.py runs the demo experiment; the runs' directories are the ones README describes)."""
import re
import shlex
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def commands():
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                out.append(line)
    return out


CMDS = commands()


def test_readme_shows_the_two_commands_first():
    assert CMDS[:2] == ["make eval", "make test"]
    assert len(CMDS) > 10


@pytest.mark.parametrize("cmd", CMDS)
def test_every_readme_command_is_valid(cmd):
    from grounding.eval import check_command_line

    argv = shlex.split(cmd)
    if argv[0] == "make":
        targets = set(re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), flags=re.M))
        assert argv[1] in targets, cmd
        for v in argv[2:]:
            assert re.fullmatch(r"[A-Z_]+=\S+", v), cmd
        return
    if argv[:3] == ["python", "-m", "grounding.eval"]:
        check_command_line(argv[3:], files=False)  # raises ConfigError on an unknown key/option/value
        return
    if argv[0] == "grounding-localize":
        from grounding.config import compose
        from grounding.evaluation.evaluate import check_backbone_config, validate_method_config

        cfg = compose("localize", argv[3:])
        validate_method_config(cfg)
        check_backbone_config(cfg, files=False)
        return
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, f"README shows {argv[0]!r}, which is not an installed command"


def test_python_api_names_in_readme_exist():
    import grounding

    for name in re.findall(r"grounding\.(\w+)\(", README):
        assert hasattr(grounding, name), name
