"""Backbone library ``openai``: OpenAI's released CLIPs by name (``ViT-B/16`` = ``vit_b16``), read from the
folder where OpenAI's ``clip`` package keeps them (never downloaded), or an OpenAI-format checkpoint path.

The label of its runs is the config key (``vit_b16``): these are the paper's weights."""
from __future__ import annotations

from typing import Any, Dict, Mapping

from .names import KEY_TO_OPENAI, BackboneError, canonical_name, config_key, resolve_checkpoint

NAME = "openai"


def parse(spec: str, **options) -> Dict[str, Any]:
    pretrained = options.pop("pretrained", None)
    if pretrained is not None:
        raise BackboneError(f"pretrained={pretrained} is for libraries whose architecture and weights are separate "
                            f"(e.g. backbone='open_clip:ARCH'); an OpenAI backbone {spec!r} is a name or a "
                            f"checkpoint path by itself")
    cache_dir = options.pop("cache_dir", None)
    if options:
        raise BackboneError(f"{', '.join(options)}: not an option of OpenAI backbones (cache_dir only)")
    return {"library": NAME, "name": canonical_name(spec), "cache_dir": cache_dir}


def describe(cfg: Mapping) -> Dict[str, str]:
    name = canonical_name(str(cfg.get("name")))
    if config_key(name) not in KEY_TO_OPENAI:
        raise BackboneError(f"backbone.name={name}: key and kind of a checkpoint file are known once it loads; "
                            f"give backbone.key and backbone.kind")
    key = config_key(name)
    return {"key": key, "kind": "resnet" if key.startswith("rn") else "vit"}


def preflight(cfg: Mapping, files: bool = True) -> None:
    """The weights file, resolved in the clip cache folder (or the path given), before torch is imported."""
    if files:
        resolve_checkpoint(cfg.get("name"), cfg.get("cache_dir"))


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    from .checkpoint import load_file

    name = canonical_name(str(cfg.get("name")))
    path = resolve_checkpoint(name, cfg.get("cache_dir"))
    return load_file(path, name, device=device, precision=precision, library=NAME)


def label(cfg: Mapping) -> str:
    return str(cfg.get("key") or config_key(canonical_name(str(cfg.get("name")))))
