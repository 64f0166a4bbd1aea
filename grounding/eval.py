"""``python -m grounding.eval [KEY=VALUE ...]``: evaluate a method on a split (Hydra app).

    python -m grounding.eval experiment=demo                # bundled demo: toy CLIP, ours + crop_rank
    python -m grounding.eval split=flickr_s1 backbone=vit_b32 method=ours data_root=DIR limit=N
    python -m grounding.eval -m split=flickr_s1_val method.alpha=0.6,0.7,0.8 method.temperature=0.01,0.02

The configuration is checked first (every override composed, every value validated, files looked up)
so that mistakes end in one line and exit code 2 before any model loads. The run directory receives
predictions.jsonl, metrics.json and run.json (see grounding.evaluation.runner).
"""
from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import List

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .errors import EXIT_USAGE, debug_requested, fail, short_warnings, user_errors
from .config import conf_dir

_NO_PREFLIGHT = {"--help", "-h", "--hydra-help", "--shell-completion", "-sc"}
_INSPECT = {"--cfg", "-c", "--info", "-i", "--resolve", "-p", "--package"}  # compose and validate, no file checks


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float:
    """One Hydra job: :func:`grounding.evaluation.evaluate.evaluate_config` into Hydra's output directory,
    which an error before any row leaves behind neither (Hydra made it, with its records)."""
    from .evaluation.evaluate import evaluate_config
    from .evaluation.runner import RunDirectory

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        return evaluate_config(cfg, run_dir)["accuracy"]
    except user_errors() as e:
        RunDirectory(run_dir).discard_if_unused()
        if debug_requested(sys.argv):
            raise
        fail(str(e))
        sys.exit(EXIT_USAGE)


def override_combinations(args: List[str], most: int = 64) -> List[List[str]]:
    """The concrete override lists a command line stands for (sweeps expanded, at most ``most``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    raw = [a for a in args if "=" in a and not a.startswith("-")]
    parsed = OverridesParser.create().parse_overrides(raw)
    choices = []
    for text, o in zip(raw, parsed):
        key = text.split("=", 1)[0]
        if o.is_sweep_override():
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(c) for c in itertools.islice(itertools.product(*choices), most)]


def check_command_line(args: List[str], files: bool = True) -> None:
    """Compose and validate every job of this command line; raise ConfigError with one line on a mistake."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .config import compose
    from .evaluation.evaluate import preflight
    from .methods.base import ConfigError

    for overrides in override_combinations(args):
        try:
            cfg = compose("config", overrides)
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(_short_hydra_error(e, overrides)) from None
        preflight(cfg, files=files)


def _short_hydra_error(e: Exception, overrides: List[str]) -> str:
    msg = str(e).strip().splitlines()
    text = msg[0] if msg else type(e).__name__
    key = next((line.split("full_key:", 1)[1].strip() for line in msg if "full_key:" in line), None)
    if "not in struct" in str(e) and key:
        return f"unknown key {key!r} ({' '.join(overrides)}); see --help for the keys, or prefix + to add one"
    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing:
        from .config import options

        group, option = missing.groups()
        return f"unknown {group} {option!r}; choose one of: {' '.join(options(group))}"
    if text.startswith("Could not override"):
        return f"{text} No such key in the config: see --help for the keys (prefix + to add a new one)"
    return text


def main() -> None:
    from .config import register_methods

    args = sys.argv[1:]
    short_warnings()
    register_methods(args)  # every method's keys and paper values, before Hydra composes (--help included)
    if not any(a.split("=", 1)[0] in _NO_PREFLIGHT for a in args):
        try:
            check_command_line(args, files=not any(a.split("=", 1)[0] in _INSPECT for a in args))
        except user_errors() as e:
            if debug_requested(args):
                raise
            sys.exit(fail(str(e)))
    app()


if __name__ == "__main__":
    main()
