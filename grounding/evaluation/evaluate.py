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
from ..methods.base import ConfigError

log = logging.getLogger("grounding.eval")
NON_PARAMS = ("_target_", "name", "paper_defaults")


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
    if cfg.get("on_error") not in ("raise", "skip"):
        raise ConfigError(f"on_error={cfg.get('on_error')!r}: expected raise or skip")
    if cfg.get("shard"):
        from .runner import parse_shard

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
    if str(cfg.get("precision", "auto")).lower() not in ("auto", "fp32", "float32", "fp16", "float16", "bf16",
                                                         "bfloat16"):
        raise ConfigError(f"precision={cfg.precision!r}: expected auto, fp32, fp16 or bf16")
    check_backbone_config(cfg, files=files)
    validate_method_config(cfg)
    if not files:
        return
    if "data_root" in cfg and not Path(str(cfg.data_root)).is_dir() and cfg.split.name != "demo":
        raise ConfigError(f"data_root={cfg.data_root} is not a folder; point it at the folder holding "
                          f"ds_csv_ann/ (see README's data layout)")
    check_device(cfg)


def check_device(cfg: DictConfig) -> None:
    if str(cfg.get("device", "cpu")).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device={cfg.device} but torch sees no GPU (torch.cuda.is_available() is False); "
                              f"use device=cpu")


def validate_method_config(cfg: DictConfig) -> None:
    from hydra.utils import get_object

    target = cfg.method.get("_target_")
    if not target:
        raise ConfigError(f"method {cfg.method.get('name')!r} has no _target_ in its YAML")
    try:
        cls = get_object(target)
    except Exception as e:
        raise ConfigError(f"method._target_={target!r} cannot be imported: {e}") from None
    if hasattr(cls, "validate"):
        cls.validate(method_params(cfg), cfg.backbone.get("kind"))


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
    params = json_safe(getattr(method, "params", {}))
    try:
        paper = json_safe(type(method).default_params(backbone, cfg.family.name))
    except Exception:  # a method without per-backbone defaults
        paper = {}
    spec.update({
        "method_params": params,
        # what differs from the paper's values for this backbone × family (tables pick runs with none)
        "overrides": {k: v for k, v in params.items() if k in paper and paper[k] != v},
        "tuned": bool(getattr(method, "tuned", True)),
        "backbone_file": json_safe(backbone.identity()) if backbone is not None else None,
        "annotations": {os.path.abspath(f): file_sha256(f) for f in split.source_files},
        "split_rows": len(split),
        "feature_version": FEATURE_VERSION,
    })
    return spec


def json_safe(x):
    import json

    return json.loads(json.dumps(x, default=str))


def check_backbone_config(cfg: DictConfig, files: bool = True) -> None:
    """Cheap backbone checks with one-line messages (no torch): the library; for open_clip the arch (known,
    servable); with ``files``, the weights file (OpenAI: resolved in the clip cache; open_clip: given, existing)."""
    from ..models.names import BackboneError, open_clip_key

    b = cfg.backbone
    lib = b.get("library", "openai")
    if lib == "registered":  # built in code (the toy): no file
        return
    if lib == "openai":
        if files:  # the weights file, before torch is imported
            from ..models.names import resolve_checkpoint

            resolve_checkpoint(b.name, b.get("cache_dir"))
        return
    if lib == "hf":  # a transformers folder (grounding.models.hf_backbone), checked before the model loads
        from ..models.hf_folder import check_hf_config

        return check_hf_config(b, files)
    if lib != "open_clip":
        raise ConfigError(f"backbone.library={lib!r}: expected openai, open_clip, hf or registered")
    if OmegaConf.is_missing(b, "arch") or not b.get("arch"):
        raise ConfigError("backbone=open_clip needs backbone.arch=NAME or a model-config JSON path "
                          "(e.g. backbone.arch=ViT-H-14) and backbone.pretrained=FILE")
    try:
        open_clip_key(str(b.arch))
    except BackboneError as e:
        raise ConfigError(f"backbone.arch={b.arch}: {e}") from None
    if not files:
        return
    pretrained = b.get("pretrained")
    if not pretrained:
        raise ConfigError(f"backbone.pretrained=FILE is required for open_clip arch {b.arch} (weights are never "
                          f"downloaded): e.g. open_clip_pytorch_model.bin from the model's Hugging Face hub repository")
    if not Path(str(pretrained)).expanduser().is_file():
        raise BackboneError(f"backbone.pretrained: open_clip weights not found at {Path(str(pretrained)).expanduser()}")


def load_backbone_for(cfg: DictConfig):
    """The backbone adapter of ``cfg.backbone`` (dispatched on ``backbone.library``: ``openai`` loads
    ``backbone.name``, ``open_clip`` loads ``backbone.arch`` with ``backbone.pretrained``); refuses a model of
    another kind or family than the chosen preset (whose paper hyperparameters the config holds)."""
    from ..models.backbones import load_backbone

    check_backbone_config(cfg)
    lib = cfg.backbone.get("library", "openai")
    if lib == "open_clip":
        what = f"backbone.arch={cfg.backbone.arch}"
        bb = load_backbone(f"open_clip:{cfg.backbone.arch}", pretrained=cfg.backbone.pretrained, device=cfg.device,
                           precision=cfg.precision)
        same = "backbone=open_clip with the same backbone.arch (key and kind follow from it)"
    elif lib == "hf":
        what, same = f"backbone.path={cfg.backbone.path}", "backbone=hf with the same backbone.path"
        bb = load_backbone(f"hf:{cfg.backbone.path}", device=cfg.device, precision=cfg.precision)
    else:
        what = f"backbone.name={cfg.backbone.name}"
        bb = load_backbone(cfg.backbone.name, device=cfg.device, precision=cfg.precision,
                           cache_dir=cfg.backbone.get("cache_dir"))
        same = None
    want_kind, want_key = cfg.backbone.get("kind"), cfg.backbone.get("key")
    if want_kind and bb.kind != want_kind:
        raise ConfigError(f"{what} is a {bb.kind} model but backbone.kind={want_kind}; "
                          f"choose the matching backbone=PRESET")
    if want_key and bb.key != want_key:
        raise ConfigError(f"{what} is a {bb.key} model but the chosen preset is {want_key} (whose paper "
                          f"hyperparameters would be used); choose {same or f'backbone={bb.key} with the same backbone.name'}, "
                          f"or set backbone.key={bb.key} and every method hyperparameter yourself")
    return bb


def build_method(cfg: DictConfig, backbone):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ..stages.cache import FeatureCache

    cache = FeatureCache(cfg.cache.dir, cfg.cache.max_size) if cfg.get("cache") and cfg.cache.enabled else None
    extra = {"variant": cfg.variant} if cfg.get("variant") is not None and "variant" in cfg.method else {}
    try:
        return instantiate(cfg.method, backbone=backbone, device=cfg.device, precision=cfg.precision,
                           family=cfg.family.name, cache=cache, _convert_="all", **extra)
    except InstantiationException as e:
        if isinstance(e.__cause__, (ValueError, TypeError, RuntimeError)):
            raise e.__cause__ from None
        raise


def evaluate(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    from ..data.splits import load_split
    from .evaluator import GroundingEvaluator
    from .runner import RunLock, run_split, select_shard

    preflight(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):  # before anything slow: a second process on this directory fails at once
        split = load_split(cfg.split, cfg.data_root, family=cfg.family.name, on_error=cfg.on_error, limit=cfg.limit)
        samples = select_shard(list(split), cfg.shard)
        backbone = load_backbone_for(cfg)
        method = build_method(cfg, backbone)
        identity = build_identity(cfg, split, method, backbone)
        log.info("split %s: %d rows (%s); method %s; backbone %s; params %s", cfg.split.name, len(samples),
                 split.csv_path, cfg.method.name, cfg.backbone.name, identity["method_params"])
        evaluator = GroundingEvaluator(cfg.split.iou_threshold, cfg.split.get("iou_compare", ">"))
        metrics = run_split(method, samples, run_dir, identity=identity, evaluator=evaluator, on_error=cfg.on_error,
                            viz=cfg.viz, workers=int(cfg.get("workers", 0) or 0),
                            progress=bool(cfg.get("progress", True)), data_root=str(cfg.data_root), locked=True,
                            save_maps=bool(cfg.get("save_maps", True)), batch_images=batch_images(cfg))
    metrics["run_dir"] = str(run_dir)
    print(f"[{cfg.split.name} | {cfg.method.name} | {cfg.backbone.name}] Acc@{metrics['iou_threshold']} = "
          f"{100 * metrics['accuracy']:.2f}% (n={metrics['n']}, skipped={metrics.get('n_skipped', 0)}) -> {run_dir}")
    return metrics
