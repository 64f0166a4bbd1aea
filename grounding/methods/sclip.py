"""SCLIP (Wang, Mei, Yuille, ECCV 2024): correlative self-attention (CSA) in the last block.

Modification (ViT, last block ``L`` only; blocks ``1 … L−1`` run unchanged). With ``x`` the input tokens of
block ``L`` (class token included, and attended to), ``q, k, v`` the block's own projections of ``ln₁(x)``,
per head ``h`` (head dim ``d``, ``s = d^-½``)::

    A_h = softmax_row(s · q_h q_hᵀ) + softmax_row(s · k_h k_hᵀ)        # rows sum to 2, not renormalised
    a   = concat_h(A_h v_h) W_oᵀ + b_o                                   # the block's out_proj
    z   = x + a                                                           # residual of the attention kept
    z'  = z + mlp(ln₂(z))                                                 # FFN and its residual kept
    f   = ln_post(z') · proj                                              # patch tokens (class token dropped)

i.e. q attends to q and k attends to k (self-correlation), the two attention maps are summed, and the usual
q·kᵀ attention of the last block is not used. Temperature: the standard ``d^-½``; no other block is touched.

Source followed: wangf3014/SCLIP, ``clip/model.py`` (``VisionTransformer.forward`` with ``csa=True``: the last
resblock runs ``x = x + custom_attn(blk.attn, blk.ln_1(x), csa=True)``, ``x = x + blk.mlp(blk.ln_2(x))``;
``return_all=True`` → ``ln_post(x) @ proj`` on every token; ``VisionTransformer.custom_attn``, branch ``csa``),
called as in ``clip_segmentor.py`` (``CLIPForSegmentation.forward_feature``:
``encode_image(img, return_all=True, csa=True)``, L2-normalise, drop the class token).

Variants the source offers, not used here:
  * the paper presents CSA with a generic projection ``W_r`` (softmax(X W_r (X W_r)ᵀ / τ)); the training-free
    model of its code (followed here) takes ``W_r`` ∈ {CLIP's ``W_q``, ``W_k``} and sums the two maps;
  * ``csa=False`` in ``custom_attn`` is the ordinary q·kᵀ attention; ``get_attn`` only returns maps;
  * its segmentor adds the ImageNet prompt templates (80 prompts averaged), sliding-window inference
    (crop 224, stride 112; configs resize to a short side of 336), positional-embedding interpolation for other
    sizes (bicubic), a class softmax with a logit scale (40 by default, 50/65 in some configs), probability and
    area thresholds, optional PAMR, and runs CLIP in fp16 (``clip.load`` on
    GPU); none of these are part of the contract.
"""
from __future__ import annotations

import torch

from grounding.models.vit import block_forward, last_block_replaced, merge_heads, qkv

from .base import register_method
from .patch import PatchMethod, knob_params

DEFAULTS: dict = {}
TEXT_MODE = "plain"


def correlative_self_attention(attn, x: torch.Tensor) -> torch.Tensor:
    """SCLIP's CSA: (softmax(s·q qᵀ) + softmax(s·k kᵀ)) v per head, s = head_dim^-½, through ``out_proj``.

    Follows wangf3014/SCLIP ``clip/model.py``, ``VisionTransformer.custom_attn`` (``csa=True``).
    """
    q, k, v = qkv(attn, x)
    s = q.shape[-1] ** -0.5
    a = torch.softmax((q @ q.transpose(-2, -1)) * s, dim=-1) + torch.softmax((k @ k.transpose(-2, -1)) * s, dim=-1)
    return merge_heads(attn, a @ v)


def csa_block(block, x: torch.Tensor) -> torch.Tensor:
    """SCLIP's last block: x + CSA(ln₁ x), then the FFN with its residual (``VisionTransformer.forward``)."""
    return block_forward(block, x, correlative_self_attention)


@torch.no_grad()
def patch_tokens(visual, x: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) → SCLIP patch embeddings (B, g², E) after ln_post and proj (not normalised)."""
    return last_block_replaced(visual, x, csa_block)


# ------------------------------------------------------------------------------------- the method
@register_method("sclip")
class SCLIP(PatchMethod):
    """SCLIP (Wang et al., ECCV 2024): correlative self-attention (softmax(qqᵀ)+softmax(kkᵀ))·v in the last block (residual and FFN kept)."""

    PARAMS = knob_params()
    TEXT_MODE = TEXT_MODE
    tokens = staticmethod(patch_tokens)
