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
(:func:`grounding.models.names.check_open_clip_servable`).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

import torch
from torch import nn

from .backbones import Backbone, resolve_precision
from .names import BackboneError, check_open_clip_servable, open_clip_model_config
from .text import check_phrase, warn_truncated

WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors")
_PRECISION = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class OpenClipPhraseTokenizer:
    """One phrase → a (1, context) token tensor with open_clip's tokenizer; the adapter's contract (empty
    phrases refused unless ``allow_empty``, over-long ones truncated with a warning, as OpenAI's path)."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, int(context_length)

    def __call__(self, phrase: str, allow_empty: bool = False) -> torch.Tensor:
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


def check_tower(arch: str, visual: nn.Module) -> str:
    """``vit`` or ``resnet`` for a tower the methods can serve; :class:`BackboneError` naming ``arch``
    otherwise (duck-typed on the attribute names both libraries share)."""
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
                   *, random_weights: bool = False) -> Backbone:
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
    dev = torch.device(device)
    dtype = resolve_precision(precision, dev)

    import open_clip

    name = _model_name(arch, model_cfg)
    pre = {k: v for k, v in cfg["preprocess_cfg"].items() if k in ("mean", "std")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # QuickGELU notices for tags; none apply to files
            model = open_clip.create_model(name, pretrained=str(path) if path else None, precision=_PRECISION[dtype],
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


__all__ = ["OpenClipPhraseTokenizer", "check_tower", "load_open_clip"]
