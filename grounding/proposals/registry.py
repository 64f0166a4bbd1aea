"""The proposal-source registry: one YAML per source in conf/proposals/ (``_target_`` and its settings).
Imports no implementation; :func:`build_source` instantiates the chosen one."""
from __future__ import annotations

from typing import List

from .base import ProposalError


def _conf_dir():
    from ..paths import conf_dir

    return conf_dir()


def source_names() -> List[str]:
    return sorted(p.stem for p in (_conf_dir() / "proposals").glob("*.yaml"))


def source_class(cfg):
    """The class named by a source config's ``_target_`` (a did-you-mean error for an unknown name)."""
    from hydra.utils import get_object

    target = cfg.get("_target_")
    if not target:
        raise ProposalError(f"proposals {cfg.get('name')!r} has no _target_; known sources: {', '.join(source_names())}")
    try:
        return get_object(str(target))
    except Exception as e:
        raise ProposalError(f"proposals._target_={target!r} cannot be imported: {e}") from None


def build_source(cfg):
    """Instantiate a source config node (``_target_`` plus its parameters)."""
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    cls = source_class(d)
    d.pop("_target_", None)
    return cls(**d)
