"""The split registry: one YAML per split in conf/split/ says everything about it — its loader
(``_target_`` and files), family, IoU threshold and comparison, and its place in the tables. Nothing
else in the code lists split names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from .datasets import DatasetError, GroundingSplit

FAMILY_OVERRIDE = "override /family@_global_.family"


@dataclass(frozen=True)
class SplitInfo:
    name: str
    family: str
    iou_threshold: float
    iou_compare: str
    table: Optional[str]  # which results table shows it as a column (zsg, refcoco, …), or None
    order: Optional[int]


def _conf_dir():
    from ..paths import conf_dir

    return conf_dir()


def split_names() -> List[str]:
    return sorted(p.stem for p in (_conf_dir() / "split").glob("*.yaml"))


def split_info(name: str) -> SplitInfo:
    path = _conf_dir() / "split" / f"{name}.yaml"
    if not path.is_file():
        raise DatasetError(f"unknown split {name!r}; known: {', '.join(split_names())}")
    y = OmegaConf.load(path)
    family = "flickr"
    for d in y.get("defaults") or []:
        if isinstance(d, DictConfig) and FAMILY_OVERRIDE in d:
            family = d[FAMILY_OVERRIDE]
    return SplitInfo(name=str(y.name), family=family, iou_threshold=float(y.iou_threshold),
                     iou_compare=str(y.get("iou_compare", ">")), table=y.get("table"), order=y.get("order"))


def table_splits(table: str) -> List[str]:
    """The splits shown as columns of ``table`` (e.g. ``zsg``: Tables 1–3), in their order."""
    infos = [split_info(n) for n in split_names()]
    return [i.name for i in sorted((i for i in infos if i.table == table), key=lambda i: (i.order or 0, i.name))]


def all_infos() -> Dict[str, SplitInfo]:
    return {n: split_info(n) for n in split_names()}


def load_split(split_cfg: DictConfig, data_root, *, family: str, on_error: str = "raise",
               limit: Optional[int] = None) -> GroundingSplit:
    """Build a split's rows with its loader (``split.loader._target_``); the loader's own error (naming
    the file and row) is raised as is, not wrapped by Hydra."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(split_cfg.loader, data_root=str(data_root), name=str(split_cfg.name), family=family,
                           on_error=on_error, limit=limit, _convert_="all")
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, (DatasetError, OSError, ValueError)):
            raise cause from None
        raise


def load_split_by_name(name: str, data_root="data", *, on_error: str = "raise", limit: Optional[int] = None,
                       **loader_overrides) -> GroundingSplit:
    """``load_split`` for a registered split name, with optional loader overrides (e.g. ``image_template``)."""
    info = split_info(name)
    y = OmegaConf.load(_conf_dir() / "split" / f"{name}.yaml")
    if "defaults" in y:
        del y["defaults"]
    for k, v in loader_overrides.items():
        y.loader[k] = str(v) if isinstance(v, os.PathLike) else v
    return load_split(y, data_root, family=info.family, on_error=on_error, limit=limit)
