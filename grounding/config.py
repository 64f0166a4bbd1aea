"""Hydra configuration: where conf/ lives, composing it, the method keys and paper-hyperparameter entries,
and the run specification from which a run's directory and its identity both derive.

A method's hyperparameters are declared once, by its class (``PARAMS``, ``paper_defaults``);
:func:`register_methods` (called by :func:`compose` and by ``python -m grounding.eval`` before Hydra composes)
puts them in Hydra's ConfigStore, so the composed config holds every key and the real numbers. Importing
this module is torch-free; registering imports the method classes.
"""
from __future__ import annotations

import hashlib
import json
import os

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from .methods import hparams
from .paths import conf_dir  # noqa: F401  (re-exported)

SPEC_VERSION = 1  # bump when the meaning of a run specification changes


def options(group: str) -> List[str]:
    """The options of a config group in conf/ (e.g. ``split``: every split YAML)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def compose(config_name: str = "config", overrides: Optional[List[str]] = None) -> DictConfig:
    """The composed config (Hydra's compose API), with the method keys and paper values registered."""
    from hydra import compose as _compose, initialize_config_dir

    register_methods(overrides or ())

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return _compose(config_name=config_name, overrides=list(overrides or []))


# --------------------------------------------------------------------- method keys and paper values
def backbone_option_key(option: str) -> Optional[str]:
    """The hyperparameter key a backbone option's YAML names (``oc_vit_h14`` → ``vit_h14``), or None when it
    is derived at run time (``key: ${backbone:key}``, from the library's ``describe`` of other values)."""
    node = OmegaConf.load(conf_dir() / "backbone" / f"{option}.yaml")
    if "key" not in node or OmegaConf.is_interpolation(node, "key") or OmegaConf.is_missing(node, "key"):
        return None
    return str(node.key)


def searchpath_dirs(overrides: Sequence[str]) -> List[Path]:
    """The ``file://`` folders of a ``hydra.searchpath=[...]`` override (where out-of-tree YAMLs live)."""
    out = []
    for o in overrides:
        key, _, value = str(o).partition("=")
        if key.lstrip("+") == "hydra.searchpath":
            for item in value.strip().strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    out.append(Path(item[len("file://"):]))
    return out


def method_yamls(overrides: Sequence[str] = ()) -> Dict[str, Path]:
    """Method option → its YAML: conf/method/ and the ``method/`` folder of each search-path entry."""
    found: Dict[str, Path] = {}
    for folder in [conf_dir()] + searchpath_dirs(overrides):
        for p in sorted((folder / "method").glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


_REGISTERED: Dict[str, str] = {}


def register_methods(overrides: Sequence[str] = ()) -> None:
    """Store in Hydra's ConfigStore, for each method YAML (conf/method/ and ``hydra.searchpath`` folders in
    ``overrides``) whose ``_target_`` imports:

    - ``params/<method>``: ``name`` (the option: the YAML's file name) and every key of the class's ``PARAMS``
      with its ``Param.default`` (or null), composed before the YAML (conf/config.yaml), so
      ``method.KEY=VALUE`` works for every key, a typo'd key fails, and the YAML sets values without
      re-declaring the set;
    - ``hparams/<method>/<backbone option>_<family>``: the class's ``paper_defaults`` table for that backbone
      key × family (grounding/methods/hparams.py), so the composed config holds the real numbers. Options
      whose key depends on other values (``key: ${backbone:key}``) get no entry; the method fills unset
      values from the loaded backbone's key (:meth:`grounding.methods.base.Method.default_params`).

    Imports the method classes (torch); a ``_target_`` that does not import is left for the preflight to
    report in one line."""
    from hydra.utils import get_class

    keys = None  # backbone option → its hyperparameter key, read once when a table needs it
    for method, path in method_yamls(overrides).items():
        node = OmegaConf.load(path)
        target = node.get("_target_")
        if target is None or _REGISTERED.get(method) == str(target):
            continue
        try:
            cls = get_class(str(target))
        except Exception:
            cls = None  # refused in one line by the preflight; the name still comes from the file
        if keys is None and getattr(cls, "paper_defaults", None):
            keys = {b: backbone_option_key(b) for b in options("backbone")}
        _store_method(method, cls, set(node), keys or {})
        _REGISTERED[method] = str(target)


def _store_method(method: str, cls, yaml_keys, keys: Dict[str, Optional[str]]) -> None:
    """The entries of one method class (``name``: the option, i.e. the YAML's file name; ``keys``: backbone
    option → hyperparameter key); a value its YAML sets is the YAML's (never replaced by the table)."""
    from hydra.core.config_store import ConfigStore

    from .methods.base import static_defaults

    cs = ConfigStore.instance()
    specs = getattr(cls, "PARAMS", None)
    specs = specs if isinstance(specs, dict) else {}
    cs.store(group="params", name=method, package="method",
             node={"name": method, **dict.fromkeys(specs), **static_defaults(specs)})
    table = getattr(cls, "paper_defaults", None)
    if not table:
        return
    for backbone, key in keys.items():
        for family in options("family") if key is not None else ():
            try:
                values = hparams.paper_hparams(key, table, family, method=method)
            except ValueError:
                continue  # e.g. denseclip on a ViT: no entry, so composing says nothing is filled
            values = {k: v for k, v in values.items() if k not in yaml_keys}
            cs.store(group=f"hparams/{method}", name=f"{backbone}_{family}", node=values, package="method")


# ------------------------------------------------------------------------------ run specification
def _plain(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def run_spec(cfg: DictConfig) -> Dict[str, Any]:
    """Everything in the config that can change a prediction, resolved: the method and its
    hyperparameters, the backbone, the split and its loader (files, columns, image template), the data
    root, ``limit``, ``shard``, precision and device type. Not workers, cache, progress or on_error."""
    method = {k: v for k, v in _plain(cfg.method).items() if v is not None}
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


def _config_groups() -> str:
    """``--help``'s list of the groups a user chooses from (not the internal ``params``/``hparams`` entries)."""
    return "\n".join(f"{g}: {', '.join(options(g))}"
                     for g in ("split", "backbone", "method", "proposals", "family", "experiment"))


if not OmegaConf.has_resolver("config_groups"):
    OmegaConf.register_new_resolver("config_groups", _config_groups)
if not OmegaConf.has_resolver("run_dir_name"):
    OmegaConf.register_new_resolver("run_dir_name", _resolve_run_dir_name)
# ${backbone:key} / ${backbone:kind} in conf/backbone/*.yaml: derived by the node's library (torch-free)
if not OmegaConf.has_resolver("backbone"):
    OmegaConf.register_new_resolver("backbone", _backbone_fact)
