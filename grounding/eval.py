"""Evaluate a method on a zero-shot grounding split (Hydra app).

    python -m grounding.eval split=flickr_s1 backbone=vit_b32 method=ours data_root=DIR limit=N
    python -m grounding.eval -m split=flickr_s1_val method.alpha=0.6,0.7,0.8 method.temperature=0.01,0.02

The run directory receives predictions.jsonl, metrics.json and run.json (see grounding.evaluation.runner).
With no ``split=`` override: if ``data_root`` holds ZSGNet's Flickr S1 CSV, the paper's protocol
runs on it (ViT-L/14); otherwise the bundled demo split runs with the toy backbone for ``ours``
and ``crop_rank`` and the results table is printed.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Dict

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import conf_dir, method_overrides

log = logging.getLogger("grounding.eval")


def build_method(cfg: DictConfig):
    """The method object for ``cfg.method.name`` (ours / denseclip / crop_rank)."""
    name = cfg.method.name
    common = dict(device=cfg.device, precision=cfg.precision, cache_dir=cfg.backbone.get("cache_dir"))
    if name == "crop_rank":
        from .methods.crop_rank import CropRank

        return CropRank(cfg.backbone.name, variant=cfg.get("variant") or cfg.method.variant, num_proposals=cfg.method.num_proposals,
                        batch_size=cfg.method.batch_size, **common)
    from .stages.cache import FeatureCache
    from .api import Localizer

    cache = FeatureCache(cfg.cache.dir, cfg.cache.max_size) if cfg.get("cache") and cfg.cache.enabled else None
    return Localizer(cfg.backbone.name, name, family=cfg.split.family, cache=cache, **common,
                     **method_overrides(cfg.method))


def resolved_params(method) -> Dict[str, Any]:
    if hasattr(method, "params"):
        return dict(method.params)
    return {k: getattr(method, k) for k in ("variant", "num_proposals") if hasattr(method, k)}


def evaluate(cfg: DictConfig, run_dir: Path) -> Dict[str, Any]:
    from .data.datasets import load_split
    from .models.backbones import backbone_key
    from .evaluation.runner import run_split, select_shard

    split = load_split(cfg.split.name, cfg.data_root, image_template=cfg.image_template,
                       sentences_dir=cfg.sentences_dir, limit=cfg.limit, on_error=cfg.on_error)
    samples = select_shard(list(split), cfg.shard)
    method = build_method(cfg)
    bb = getattr(method, "backbone", None)
    identity = {
        "split": cfg.split.name,
        "backbone_key": cfg.backbone.key if bb is None else backbone_key(bb),
        "overrides": method_overrides(cfg.method),
        "csv": str(Path(split.csv_path).resolve()),
        "method": cfg.method.name,
        "backbone": str(cfg.backbone.name),
        "params": json.loads(json.dumps(resolved_params(method))),
        "image_template": cfg.image_template,
        "iou_threshold": float(cfg.split.iou_threshold),
        "device": str(cfg.device),
        "precision": str(cfg.precision),
        "shard": cfg.shard,
    }
    log.info("split %s: %d rows (%s); method %s; backbone %s; params %s", cfg.split.name, len(samples),
             split.csv_path, cfg.method.name, cfg.backbone.name, identity["params"])
    metrics = run_split(method, samples, run_dir, identity=identity, iou_threshold=float(cfg.split.iou_threshold),
                        on_error=cfg.on_error, viz=cfg.viz, workers=int(cfg.get("workers", 0) or 0))
    metrics["run_dir"] = str(run_dir)
    log.info("Acc@%.1f = %.2f%% on %d rows (%d skipped) -> %s", metrics["iou_threshold"], 100 * metrics["accuracy"],
             metrics["n"], metrics.get("n_skipped", 0), run_dir)
    print(f"[{cfg.split.name} | {cfg.method.name} | {cfg.backbone.name}] Acc@{metrics['iou_threshold']} = "
          f"{100 * metrics['accuracy']:.2f}% (n={metrics['n']}, skipped={metrics.get('n_skipped', 0)}) -> {run_dir}")
    return metrics


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    return evaluate(cfg, run_dir)["accuracy"]


def _has_override(args, key: str) -> bool:
    return any(a.split("=", 1)[0].lstrip("+~") == key for a in args if "=" in a)


_HYDRA_MODE_FLAGS = {"--cfg", "-c", "--info", "-i", "--shell-completion", "-sc", "--help", "-h", "--hydra-help"}


def _add_overrides(args, extra, multirun: bool = False):
    """``args`` with the overrides ``extra`` placed beside the user's own overrides (Hydra's command line
    takes its overrides as one run of positionals, so they must not be split by a flag such as
    ``--cfg job``) and, for a multirun, ``-m`` in front."""
    first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), len(args))
    return (["-m"] if multirun else []) + args[:first] + list(extra) + args[first:]


def default_run_args(args):
    """No ``split=``: the paper's protocol on real data if present, else the bundled demo."""
    if _has_override(args, "split"):
        return args, False
    data_root = next((a.split("=", 1)[1] for a in args if a.startswith("data_root=")), "data")
    if (Path(data_root) / "ds_csv_ann" / "flickr30k_c1" / "csv_dir" / "test.csv").is_file():
        print(f"[grounding] ZSGNet annotations found under {data_root}: running the paper's protocol on flickr_s1")
        return _add_overrides(args, ["split=flickr_s1"]), False
    from .data.demo import ensure_demo_data

    ensure_demo_data(data_root)
    extra = ["split=demo"]
    if not _has_override(args, "backbone"):
        extra.append("backbone=toy")
    # both methods as a multirun, unless a method was chosen or Hydra is asked for something other than a run
    # (--cfg, --info, …, which refuse -m)
    inspect = any(a.split("=", 1)[0] in _HYDRA_MODE_FLAGS for a in args)
    demo_multi = not _has_override(args, "method") and not inspect
    if demo_multi:
        extra = ["method=ours,crop_rank"] + extra
    print(f"[grounding] no ZSGNet annotations under {data_root}/ds_csv_ann: using the bundled demo split"
          + (" (toy CLIP; methods ours and crop_rank)" if demo_multi else ""))
    return _add_overrides(args, extra, multirun=demo_multi), demo_multi


def main() -> None:
    args, demo = default_run_args(sys.argv[1:])
    sys.argv = [sys.argv[0]] + args
    try:
        app()
    finally:
        if demo:
            from .evaluation.tables import print_demo_table

            print_demo_table(Path("multirun") / "demo")


if __name__ == "__main__":
    main()
