"""Hugging Face transformers backbones, the torch side: a local ``CLIPModel`` or ``SiglipModel`` folder behind
:class:`~grounding.models.adapter.Backbone` (imported by :func:`grounding.models.hf_backbone.load` only).

    load_hf("/models/clip-vit-base-patch16")            # = load_backbone("hf:/models/clip-vit-base-patch16")

DIR is what ``save_pretrained`` writes (``huggingface-cli download openai/clip-vit-base-patch16 --local-dir DIR``
elsewhere): ``config.json``, ``model.safetensors`` (a ``pytorch_model.bin`` is read with ``weights_only``
loading, never unpickled with code), the tokenizer files and ``preprocessor_config.json``. Everything is read
with ``local_files_only=True``: nothing is ever downloaded; a hub id where a folder is expected is refused.

The image tower is re-exposed under the names :mod:`grounding.models.vit` and every method read (``conv1``,
``class_embedding``, ``positional_embedding``, ``ln_pre``, ``transformer.resblocks`` with ``ln_1``/``attn``/
``ln_2``/``mlp``, ``ln_post``, ``proj``): :class:`HFVisionTower` holds transformers' own modules and parameters
(shared, not copied); q/k/v are fused into one ``in_proj_weight`` that transformers' ``q_proj``/``k_proj``/
``v_proj`` then view, so both read the same memory. CLIP therefore runs every ViT method through the same tower
operations as the OpenAI and open_clip paths. SigLIP has no class token (``class_embedding is None``: the
methods take every token as a patch), no pre-LayerNorm and no projection: its patch tokens after
``post_layernorm``, without the attention-pooling head, are the dense features; ``encode_image`` (Crop & Rank)
is its pooled head. Input size and mean/std come from ``preprocessor_config.json`` (any size: the patch-token
methods, Crop & Rank and the proposal rankers feed the model its own input size, e.g. 384 for so400m-patch14-384); how an image becomes the
square input is the harness's own (the folder's resize + centre crop is not used). The text side is the
folder's tokenizer padded to the model's context (CLIP pads with its end token; transformers pools at the
first end token, as OpenAI's argmax), with no prompt template.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .adapter import Backbone, resolve_precision
from .placement import check_device
from .hf_folder import HF_PREFIX, MODEL_TYPES, TOKENIZER_FILES, WEIGHT_FILES, check_hf_folder, preprocess_config
from .names import BackboneError, vit_key
from .text import check_phrase, warn_truncated
from .vit import block_forward, blocks, head, input_tokens


# ----------------------------------------------------------------------------------- the tower adapter
class FusedQKV(nn.Module):
    """transformers' q/k/v projections fused into ``in_proj_weight``/``in_proj_bias`` (the layout of
    ``nn.MultiheadAttention`` that :func:`grounding.models.vit.qkv` and ours-ViT read), ``out_proj`` shared.
    The originals are re-pointed at views of the fused tensors, so memory is shared, not copied."""

    def __init__(self, hf_attn: nn.Module):
        super().__init__()
        a = hf_attn
        self.num_heads, self.embed_dim = int(a.num_heads), int(a.embed_dim)
        w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach()
        b = torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]).detach()
        self.in_proj_weight = nn.Parameter(w, requires_grad=False)
        self.in_proj_bias = nn.Parameter(b, requires_grad=False)
        d = self.embed_dim
        for i, proj in enumerate((a.q_proj, a.k_proj, a.v_proj)):
            proj.weight = nn.Parameter(self.in_proj_weight.data[i * d:(i + 1) * d], requires_grad=False)
            proj.bias = nn.Parameter(self.in_proj_bias.data[i * d:(i + 1) * d], requires_grad=False)
        self.out_proj = a.out_proj


class HFBlock(nn.Module):
    """One encoder layer under CLIP's block names: ``ln_1``, ``attn`` (:class:`FusedQKV`), ``ln_2``, ``mlp``."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.ln_1, self.attn = layer.layer_norm1, FusedQKV(layer.self_attn)
        self.ln_2, self.mlp = layer.layer_norm2, layer.mlp


class HFVisionTower(nn.Module):
    """transformers' vision tower under the names of CLIP's ``VisionTransformer`` (see the module docstring)."""

    def __init__(self, vision_model: nn.Module, projection: Optional[nn.Linear], input_resolution: int):
        super().__init__()
        emb = vision_model.embeddings
        self.conv1 = emb.patch_embedding
        self.class_embedding = getattr(emb, "class_embedding", None)  # None: SigLIP (no class token)
        self.positional_embedding = emb.position_embedding.weight
        self.ln_pre = getattr(vision_model, "pre_layrnorm", None) or nn.Identity()
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(HFBlock(layer) for layer in vision_model.encoder.layers)
        self.ln_post = vision_model.post_layernorm
        self.proj = None if projection is None else nn.Parameter(projection.weight.data.t(), requires_grad=False)
        self.input_resolution = int(input_resolution)


class HFCLIP(nn.Module):
    """The loaded transformers model with the two calls :class:`Backbone` makes: ``encode_text(tokens)`` and
    ``encode_image(images)``, and ``visual`` (:class:`HFVisionTower`)."""

    def __init__(self, hf_model: nn.Module, model_type: str, input_resolution: int):
        super().__init__()
        self.hf, self.model_type = hf_model, model_type
        proj = getattr(hf_model, "visual_projection", None)
        self.visual = HFVisionTower(hf_model.vision_model, proj, input_resolution)

    @property
    def logit_scale(self) -> torch.Tensor:
        """transformers' log-scale parameter (Backbone.logit_scale exponentiates it)."""
        return self.hf.logit_scale

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.hf.get_text_features(input_ids=tokens.long())
        return getattr(out, "pooler_output", out)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP: ``ln_post`` and ``proj`` on the class token; SigLIP: its attention-pooling head on the tokens
        after ``post_layernorm`` (as transformers' ``get_image_features``)."""
        t = input_tokens(self.visual, x)
        for block in blocks(self.visual):
            t = block_forward(block, t)
        if self.visual.class_embedding is not None:
            return head(self.visual, t[:, 0])
        pool = getattr(self.hf.vision_model, "head", None)
        if pool is None:
            raise BackboneError("this SigLIP folder has no attention-pooling head (vision_use_head=false): no image "
                                "embedding for Crop & Rank")
        return pool(head(self.visual, t))


# ----------------------------------------------------------------------------------- text side
class HFPhraseTokenizer:
    """One phrase → (1, context) ids with the folder's tokenizer, padded to the model's context
    (``max_length``); empty phrases refused unless ``allow_empty``, over-long ones truncated with a warning."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, int(context_length)

    def __call__(self, phrase: str, allow_empty: bool = False) -> torch.Tensor:
        check_phrase(phrase, allow_empty)
        if len(self.tokenizer(phrase)["input_ids"]) > self.context_length:
            warn_truncated(phrase, self.context_length)
        enc = self.tokenizer([phrase], padding="max_length", max_length=self.context_length, truncation=True,
                             return_tensors="pt")
        return enc["input_ids"]


class HFBackbone(Backbone):
    """:class:`Backbone` whose phrase embedding is read where transformers pools: CLIP at the first end token
    (its tokenizer pads with the end token, so OpenAI's argmax would be wrong for ids above it), SigLIP at the
    last position (it pads to ``max_length``)."""

    def __init__(self, *args, eos_token_id: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eos_token_id = eos_token_id

    def end_token_index(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.model.model_type == "siglip" or self.eos_token_id is None:
            return torch.full(tokens.shape[:-1], tokens.shape[-1] - 1, dtype=torch.long, device=tokens.device)
        return (tokens == self.eos_token_id).int().argmax(dim=-1)


# ----------------------------------------------------------------------------------- loading
def _load_model(folder: Path, model_type: str):
    import transformers
    from transformers.utils import logging as hf_logging

    cls = getattr(transformers, MODEL_TYPES[model_type])
    safetensors = any((folder / f).is_file() for f in WEIGHT_FILES[:2])
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on the CLI's stderr
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=safetensors,
                                              dtype=torch.float32, output_loading_info=True)
    except Exception as e:  # truncated file, pickle with code (weights_only refuses it), shape mismatch …
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BackboneError(f"{folder}: could not load a {MODEL_TYPES[model_type]}: {type(e).__name__}: "
                            f"{msg[:300]}") from e
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", []) if "position_ids" not in k]
    if missing:
        raise BackboneError(f"{folder}: the weights lack {len(missing)} tensors of a {MODEL_TYPES[model_type]} "
                            f"(e.g. {sorted(missing)[0]}); expected the whole model saved by save_pretrained")
    return model


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BackboneError(f"{folder}: could not load its tokenizer: {type(e).__name__}: {msg[:300]}") from e


def folder_digest(folder: Path) -> str:
    """Digest of the small files that change outputs besides the weights: config, processor, tokenizer."""
    h = hashlib.sha256()
    names = ["config.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json",
             *(f for group in TOKENIZER_FILES for f in group)]
    for name in names:
        p = folder / name
        if p.is_file():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def load_hf(path: Union[str, os.PathLike], device="cpu", precision: str = "auto") -> Backbone:
    """A local transformers CLIP/SigLIP folder as a :class:`Backbone` (``library="hf"``, name ``hf:DIR``).

    ``precision``: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``fp16``, ``bf16`` — the whole model cast
    (transformers' LayerNorms compute in the model's dtype)."""
    cfg = check_hf_folder(path)
    folder = Path(str(path)).expanduser().resolve()
    model_type = cfg["model_type"]
    pre = preprocess_config(folder, cfg)
    dev = check_device(device)
    dtype = resolve_precision(precision, dev)
    hf = _load_model(folder, model_type).eval().requires_grad_(False).to(device=dev, dtype=dtype)
    text_dim = getattr(hf.config.text_config, "projection_size", None) or hf.config.text_config.hidden_size
    if model_type == "siglip" and text_dim != hf.config.vision_config.hidden_size:
        raise BackboneError(f"{folder}: SigLIP text embeddings ({text_dim}) and patch tokens "
                            f"({hf.config.vision_config.hidden_size}) differ in width; expected a SiglipModel whose "
                            f"towers share one embedding space")
    model = HFCLIP(hf, model_type, pre["size"])
    context = int(hf.config.text_config.max_position_embeddings)
    tokenizer = HFPhraseTokenizer(_load_tokenizer(folder), context)
    weights = next(folder / f for f in WEIGHT_FILES if (folder / f).is_file())
    v = cfg.get("vision_config", {})
    key = vit_key(int(v.get("hidden_size", 768)), int(v.get("patch_size", 32)), pre["size"])
    return HFBackbone(name=f"{HF_PREFIX}{folder}", model=model, device=dev, dtype=dtype, source=str(weights),
                      library="hf", mean=pre["mean"], std=pre["std"], tokenizer=tokenizer,
                      config_id=folder_digest(folder), key=key, kind="vit",
                      eos_token_id=getattr(tokenizer.tokenizer, "eos_token_id", None))


__all__ = ["HF_PREFIX", "FusedQKV", "HFBackbone", "HFBlock", "HFCLIP", "HFPhraseTokenizer", "HFVisionTower",
           "folder_digest", "load_hf"]
