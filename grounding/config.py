"""Hydra config helpers: where conf/ lives, composing it outside @hydra.main, method params."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from .methods.hparams import PARAM_NAMES


def conf_dir() -> Path:
    """``$GROUNDING_CONF`` or the repository's conf/ (the package is installed editable)."""
    env = os.environ.get("GROUNDING_CONF")
    p = Path(env) if env else Path(__file__).resolve().parents[1] / "conf"
    if not (p / "config.yaml").is_file():
        raise FileNotFoundError(f"Hydra config folder not found at {p} (set GROUNDING_CONF)")
    return p


def compose(config_name: str = "config", overrides: Optional[List[str]] = None) -> DictConfig:
    from hydra import compose as _compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return _compose(config_name=config_name, overrides=list(overrides or []))


def method_overrides(method_cfg: DictConfig) -> Dict[str, Any]:
    """The hyperparameters a config sets explicitly (non-null); the rest stay the paper's."""
    d = OmegaConf.to_container(method_cfg, resolve=True)
    return {k: v for k, v in d.items() if k in PARAM_NAMES and v is not None}
