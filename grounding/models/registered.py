"""Backbone library ``registered``: CLIP builders registered in code with :func:`register_backbone` (a name →
``fn() -> clip.model.CLIP``, built in fp32, optionally with its own tokenizer); the key is the name."""
from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

from .names import BackboneError
from .registry import claim_name, claimed_names

NAME = "registered"
_BUILDERS: Dict[str, Callable] = {}
_TOKENIZERS: Dict[str, Callable] = {}


def register_backbone(name: str, tokenizer: Optional[Callable] = None):
    """Decorator registering ``fn() -> clip.model.CLIP`` under ``name`` (loaded in fp32), optionally with
    its own ``tokenizer(phrase, allow_empty=False) -> (1, 77) tokens``; ``backbone=name`` then loads it."""

    def deco(fn):
        _BUILDERS[name] = fn
        if tokenizer is not None:
            _TOKENIZERS[name] = tokenizer
        claim_name(name, NAME)
        return fn

    return deco


def registered_backbones():
    return sorted(set(_BUILDERS) | set(claimed_names()))


def parse(spec: str, **options) -> Dict[str, Any]:
    if options:
        raise BackboneError(f"{', '.join(options)} does not apply to the registered backbone {spec!r}")
    return {"library": NAME, "name": str(spec)}


def _builder(name: str) -> Callable:
    if name not in _BUILDERS:
        raise BackboneError(f"no backbone registered as {name!r} in this process (registered: "
                            f"{', '.join(sorted(_BUILDERS)) or 'none'}); import the module that registers it")
    return _BUILDERS[name]


def describe(cfg: Mapping) -> Dict[str, str]:
    model = _builder(str(cfg.get("name")))()
    return {"key": str(cfg.get("name")), "kind": "vit" if hasattr(model.visual, "transformer") else "resnet"}


def preflight(cfg: Mapping, files: bool = True) -> None:
    _builder(str(cfg.get("name")))


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    from .checkpoint import load_model

    name = str(cfg.get("name"))
    return load_model(_builder(name)().float(), name, device=device, precision=precision, key=name,
                      tokenizer=_TOKENIZERS.get(name), library=NAME)


def label(cfg: Mapping) -> str:
    return str(cfg.get("key") or cfg.get("name"))
