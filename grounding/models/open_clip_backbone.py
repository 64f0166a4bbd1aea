"""open_clip backbones (LAION-2B, DataComp, DFN, MetaCLIP weights) behind the same :class:`Backbone` adapter.

    load_open_clip("ViT-H-14", "/models/open_clip_pytorch_model.bin", device="cuda")
    load_backbone("open_clip:ViT-H-14", pretrained="/models/open_clip_pytorch_model.bin")   # the same

ARCH is an open_clip model name (``ViT-B-16``, ``ViT-L-14``, ``ViT-H-14``, ``ViT-bigG-14``, ``RN50``, the
``-quickgelu`` variants for OpenAI-, DFN- and MetaCLIP-trained weights, …) or the path of a model-config JSON
(``{"embed_dim", "vision_cfg", "text_cfg", …}`` as in open_clip's ``model_configs/``, or the hub's
``open_clip_config.json`` whose ``preprocess_cfg`` then gives the mean/std). The model is built by open_clip's
own :func:`open_clip.create_model`; the weights come from ``pretrained``, an existing file
(``open_clip_pytorch_model.bin`` / ``open_clip_model.safetensors`` / a ``.pt``), read without executing code
(safetensors, or ``torch.load(weights_only=True)``) — never downloaded. The adapter carries open_clip's
tokenizer and the model's mean/std and input size. Towers the methods cannot serve are refused by name
(:func:`check_open_clip_servable`).

Backbone library ``open_clip`` (``backbone=open_clip`` / ``oc_*`` presets; API ``"open_clip:ARCH"`` with
``pretrained=FILE``). The arch's config is read as JSON without importing torch, so the key, the kind and the
servability are known at preflight.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from .names import BackboneConfigError, BackboneError, resnet_key, vit_key
from .text import check_phrase, warn_truncated

NAME = "open_clip"
WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors")
_PRECISION = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}


# ------------------------------------------------------------------ open_clip architectures (torch-free)
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
    :func:`grounding.models.adapter.geometry_key` applies to a loaded tower)."""
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
    towers the methods cannot serve. Used by conf/backbone/open_clip.yaml (``${backbone:key}``)."""
    cfg = open_clip_model_config(arch)
    check_open_clip_servable(arch, cfg["model_cfg"])
    return key_from_model_config(cfg["model_cfg"])


def open_clip_kind(arch: str) -> str:
    return "resnet" if open_clip_key(arch).startswith("rn") else "vit"


class OpenClipPhraseTokenizer:
    """One phrase → a (1, context) token tensor with open_clip's tokenizer; the adapter's contract (empty
    phrases refused unless ``allow_empty``, over-long ones truncated with a warning, as OpenAI's path)."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, int(context_length)

    def __call__(self, phrase: str, allow_empty: bool = False):
        check_phrase(phrase, allow_empty)
        encode = getattr(self.tokenizer, "encode", None)
        if encode is not None and len(encode(phrase)) + 2 > self.context_length:  # + start and end tokens
            warn_truncated(phrase, self.context_length)
        return self.tokenizer([phrase])


def _model_name(arch: str, model_cfg: Dict) -> str:
    """The name under which open_clip's ``create_model`` finds ARCH's config: a built-in name as is; a JSON
    file's config registered (``open_clip.add_model_config``) under a name made of its content digest, so a
    file named like a built-in never shadows it."""
    import open_clip

    p = Path(str(arch)).expanduser()
    if not (str(arch).endswith(".json") or p.is_file()):
        return str(arch).replace("/", "-")
    text = json.dumps(model_cfg, sort_keys=True)
    name = f"grounding-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if name not in open_clip.list_models():
        folder = Path(tempfile.mkdtemp(prefix="grounding_open_clip_"))
        (folder / f"{name}.json").write_text(text)
        open_clip.add_model_config(folder / f"{name}.json")
    return name


def _check_weights_file(arch: str, pretrained) -> Path:
    if pretrained is None or str(pretrained) == "":
        raise BackboneError(
            f"open_clip arch {arch!r} needs pretrained=FILE (backbone.pretrained=FILE): the open_clip checkpoint, "
            f"e.g. open_clip_pytorch_model.bin or open_clip_model.safetensors from the model's Hugging Face hub "
            f"repository; weights are never downloaded")
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise BackboneError(f"open_clip weights for {arch!r} not found at {path} (this harness never downloads "
                            f"weights; download open_clip_pytorch_model.bin elsewhere and give its path)")
    if path.suffix not in WEIGHT_SUFFIXES:
        raise BackboneError(f"{path}: expected an open_clip checkpoint ({', '.join(WEIGHT_SUFFIXES)}), "
                            f"got {path.suffix or 'no suffix'}")
    return path.resolve()


def check_tower(arch: str, visual) -> str:
    """``vit`` or ``resnet`` for a tower the methods can serve; :class:`BackboneError` naming ``arch``
    otherwise (duck-typed on the attribute names both libraries share)."""
    from torch import nn

    if hasattr(visual, "conv1") and hasattr(visual, "class_embedding") and hasattr(visual, "transformer"):
        if getattr(visual, "attn_pool", None) is not None:
            raise BackboneError(f"open_clip arch {arch!r} cannot be served: attentional pooling (attn_pool)")
        if getattr(visual, "pool_type", "tok") != "tok":
            raise BackboneError(f"open_clip arch {arch!r} cannot be served: pool_type={visual.pool_type!r} "
                                f"(the methods read the class token)")
        for block in visual.transformer.resblocks:
            if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
                raise BackboneError(f"open_clip arch {arch!r} cannot be served: its blocks' attention is "
                                    f"{type(getattr(block, 'attn', None)).__name__}, not nn.MultiheadAttention")
        return "vit"
    pool = getattr(visual, "attnpool", None)
    if all(hasattr(visual, f"layer{i}") for i in range(1, 5)) and pool is not None and \
            all(hasattr(pool, k) for k in ("v_proj", "c_proj")):
        return "resnet"
    raise BackboneError(f"open_clip arch {arch!r} cannot be served: its image tower ({type(visual).__name__}) is "
                        f"neither a CLIP VisionTransformer nor a ModifiedResNet")


def load_open_clip(arch: str, pretrained: Optional[Union[str, os.PathLike]], device="cpu", precision: str = "auto",
                   *, random_weights: bool = False):
    """An open_clip model as a :class:`Backbone` (``library="open_clip"``).

    ``pretrained`` must be an existing checkpoint file (a missing one is a :class:`BackboneError` naming the
    path). ``precision``: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``fp16``, ``bf16`` — reduced
    precision as OpenAI's ``clip.load`` (open_clip's ``precision="fp16"``: weights of convolutions, linear
    layers, attention and projections in fp16, LayerNorm computed in fp32). ``random_weights=True`` builds
    the architecture with open_clip's random initialisation and no file (benchmarks only).
    """
    cfg = open_clip_model_config(arch)
    model_cfg = cfg["model_cfg"]
    check_open_clip_servable(arch, model_cfg)
    path = None if random_weights and pretrained is None else _check_weights_file(arch, pretrained)
    from .adapter import Backbone, resolve_precision
    from .placement import check_device

    dev = check_device(device)
    dtype = resolve_precision(precision, dev)

    import open_clip

    name = _model_name(arch, model_cfg)
    pre = {k: v for k, v in cfg["preprocess_cfg"].items() if k in ("mean", "std")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # QuickGELU notices for tags; none apply to files
            model = open_clip.create_model(name, pretrained=str(path) if path else None, precision=_PRECISION[str(dtype)],
                                           device=dev, pretrained_image=False, pretrained_text=False,
                                           force_preprocess_cfg=pre or None, weights_only=True)
    except Exception as e:  # a truncated file, a pickle with code (refused by weights_only), a key mismatch …
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"{path} into open_clip arch {arch!r}" if path else f"open_clip arch {arch!r}"
        raise BackboneError(f"could not load {where}: {type(e).__name__}: {msg[:300]}") from e
    model = model.eval().requires_grad_(False)
    check_tower(arch, model.visual)
    pcfg = open_clip.get_model_preprocess_cfg(model)
    mean = tuple(float(x) for x in pcfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(float(x) for x in pcfg.get("std", open_clip.OPENAI_DATASET_STD))
    context = int(model_cfg["text_cfg"].get("context_length", 77))
    tokenizer = OpenClipPhraseTokenizer(open_clip.get_tokenizer(name, context_length=context), context)
    config_id = hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:16]
    return Backbone(name=f"open_clip:{arch}", model=model, device=dev, dtype=dtype,
                    source=str(path) if path else None, library="open_clip", mean=mean, std=std,
                    tokenizer=tokenizer, config_id=config_id)


# ------------------------------------------------------------------ the library contract
def parse(spec: str, **options) -> Dict[str, Any]:
    pretrained = options.pop("pretrained", None)
    options.pop("cache_dir", None)  # the OpenAI cache folder: not used by open_clip files
    if options:
        raise BackboneError(f"{', '.join(options)}: not an option of open_clip backbones (pretrained=FILE only)")
    return {"library": NAME, "arch": str(spec), "pretrained": None if pretrained is None else str(pretrained),
            "name": f"{NAME}:{spec}"}


def describe(cfg: Mapping) -> Dict[str, str]:
    key = open_clip_key(str(cfg.get("arch")))
    return {"key": key, "kind": "resnet" if key.startswith("rn") else "vit"}


def preflight(cfg: Mapping, files: bool = True) -> None:
    """The arch is given, known and servable; with ``files``, the weights file is given and exists."""
    arch = cfg.get("arch")
    if not arch or str(arch) == "???":
        raise BackboneConfigError("backbone=open_clip needs backbone.arch=NAME or a model-config JSON path "
                          "(e.g. backbone.arch=ViT-H-14) and backbone.pretrained=FILE")
    try:
        open_clip_key(str(arch))
    except BackboneError as e:
        raise BackboneConfigError(f"backbone.arch={arch}: {e}") from None
    if not files:
        return
    pretrained = cfg.get("pretrained")
    if not pretrained:
        raise BackboneConfigError(f"open_clip arch {arch!r} needs pretrained=FILE: backbone.pretrained=FILE is required "
                                  f"(weights are never downloaded), e.g. open_clip_pytorch_model.bin from the model's "
                                  f"Hugging Face hub repository")
    if not Path(str(pretrained)).expanduser().is_file():
        raise BackboneError(f"backbone.pretrained: open_clip weights not found at {Path(str(pretrained)).expanduser()}")


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    return load_open_clip(str(cfg.get("arch")), cfg.get("pretrained"), device=device, precision=precision)


def label(cfg: Mapping) -> str:
    """The key with the arch and the weights file, so a LAION ViT-B/16 never shares a cell with OpenAI's."""
    weights = Path(str(cfg.get("pretrained") or "")).name or "random"
    return f"{cfg.get('key')} (open_clip {Path(str(cfg.get('arch'))).stem}, {weights})"


__all__ = ["OpenClipPhraseTokenizer", "check_open_clip_servable", "check_tower", "load_open_clip", "open_clip_key",
           "open_clip_kind", "open_clip_model_config"]
