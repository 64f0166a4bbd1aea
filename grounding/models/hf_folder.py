"""Hugging Face transformers folders, torch-free: what a ``backbone=hf`` folder must hold, its hyperparameter key.

The checks :mod:`grounding.models.hf_backbone` runs before loading, importable by the config and the preflight
before torch is (``conf/backbone/hf.yaml`` resolves ``key`` through :func:`hf_key`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Union

from .names import BackboneError, vit_key

HF_PREFIX = "hf:"
MODEL_TYPES = {"clip": "CLIPModel", "siglip": "SiglipModel"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("spiece.model",), ("tokenizer.model",))
_EXPECTED = ("a local transformers CLIPModel/SiglipModel folder (config.json, model.safetensors, tokenizer files, "
             "preprocessor_config.json as save_pretrained writes them)")


def _read_json(path: Path) -> Dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BackboneError(f"{path}: not readable JSON ({type(e).__name__}); expected {_EXPECTED}") from None


def _check_model_type(folder: Path, cfg: Dict) -> str:
    mt = cfg.get("model_type")
    if mt in MODEL_TYPES:
        return mt
    if mt in ("clip_vision_model", "clip_text_model", "siglip_vision_model", "siglip_text_model"):
        why = f"a single tower ({mt}); the methods need both towers (a full CLIPModel / SiglipModel)"
    elif mt == "siglip2":
        why = ("a Siglip2Model (NaFlex, variable resolution), which is not supported; SigLIP 2 weights saved as a "
               "SiglipModel (model_type siglip) are")
    else:
        why = (f"model_type {mt!r}, not clip or siglip (ResNet CLIPs do not exist in transformers: use "
               f"backbone=rn50 with OpenAI's file, or backbone=open_clip)")
    raise BackboneError(f"{folder}: {why}; expected {_EXPECTED}")


def check_hf_folder(path: Union[str, os.PathLike]) -> Dict:
    """Torch-free checks of a model folder; returns its ``config.json``. One :class:`BackboneError` line naming
    the path and what was expected: a hub id, a missing folder or file, a model that is not CLIP/SigLIP."""
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        s = str(path)
        hub = s.count("/") == 1 and not s.startswith((".", "/", "~")) and not folder.exists()
        hint = (f" — {s!r} looks like a Hugging Face hub id; this harness never downloads: run `huggingface-cli "
                f"download {s} --local-dir DIR` elsewhere and give DIR") if hub else ""
        raise BackboneError(f"{folder}: no such folder; expected {_EXPECTED}{hint}")
    if not (folder / "config.json").is_file():
        raise BackboneError(f"{folder / 'config.json'} not found; expected {_EXPECTED}")
    cfg = _read_json(folder / "config.json")
    _check_model_type(folder, cfg)
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise BackboneError(f"{folder}: no weights file ({', '.join(WEIGHT_FILES)}); expected {_EXPECTED}")
    if not (folder / "preprocessor_config.json").is_file():
        raise BackboneError(f"{folder / 'preprocessor_config.json'} not found (input size, mean/std); "
                            f"expected {_EXPECTED}")
    if not any(all((folder / f).is_file() for f in group) for group in TOKENIZER_FILES):
        raise BackboneError(f"{folder}: no tokenizer files (tokenizer.json, vocab.json + merges.txt or "
                            f"spiece.model); expected {_EXPECTED}")
    return cfg


def check_hf_config(backbone_cfg, files: bool = True) -> None:
    """Preflight of ``backbone=hf`` / ``backbone=hf_*`` (a mapping with ``path`` and, in presets, ``model_type``):
    with ``files``, the folder checked as :func:`check_hf_folder` and its model type the preset's."""
    path = backbone_cfg.get("path") if not _is_missing(backbone_cfg, "path") else None
    if not path:
        raise BackboneError("backbone=hf needs backbone.path=DIR: a local transformers CLIPModel/SiglipModel folder "
                            "(e.g. huggingface-cli download openai/clip-vit-base-patch16 --local-dir DIR, elsewhere)")
    if not files:
        return
    mt = check_hf_folder(path)["model_type"]
    want = backbone_cfg.get("model_type")
    if want and want != mt:
        raise BackboneError(f"backbone.path={path} holds a {MODEL_TYPES[mt]} but the preset is for a "
                            f"{MODEL_TYPES.get(want, want)}; choose the matching backbone=hf_* preset or backbone=hf")


def _is_missing(node, key: str) -> bool:
    from omegaconf import DictConfig, OmegaConf

    return isinstance(node, DictConfig) and OmegaConf.is_missing(node, key)


def preprocess_config(folder: Path, cfg: Dict) -> Dict:
    """``{"size", "mean", "std"}`` from ``preprocessor_config.json``; the size must be the tower's."""
    pre = _read_json(folder / "preprocessor_config.json")
    crop, size = pre.get("crop_size"), pre.get("size")
    s = crop if pre.get("do_center_crop", crop is not None) and crop else size
    s = s.get("height", s.get("shortest_edge")) if isinstance(s, dict) else s
    tower = int(cfg.get("vision_config", {}).get("image_size", 224))
    if s is None or int(s) != tower:
        raise BackboneError(f"{folder / 'preprocessor_config.json'}: input size {s} is not the tower's image_size "
                            f"{tower} (config.json); expected the processor saved with the model")
    mean, std = pre.get("image_mean"), pre.get("image_std")
    if not (isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3):
        raise BackboneError(f"{folder / 'preprocessor_config.json'}: image_mean/image_std must be 3 numbers each")
    return {"size": tower, "mean": tuple(float(v) for v in mean), "std": tuple(float(v) for v in std)}


def hf_key(path: Union[str, os.PathLike]) -> str:
    """The hyperparameter key of a folder from its vision geometry (``vit_b16``, ``vit_l14``, ``vit_l14_336``,
    …), the same function :func:`grounding.models.backbones.backbone_key` applies to the loaded tower."""
    v = check_hf_folder(path).get("vision_config", {})
    return vit_key(int(v.get("hidden_size", 768)), int(v.get("patch_size", 32)), int(v.get("image_size", 224)))


__all__ = ["HF_PREFIX", "MODEL_TYPES", "TOKENIZER_FILES", "WEIGHT_FILES", "check_hf_config", "check_hf_folder", "hf_key",
           "preprocess_config"]
