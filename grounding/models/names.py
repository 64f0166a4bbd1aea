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


# ------------------------------------------------------------------ open_clip architectures (torch-free)
OPEN_CLIP_PREFIX = "open_clip:"


def _open_clip_config_dir() -> Optional[Path]:
    """open_clip's bundled model_configs/ folder, found without importing open_clip (which imports torch)."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "model_configs"


def open_clip_model_config(arch: str) -> Dict:
    """``{"model_cfg": …, "preprocess_cfg": …}`` of an open_clip ARCH, read as JSON (no torch).

    ARCH is an open_clip model name (``ViT-H-14``, ``ViT-bigG-14``, ``RN50``, ``ViT-H-14-quickgelu`` …; ``/``
    read as ``-``) or the path of a model-config JSON: either the form of open_clip's ``model_configs/``
    (``{"embed_dim", "vision_cfg", "text_cfg", …}``) or the ``open_clip_config.json`` shipped next to the
    weights on the Hugging Face hub (``{"model_cfg": …, "preprocess_cfg": {"mean", "std", …}}``)."""
    import json

    arch = str(arch)
    p = Path(arch).expanduser()
    if arch.endswith(".json") or p.is_file():
        if not p.is_file():
            raise BackboneError(f"open_clip model config {p} not found")
        try:
            cfg = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise BackboneError(f"open_clip model config {p} is not readable JSON: {e}") from None
    else:
        folder = _open_clip_config_dir()
        if folder is None:
            raise BackboneError("open_clip is not installed (pip install open_clip_torch)")
        f = folder / f"{arch.replace('/', '-')}.json"
        if not f.is_file():
            raise BackboneError(f"unknown open_clip architecture {arch!r}: not one of open_clip's model configs "
                                f"({folder}) nor a model-config JSON file")
        cfg = json.loads(f.read_text())
    model_cfg, pre = (cfg["model_cfg"], cfg.get("preprocess_cfg") or {}) if "model_cfg" in cfg else (cfg, {})
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise BackboneError(f"open_clip arch {arch!r}: model config lacks {', '.join(missing)}")
    return {"model_cfg": model_cfg, "preprocess_cfg": pre}


_CUSTOM_ATTENTION = ("qk_norm", "scaled_cosine_attn", "scale_heads", "scale_attn_inner", "scale_attn", "scale_fc")


def check_open_clip_servable(arch: str, model_cfg: Dict) -> None:
    """Refuse, naming the arch, the towers the methods cannot serve: timm trunks (SigLIP, EVA, ConvNeXt, …),
    attentional pooling (CoCa), pooling other than the class token, attention other than
    ``nn.MultiheadAttention`` (custom blocks: scaled cosine attention, qk-norm, …), Hugging Face text towers
    and tokenizers (they need a download)."""
    v, t = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    why = None
    if v.get("timm_model_name"):
        why = f"its image tower is a timm trunk ({v['timm_model_name']}), not a CLIP VisionTransformer / ModifiedResNet"
    elif v.get("attentional_pool"):
        why = "its image tower pools with attentional pooling (attn_pool), which the dense methods cannot read"
    elif isinstance(v.get("layers"), int) and v.get("pool_type", "tok") != "tok":
        why = f"its image tower pools by {v.get('pool_type')!r}, not by the class token the methods use"
    elif v.get("block_type") == "custom" or any(v.get(k) for k in _CUSTOM_ATTENTION):
        why = "its image tower uses open_clip's custom attention blocks (not nn.MultiheadAttention)"
    elif t.get("hf_model_name"):
        why = f"its text tower is a Hugging Face model ({t['hf_model_name']}), which needs a download"
    elif t.get("hf_tokenizer_name") and not Path(str(t["hf_tokenizer_name"])).is_dir():
        why = f"its tokenizer is Hugging Face's {t['hf_tokenizer_name']!r}, which needs a download"
    if why:
        raise BackboneError(f"open_clip arch {arch!r} cannot be served: {why}. Supported: CLIP ViTs (ViT-B-16, "
                            f"ViT-L-14, ViT-H-14, ViT-g-14, ViT-bigG-14, their -quickgelu variants) and ResNets (RN50, …).")


def key_from_model_config(model_cfg: Dict) -> str:
    """The hyperparameter key of an open_clip model config (the same function of the tower's geometry as
    :func:`grounding.models.backbones.backbone_key` applies to a loaded tower)."""
    v = model_cfg["vision_cfg"]
    size = v.get("image_size", 224)
    size = size[0] if isinstance(size, (list, tuple)) else size
    layers = v.get("layers", 12)
    if isinstance(layers, (list, tuple)):
        return resnet_key(v.get("width", 64), layers)
    patch = v.get("patch_size", 16)
    patch = patch[0] if isinstance(patch, (list, tuple)) else patch
    return vit_key(v.get("width", 768), patch, size)


def open_clip_key(arch: str) -> str:
    """ARCH (open_clip name or config JSON) → hyperparameter key (vit_h14, vit_bigg14, rn50, …); refuses
    towers the methods cannot serve. Used by conf/backbone/open_clip.yaml (resolver ``open_clip_key``)."""
    cfg = open_clip_model_config(arch)
    check_open_clip_servable(arch, cfg["model_cfg"])
    return key_from_model_config(cfg["model_cfg"])


def open_clip_kind(arch: str) -> str:
    return "resnet" if open_clip_key(arch).startswith("rn") else "vit"
