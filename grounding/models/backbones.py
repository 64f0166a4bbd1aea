"""Stage 1 — backbones: load any backbone library's model by an API string, behind one adapter.

    load_backbone("ViT-B/16")                                   # OpenAI weights from ~/.cache/clip (never downloaded)
    load_backbone("/path/to/checkpoint.pt")                     # an OpenAI-format checkpoint file
    load_backbone("open_clip:ViT-H-14", pretrained="/models/open_clip_pytorch_model.bin")
    load_backbone("toy")                                        # a library's (or register_backbone's) bare name

The string is dispatched by :mod:`grounding.models.registry` to one library module (contract:
:mod:`grounding.models.library`); this module names none. The OpenAI cache folder can be changed by argument
(``cache_dir``), by ``$GROUNDING_CLIP_CACHE`` or by Hydra config (``backbone.cache_dir``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from . import registry
from .adapter import Backbone, geometry_key, resolve_precision, state_dict_digest
from .checkpoint import cast_to_precision, model_from_state_dict, read_state_dict
from .names import OPENAI_FILES, BackboneError, canonical_name, default_cache_dir  # noqa: F401
from .names import resolve_checkpoint as _resolve_checkpoint
from .registered import register_backbone, registered_backbones

OPENAI_MODELS = OPENAI_FILES


def available_backbones():
    return list(OPENAI_MODELS) + registered_backbones()


def resolve_checkpoint(name: str, cache_dir=None) -> Path:
    """Map an OpenAI model name or path to an existing checkpoint file, or raise :class:`BackboneError`."""
    return _resolve_checkpoint(name, cache_dir, registered=registered_backbones())


def load_backbone(name: Union[str, os.PathLike], *, device="cpu", precision: str = "auto",
                  cache_dir=None, pretrained: Optional[Union[str, os.PathLike]] = None):
    """Load a backbone by API string (see the module docstring): ``"LIBRARY:SPEC"``, a bare name a library
    claimed, a checkpoint path or an OpenAI name / config key (``ViT-B/16`` = ``vit_b16``). ``pretrained`` and
    ``cache_dir`` go to the library that takes them (refused in one line by the others)."""
    cfg = registry.config_from_spec(name, pretrained=pretrained, cache_dir=cache_dir)
    return registry.load(cfg, device=device, precision=precision)


def backbone_key(backbone) -> str:
    """The paper-hyperparameter key of a loaded backbone (vit_l14, vit_b16, rn50, vit_h14, toy, …)."""
    return backbone.key


__all__ = [
    "Backbone", "BackboneError", "OPENAI_MODELS", "available_backbones", "backbone_key", "cast_to_precision",
    "default_cache_dir", "geometry_key", "load_backbone", "model_from_state_dict", "read_state_dict",
    "register_backbone", "resolve_checkpoint", "resolve_precision", "state_dict_digest",
]
