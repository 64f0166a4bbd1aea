"""ClearCLIP (Lan et al., ECCV 2024): self-self (q–q) attention in the last block, its residual and FFN dropped.

Follows mc-lan/ClearCLIP, ``open_clip/transformer.py`` — ``VisionTransformer.forward`` with its defaults
``model_type='ClearCLIP'``, ``ignore_residual=True``, ``last_n_layers=1`` and ``VisionTransformer.custom_attn``
(the configuration of the paper and of ``demo.py``; ``clearclip_segmentor.py`` calls
``encode_image(img, model_type, ignore_residual)``).

With ``x`` the input of the last block L (all ``1 + g²`` tokens, class token included) and, per head h
(head width d = D / heads)::

    z      = ln_1(x)
    q_h, k_h, v_h = z W_q,h + b_q,h ,  z W_k,h + b_k,h ,  z W_v,h + b_v,h
    A_h    = softmax(q_h q_hᵀ / √d)          (row-wise over all 1 + g² tokens; keys are NOT used)
    o      = out_proj(concat_h A_h v_h)
    tokens = proj(ln_post(o))[1:]             (no "x +" residual, no ln_2 / MLP, no layer scale)

Blocks 0 … L−1 (all but the last) run unmodified; the last block's ordinary output is discarded. One
modified block, one head layout (the model's own), temperature 1/√d (CLIP's own scale).

Other variants the source offers (not used here): ``model_type='vanilla'`` (softmax(q kᵀ/√d), the
``configs/base_config.py`` default), ``'MaskCLIP'`` (identity attention, i.e. out_proj(v)), ``'SCLIP'``
(softmax(q qᵀ/√d) + softmax(k kᵀ/√d)), ``'GEM'`` (the GEM wrapper); ``ignore_residual=False`` (keeps
``x + attn`` and ``+ mlp(ln_2(·))``, without layer scale); ``last_n_layers > 1`` (sums the modified
outputs of the last n blocks, each computed on that block's ordinary input). The segmentor also runs in
fp16, slides 224-crops with stride 112 over a 448 short side, interpolates positional embeddings and
applies a softmax over classes with logit scale 50 — none of that is part of this package's contract.
"""
from __future__ import annotations

import torch

from grounding.models.vit import last_block_replaced, merge_heads, qkv

from .base import register_method
from .patch import PatchMethod, knob_params

DEFAULTS: dict = {}
TEXT_MODE = "plain"


def self_self_attention(attn, z: torch.Tensor) -> torch.Tensor:
    """ClearCLIP's attention (``custom_attn``, model_type 'ClearCLIP'): out_proj(softmax(q qᵀ/√d) v) on
    batch-first ``z`` (already ``ln_1``-normalised), heads of ``attn``."""
    q, _, v = qkv(attn, z)
    a = torch.softmax((q @ q.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
    return merge_heads(attn, a @ v)


def self_self_block(block, x: torch.Tensor) -> torch.Tensor:
    """ClearCLIP's last block (``ignore_residual=True``): the attention output alone — no residual, no FFN."""
    return self_self_attention(block.attn, block.ln_1(x))


@torch.no_grad()
def patch_tokens(visual, x: torch.Tensor) -> torch.Tensor:
    """ClearCLIP patch embeddings (B, g², E) after ``ln_post`` and ``proj``, not normalised."""
    return last_block_replaced(visual, x, self_self_block)


# ------------------------------------------------------------------------------------- the method
@register_method("clearclip")
class ClearCLIP(PatchMethod):
    """ClearCLIP (Lan et al., ECCV 2024): last block = q-q attention only (no residual, no FFN)."""

    PARAMS = knob_params()
    TEXT_MODE = TEXT_MODE
    tokens = staticmethod(patch_tokens)
