"""The ``hf`` backbone library: a local Hugging Face transformers folder (``CLIPModel`` or ``SiglipModel``).

    backbone=hf backbone.path=DIR                        # the app (conf/backbone/hf.yaml; presets hf_vit_b16, …)
    grounding.localize(img, "a dog", backbone="hf:DIR")  # the API, Localizer, grounding-localize

The five functions of :mod:`grounding.models.library`, found by the registry's convention
(``grounding.models.<NAME>_backbone``): nothing in ``api``, ``cli``, ``config``, ``evaluate``, ``runner`` or
``tables`` names this library. ``parse``/``describe``/``preflight``/``label`` are torch-free (the folder checks
are :mod:`grounding.models.hf_folder`); ``load`` imports torch and transformers (:mod:`grounding.models.hf_model`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping

from .hf_folder import HF_PREFIX, check_hf_config, hf_key
from .names import BackboneConfigError, BackboneError

NAME = "hf"


def _path(cfg: Mapping) -> str:
    from omegaconf import DictConfig, OmegaConf

    missing = isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, "path")
    path = None if missing else cfg.get("path")
    if not path or str(path) == "???":
        raise BackboneError("backbone=hf needs backbone.path=DIR: a local transformers CLIPModel/SiglipModel "
                                  "folder (e.g. huggingface-cli download openai/clip-vit-base-patch16 --local-dir "
                                  "DIR, elsewhere)")
    return str(path)


def parse(spec: str, **options: Any) -> Dict[str, Any]:
    """``"hf:DIR"`` → ``{"library": "hf", "path": DIR, …}``; no keyword option applies (the folder holds all)."""
    if options:
        raise BackboneConfigError(f"{', '.join(options)}: not an option of hf backbones (backbone=\"hf:DIR\", the "
                                  f"folder holds the weights, tokenizer and preprocessor config)")
    return {"library": NAME, "path": str(spec), "model_type": None, "name": f"{HF_PREFIX}{spec}"}


def describe(cfg: Mapping) -> Dict[str, str]:
    """The key from the folder's ``config.json`` vision geometry (vit_b16, vit_l14, …); transformers has no
    ResNet CLIP, so the kind is always ``vit``."""
    return {"key": hf_key(_path(cfg)), "kind": "vit"}


def preflight(cfg: Mapping, files: bool = True) -> None:
    """``path`` given; with ``files``, the folder holds a CLIP/SigLIP model (of the preset's ``model_type``)."""
    _path(cfg)
    check_hf_config(cfg, files=files)


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    from .hf_model import load_hf  # torch and transformers: only here

    return load_hf(_path(cfg), device=device, precision=precision)


def label(cfg: Mapping) -> str:
    """``hf:FOLDER_NAME``: HF weights never share a table cell with another library's."""
    return f"{HF_PREFIX}{Path(str(cfg.get('path') or '')).expanduser().name or '?'}"


__all__ = ["describe", "label", "load", "parse", "preflight"]
