"""One evaluation from a composed config: validate it (before any model loads), load the split, build
the backbone and the method, derive the run's identity, run, return metrics.

The identity (run.json) is the run specification (:func:`grounding.config.run_spec`, the same node the
run directory's name derives from) plus what can only be known by reading files: the resolved method
hyperparameters, the backbone file, the annotation files' content hashes and the split's row count.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf

from ..config import batch_images, run_spec
from ..methods.base import ConfigError, check_method, hook
from ..errors import check_on_error
from ..models.placement import check_device, check_precision
from .runner import RunDirectory, evaluate_in, parse_shard, select_shard
from ..data.completeness import completeness, summary_suffix

log = logging.getLogger("grounding.eval")
NON_PARAMS = ("_target_", "name")


def method_params(cfg: DictConfig) -> Dict[str, Any]:
    d = OmegaConf.to_container(cfg.method, resolve=True)
    if cfg.get("variant") is not None and "variant" in d:
        d["variant"] = cfg.variant
    return {k: v for k, v in d.items() if k not in NON_PARAMS}


def preflight(cfg: DictConfig, files: bool = True) -> None:
    """Cheap checks with one-line messages, before torch is imported or a model loads: values of the
    run options, the split's comparison, every method hyperparameter (types, ranges, unknown keys); with
    ``files``, also the data root, the weights file and the GPU."""
    limit = cfg.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r}: expected an integer >= 1 (or leave it unset for the whole split)")
    check_on_error(cfg.get("on_error"))
    if cfg.get("shard"):
        try:
            parse_shard(cfg.shard)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    thr = cfg.split.get("iou_threshold")
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not (0 < thr < 1) or not math.isfinite(thr):
        raise ConfigError(f"split.iou_threshold={thr!r}: expected a number in (0, 1)")
    if cfg.split.get("iou_compare", ">") not in (">", ">="):
        raise ConfigError(f"split.iou_compare={cfg.split.get('iou_compare')!r}: expected '>' or '>='")
    nb = cfg.get("batch_images")
    if nb is not None and (isinstance(nb, bool) or not isinstance(nb, int) or nb < 1):
        raise ConfigError(f"batch_images={nb!r}: expected an integer >= 1 (or null: 4 on CUDA, 1 on CPU)")
    workers = cfg.get("workers", 0) or 0
    if not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers={workers!r}: expected an integer >= 0")
    check_precision(cfg.get("precision", "auto"), cfg.get("device", "cpu"))
    check_backbone_config(cfg, files=files)
    validate_method_config(cfg)
    from .proposal_runs import check_proposals

    check_proposals(cfg)
    if not files:
        return
    if "data_root" in cfg and not Path(str(cfg.data_root)).is_dir() and cfg.split.name != "demo":
        raise ConfigError(f"data_root={cfg.data_root} is not a folder; point it at the folder holding "
                          f"ds_csv_ann/ (see README's data layout)")
    check_device(cfg.get("device", "cpu"))


def validate_method_config(cfg: DictConfig) -> None:
    from hydra.utils import get_object

    target = cfg.method.get("_target_")
    if not target:
        raise ConfigError(f"method {cfg.method.get('name')!r} has no _target_ in its YAML")
    try:
        cls = get_object(target)
    except Exception as e:
        raise ConfigError(f"method._target_={target!r} cannot be imported: {e}") from None
    own = getattr(cls, "name", None)  # the registered name is the method's name: the YAML must agree
    if isinstance(own, str) and own and own != cfg.method.get("name"):
        raise ConfigError(f"method={cfg.method.get('name')} (its YAML's file name) but {target} is registered as "
                          f"{own!r}; rename the YAML to method/{own}.yaml")
    validate = hook(cls, "validate")
    if validate is not None:
        validate(method_params(cfg), cfg.backbone.get("kind"))


def file_sha256(path) -> str:
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():  # a folder of annotation files (e.g. Flickr30k Entities' Sentences/)
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(f.relative_to(p).as_posix().encode())
                h.update(f.read_bytes())
        return h.hexdigest()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_identity(cfg: DictConfig, split, method, backbone) -> Dict[str, Any]:
    from ..methods.dense import FEATURE_VERSION

    spec = run_spec(cfg)
    params = json_safe(method.params)
    spec.update({
        "method_params": params,
        # what differs from the paper's values for this backbone × family (tables pick runs with none)
        "overrides": run_overrides(cfg, method, backbone, params),
        "tuned": bool(hook(method, "tuned")),
        "backbone_file": json_safe(backbone.identity()) if backbone is not None else None,
        "annotations": {os.path.abspath(f): file_sha256(f) for f in split.source_files},
        "split_rows": len(split),
        "feature_version": FEATURE_VERSION,
    })
    return spec


def run_overrides(cfg: DictConfig, method, backbone, params: Dict[str, Any]) -> Dict[str, Any]:
    """The hyperparameters this run sets to something else than the method's defaults (``default_params``
    for the backbone × family; a declared key without a default — resolved at run time, e.g. crop_rank's
    ``num_proposals`` — counts once it is given), with their resolved values. Methods that declare neither
    ``PARAMS`` nor defaults have none: their YAML is their only setting."""
    defaults = hook(type(method), "default_params")
    try:
        paper = json_safe(defaults(backbone, cfg.family.name)) if defaults is not None else {}
    except Exception:  # a method without defaults for this backbone
        paper = {}
    declared = set(hook(type(method), "PARAMS") or {}) | set(paper)
    given = json_safe({k: v for k, v in method_params(cfg).items() if v is not None})
    return {k: params.get(k, v) for k, v in given.items() if k in declared and paper.get(k) != v}


def json_safe(x):
    import json

    return json.loads(json.dumps(x, default=str))


def check_backbone_config(cfg: DictConfig, files: bool = True) -> None:
    """Cheap backbone checks with one-line messages (no torch), by the node's library (its ``preflight``);
    with ``files``, the weights file."""
    from ..models import registry
    from ..models.names import BackboneConfigError

    try:
        registry.preflight(OmegaConf.to_container(cfg.backbone, resolve=False), files=files)
    except BackboneConfigError as e:
        raise ConfigError(str(e)) from None


def load_backbone_for(cfg: DictConfig):
    """The backbone adapter of ``cfg.backbone`` (loaded by the node's library); refuses a model of another
    kind or family than the chosen preset (whose paper hyperparameters the config holds)."""
    from ..models import registry

    check_backbone_config(cfg)
    node = OmegaConf.to_container(cfg.backbone, resolve=True)
    bb = registry.load(node, device=cfg.device, precision=cfg.precision)
    what = f"backbone {registry.label(node) or node.get('name')}"
    want_kind, want_key = cfg.backbone.get("kind"), cfg.backbone.get("key")
    if want_kind and bb.kind != want_kind:
        raise ConfigError(f"{what} is a {bb.kind} model but backbone.kind={want_kind}; "
                          f"choose the matching backbone=PRESET")
    if want_key and bb.key != want_key:
        raise ConfigError(f"{what} is a {bb.key} model but the chosen preset is {want_key} (whose paper "
                          f"hyperparameters would be used); choose the preset of {bb.key} with the same weights, "
                          f"or set backbone.key={bb.key} and every method hyperparameter yourself")
    return bb


def build_method(cfg: DictConfig, backbone):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ..stages.cache import FeatureCache

    cache = FeatureCache(cfg.cache.dir, cfg.cache.max_size) if cfg.get("cache") and cfg.cache.enabled else None
    extra = {"variant": cfg.variant} if cfg.get("variant") is not None and "variant" in cfg.method else {}
    try:
        method = instantiate(cfg.method, backbone=backbone, device=cfg.device, precision=cfg.precision,
                             family=cfg.family.name, cache=cache, _convert_="all", **extra)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, TypeError, RuntimeError)):
            raise e.__cause__ from None
        raise
    return check_method(method, cfg.method.get("name"))


def evaluate_config(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    """Evaluate the composed config ``cfg`` into ``run_dir``: preflight, then (holding the directory's lock)
    load the split, the backbone and the method, derive the identity, run. Returns the metrics. An error
    before the first row leaves no new directory behind."""
    from ..data.splits import load_split
    from .evaluator import GroundingEvaluator
    from .proposal_runs import bind_source, with_proposals

    preflight(cfg)
    run = RunDirectory(run_dir, on_error=cfg.on_error, viz=cfg.viz, save_maps=bool(cfg.get("save_maps", True)),
                       progress=bool(cfg.get("progress", True)))
    new = not run.path.exists()
    try:
        with run.lock():  # before anything slow: a second process on this directory fails at once
            split = load_split(cfg.split, cfg.data_root, family=cfg.family.name, on_error=cfg.on_error,
                               limit=cfg.limit)
            samples = select_shard(list(split), cfg.shard)
            source = bind_source(cfg, split, cfg.on_error)  # a bad detections file stops here, before a model
            backbone = load_backbone_for(cfg)
            method = build_method(cfg, backbone)
            if hook(method, "set_split_phrases") is not None:  # e.g. a caption bank drawn with a seed
                method.set_split_phrases([s.phrase for s in split])
            identity = build_identity(cfg, split, method, backbone)
            identity.update(completeness(cfg.split, len(split), cfg.limit, cfg.shard))
            method = with_proposals(method, source)
            if source is not None:  # the detections file's / detector weights' content hashes
                identity["proposals_files"] = json_safe(source.identity())
            log.info("split %s: %d rows (%s); method %s; backbone %s; params %s", cfg.split.name, len(samples),
                     split.csv_path, cfg.method.name, cfg.backbone.name, identity["method_params"])
            evaluator = GroundingEvaluator(cfg.split.iou_threshold, cfg.split.get("iou_compare", ">"))
            metrics = evaluate_in(run, method, samples, identity, evaluator, int(cfg.get("workers", 0) or 0),
                                  str(cfg.data_root), batch_images(cfg))
    except BaseException:
        if new:
            run.discard_if_unused()
        raise
    metrics["run_dir"] = str(run.path)
    print(f"[{cfg.split.name} | {cfg.method.name} | {cfg.backbone.name}] Acc@{metrics['iou_threshold']} = "
          f"{100 * metrics['accuracy']:.2f}% (n={metrics['n']}, skipped={metrics.get('n_skipped', 0)}{summary_suffix(metrics, run.path)}) -> {run.path}")
    return metrics
