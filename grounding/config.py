"""Hydra configuration: where conf/ lives, composing it, the paper-hyperparameter entries, and the run
specification from which a run's directory and its identity both derive.

Importing this module registers, in Hydra's ConfigStore, one ``hparams/<method>/<backbone>_<family>``
entry per method YAML that names a ``paper_defaults`` table (grounding/methods/hparams.py), so the composed
config holds the real numbers. Torch-free: it runs before any model is imported.
"""
from __future__ import annotations

import hashlib
import json
import os

from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from .methods import hparams
from .paths import conf_dir  # noqa: F401  (re-exported)

SPEC_VERSION = 1  # bump when the meaning of a run specification changes


def options(group: str) -> List[str]:
    """The options of a config group in conf/ (e.g. ``split``: every split YAML)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def compose(config_name: str = "config", overrides: Optional[List[str]] = None) -> DictConfig:
    from hydra import compose as _compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return _compose(config_name=config_name, overrides=list(overrides or []))


# ------------------------------------------------------------------------- paper hyperparameters
def backbone_option_key(option: str) -> Optional[str]:
    """The hyperparameter key a backbone option's YAML names (``oc_vit_h14`` → ``vit_h14``), or None when it
    is derived at run time (``key: ${backbone:key}``, from the library's ``describe`` of other values)."""
    node = OmegaConf.load(conf_dir() / "backbone" / f"{option}.yaml")
    if "key" not in node or OmegaConf.is_interpolation(node, "key") or OmegaConf.is_missing(node, "key"):
        return None
    return str(node.key)


def register_hparams() -> None:
    """Store ``hparams/<method>/<backbone option>_<family>`` for every method YAML with a ``paper_defaults``
    table, with the values of the option's ``key``. Options whose key depends on other values
    (``key: ${backbone:key}``) get no entry; the method fills unset values from the loaded
    backbone's key (:meth:`grounding.methods.base.Method.default_params`)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    keys = {b: backbone_option_key(b) for b in options("backbone")}
    for method in options("method"):
        table = OmegaConf.load(conf_dir() / "method" / f"{method}.yaml").get("paper_defaults")
        if not table:
            continue
        for backbone, key in keys.items():
            if key is None:
                continue
            for family in options("family"):
                try:
                    values = hparams.paper_hparams(key, table, family, method=method)
                except ValueError:
                    continue  # e.g. denseclip on a ViT: no entry, so composing says nothing is filled
                cs.store(group=f"hparams/{method}", name=f"{backbone}_{family}", node=values, package="method")


# ------------------------------------------------------------------------------ run specification
def _plain(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def run_spec(cfg: DictConfig) -> Dict[str, Any]:
    """Everything in the config that can change a prediction, resolved: the method and its
    hyperparameters, the backbone, the split and its loader (files, columns, image template), the data
    root, ``limit``, ``shard``, precision and device type. Not workers, cache, progress or on_error."""
    method = {k: v for k, v in _plain(cfg.method).items() if v is not None and k not in ("paper_defaults",)}
    if cfg.get("variant") and "variant" in method:
        method["variant"] = cfg.variant
    backbone = {k: v for k, v in _plain(cfg.backbone).items() if k != "cache_dir"}
    split = {k: v for k, v in _plain(cfg.split).items() if k not in ("table", "order", "expected_rows", "expected_rows_source")}
    return {
        "spec_version": SPEC_VERSION,
        "method": method,
        "backbone": backbone,
        "family": cfg.family.name,
        "split": split,
        "data_root": os.path.abspath(str(cfg.data_root)),
        "limit": cfg.get("limit"),
        "shard": cfg.get("shard"),
        "precision": str(cfg.get("precision", "auto")),
        "device_type": str(cfg.get("device", "cpu")).split(":")[0],
        # batching is exact on CPU; on a GPU its kernels may round differently, so it is part of the spec
        "batch_images": batch_images(cfg),
        **({"proposals": _plain(cfg.proposals)} if cfg.get("proposals") is not None else {}),
    }


def batch_images(cfg: DictConfig) -> int:
    """Images whose region tokens run in one forward: ``batch_images``, or 4 on CUDA and 1 elsewhere."""
    n = cfg.get("batch_images")
    return int(n) if n else (4 if str(cfg.get("device", "cpu")).startswith("cuda") else 1)


def spec_digest(spec: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_dir_name(cfg: DictConfig) -> str:
    """``<split>/<method>/<backbone>/<what differs>-<digest of the run spec>``: two runs share a
    directory only if their specifications are equal (and then the identity check in run.json holds)."""
    spec = run_spec(cfg)
    overrides = []
    try:
        overrides = [o for o in cfg.hydra.overrides.task
                     if o.split("=", 1)[0].lstrip("+~").startswith(("method.", "limit", "shard", "variant",
                                                                    "precision", "family", "proposals"))]
    except Exception:  # composed without Hydra's runtime node (tests, API)
        pass
    label = ",".join(sorted(overrides)).replace("/", "_") or "paper"
    if len(label) > 80:
        label = label[:80]
    return f"{cfg.split.name}/{cfg.method.name}/{cfg.backbone.key}/{label}-{spec_digest(spec)}"


def _resolve_run_dir_name(*, _root_) -> str:
    return run_dir_name(_root_)


def _backbone_fact(what: str, *, _parent_) -> str:
    from .models.registry import fact

    return fact(what, _parent_=_parent_)


if not OmegaConf.has_resolver("run_dir_name"):
    OmegaConf.register_new_resolver("run_dir_name", _resolve_run_dir_name)
# ${backbone:key} / ${backbone:kind} in conf/backbone/*.yaml: derived by the node's library (torch-free)
if not OmegaConf.has_resolver("backbone"):
    OmegaConf.register_new_resolver("backbone", _backbone_fact)
register_hparams()
