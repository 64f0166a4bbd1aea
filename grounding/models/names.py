"""Backbone names and checkpoint files, torch-free (so paths are checked before torch is imported).

OpenAI's ``clip`` package stores each model as ``~/.cache/clip/<file>``; this table holds those file
names (a test checks it against ``clip.clip._MODELS``). Config keys and OpenAI names are interchangeable:
``vit_b16`` = ``ViT-B/16``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Union
from ..errors import GroundingError

CACHE_ENV = "GROUNDING_CLIP_CACHE"
OPENAI_FILES: Dict[str, str] = {
    "RN50": "RN50.pt", "RN101": "RN101.pt", "RN50x4": "RN50x4.pt", "RN50x16": "RN50x16.pt", "RN50x64": "RN50x64.pt",
    "ViT-B/32": "ViT-B-32.pt", "ViT-B/16": "ViT-B-16.pt", "ViT-L/14": "ViT-L-14.pt",
    "ViT-L/14@336px": "ViT-L-14-336px.pt",
}


class BackboneError(GroundingError, RuntimeError):
    """A backbone could not be found or read; the message says which file and why."""


class BackboneConfigError(BackboneError, ValueError):
    """The backbone config node is incomplete or names something unknown (entry points report it as a
    configuration error)."""


def config_key(openai_name: str) -> str:
    """OpenAI model name → this harness's config key: ``ViT-B/16`` → ``vit_b16``, ``ViT-L/14@336px`` →
    ``vit_l14_336``, ``RN50x4`` → ``rn50x4``."""
    return openai_name.lower().replace("-", "_").replace("/", "").replace("@336px", "_336")


KEY_TO_OPENAI: Dict[str, str] = {config_key(n): n for n in OPENAI_FILES}


def canonical_name(name: str) -> str:
    """Accept OpenAI names and config keys alike: ``vit_b16`` and ``ViT-B/16`` both give ``ViT-B/16``."""
    return KEY_TO_OPENAI.get(str(name), KEY_TO_OPENAI.get(str(name).lower(), str(name)))


def default_cache_dir(cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Argument > $GROUNDING_CLIP_CACHE > ~/.cache/clip (where OpenAI's package stores weights)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/clip").expanduser()


def resolve_checkpoint(name: str, cache_dir=None, registered=()) -> Path:
    """Map a model name or path to an existing checkpoint file, or raise :class:`BackboneError`."""
    name = canonical_name(name)
    if name in OPENAI_FILES:
        path = default_cache_dir(cache_dir) / OPENAI_FILES[name]
        if not path.is_file():
            raise BackboneError(
                f"CLIP weights for {name!r} not found at {path} (this harness never downloads weights). "
                f"Copy {OPENAI_FILES[name]} there (on a machine with internet: python -c \"import clip; "
                f"clip.load('{name}')\" saves it to ~/.cache/clip/), or set ${CACHE_ENV} / backbone.cache_dir.")
        return path
    path = Path(str(name)).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise BackboneError(f"backbone {name!r} is a directory, not a checkpoint file")
    known = ", ".join(sorted(KEY_TO_OPENAI) + list(registered))
    raise BackboneError(f"backbone {name!r} is neither a known model ({known}) nor an existing checkpoint file")


# ------------------------------------------------------------------ geometry → hyperparameter key
def vit_key(width: int, patch: int, image_size: int = 224) -> str:
    """Key of a ViT tower from its geometry, as OpenAI's names read: ``vit_b16``, ``vit_l14``, ``vit_h14``,
    ``vit_g14``, ``vit_bigg14``, with ``_<size>`` when the input is not 224 (``vit_l14_336``). Widths:
    ≥1664 bigG, ≥1408 g, ≥1280 H, ≥1024 L, else B (tiny test towers read as B)."""
    size = next(s for w, s in ((1664, "bigg"), (1408, "g"), (1280, "h"), (1024, "l"), (0, "b")) if width >= w)
    res = "" if int(image_size) == 224 else f"_{int(image_size)}"
    return f"vit_{size}{int(patch)}{res}"


def resnet_key(width: int, layers) -> str:
    """Key of a CLIP ModifiedResNet from its stem width and blocks per stage: rn50, rn101, rn50x4, …"""
    if int(width) == 64:
        return "rn101" if int(list(layers)[2]) > 6 else "rn50"
    return {80: "rn50x4", 96: "rn50x16", 128: "rn50x64"}.get(int(width), "rn50")
