"""MaskCLIP (Zhou, Loy, Dai, ECCV 2022): dense features from the value path of the last block.

Modification (ViT, last block ``L`` only; blocks ``1 … L−1`` run unchanged). With ``x`` the input tokens of
block ``L`` (class token included), ``y = ln₁(x)`` and ``W_v, b_v`` the value rows of the block's
``in_proj``, ``W_o, b_o`` its ``out_proj``::

    v  = y W_vᵀ + b_v                      # value of every token; q and k are not used at all
    a  = v W_oᵀ + b_o                      # = attention in which each token attends only to itself
    z  = x + a                             # residual of the attention branch kept
    z' = z + mlp(ln₂(z))                   # FFN (CLIP's QuickGELU) and its residual kept
    f  = ln_post(z') · proj                # patch tokens (class token dropped) → the joint space

i.e. the softmax(q·kᵀ/√d) attention matrix of the last block is replaced by the identity, per head
(equivalently for all heads at once, since the identity is block-diagonal over heads); no temperature,
no other block touched. The tower's own activation and LayerNorm are used (QuickGELU, eps 1e-5).

Source followed: chongzhou96/MaskCLIP,
``mmseg/models/backbones/vit.py`` (``TransformerEncoderLayer.forward`` with ``return_qkv=True``: ``q, k, v``
each through ``out_proj``, ``v += x``, ``v = ffn(norm2(v), identity=v)``; ``VisionTransformer.forward``:
``v = norm1(v)`` = ln_post on the last layer), ``mmseg/models/decode_heads/maskclip_head.py``
(``MaskClipHead.forward`` with ``vit=True``: ``feat = proj(v)``, a 1×1 conv holding CLIP's ``visual.proj``
(``tools/maskclip_utils/convert_clip_weights.py``); ``cls_seg``: L2-normalised ``feat`` · text embeddings),
configured by ``configs/_base_/models/maskclip_vit16.py`` (``return_qkv=True``, ``skip_last_attn=False``).

Variants the source offers, not used here:
  * the released config runs CLIP's weights in mmseg's ViT with ``act_cfg=GELU`` (exact erf GELU, not
    CLIP's QuickGELU) and ``LayerNorm eps=1e-6`` (CLIP uses 1e-5) — a small deviation from CLIP itself;
    this module (as the issue defines it) uses the tower's own QuickGELU and eps 1e-5;
  * ``skip_last_attn=True`` writes the value-path tokens back into the backbone output ``x`` (same
    patch features, differs only in which output the head reads);
  * key smoothing (``ks_thresh``) and prompt denoising (``pd_thresh``) in ``MaskClipHead.refine_output``,
    both 0 (off) in the released configs; positional-embedding interpolation and sliding-window test
    for non-224 inputs; MaskCLIP+ (a trained head). ClearCLIP's "MaskCLIP" mode (which drops the
    residual and the FFN) is a different thing.
"""
from __future__ import annotations

import torch

from grounding.models.vit import block_forward, last_block_replaced, merge_heads, qkv

from .base import register_method
from .patch import PatchMethod, knob_params

DEFAULTS: dict = {}
TEXT_MODE = "plain"


def value_path_attention(attn, y: torch.Tensor) -> torch.Tensor:
    """MaskCLIP's attention: out_proj(v(y)) — every token attends only to itself (q and k unused)."""
    _, _, v = qkv(attn, y)
    return merge_heads(attn, v)


def value_path_block(block, x: torch.Tensor) -> torch.Tensor:
    """MaskCLIP's last block: x + out_proj(v(ln₁ x)), then the FFN with its residual (self-only attention).

    Follows chongzhou96/MaskCLIP ``mmseg/models/backbones/vit.py``, ``TransformerEncoderLayer.forward``
    (``return_qkv`` branch).
    """
    return block_forward(block, x, value_path_attention)


@torch.no_grad()
def patch_tokens(visual, x: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) → MaskCLIP patch embeddings (B, g², E) after ln_post and proj (not normalised)."""
    return last_block_replaced(visual, x, value_path_block)


# ------------------------------------------------------------------------------------- the method
@register_method("maskclip")
class MaskCLIP(PatchMethod):
    """MaskCLIP (Zhou et al., ECCV 2022): the last block's attention replaced by its value path (residual and FFN kept)."""

    PARAMS = knob_params()
    TEXT_MODE = TEXT_MODE
    tokens = staticmethod(patch_tokens)
