"""CLIP Surgery (Li et al., "A closer look at the explainability of contrastive language-image
pre-training", Pattern Recognition 2025; arXiv 2304.05653): the "CS" ViT model — a dual path with
v–v self-attention in the last blocks — and feature surgery against the empty string.

Follows xmed-lab/CLIP_Surgery, ``clip/clip_surgery_model.py`` (``Attention``, ``ResidualAttentionBlock``,
``VisionTransformer.forward``, built by ``clip/build_model.py`` for the names ``CS-ViT-*``), and
``clip/clip.py::clip_feature_surgery`` with ``redundant_feats`` (the single-text case of ``demo.py``).

Architecture surgery, in math. Let L be the number of blocks and d = ``blocks`` (6: the reference's
``for i in range(1, 7): resblocks[-i]``). Blocks 0 … L−d−1 run unchanged. At the input x of block
s = L−d both paths start equal, x̃ = x (original path) and x̂ = x (new path). In every block l ≥ s,
with ``h = ln_1(x̃)`` (the attention input is ALWAYS the original path, also for the new one) and
q, k, v = the block's in-projection of h, split into its H heads of size c = D/H:

    x̂ ← x̂ + W_o · softmax(v vᵀ / √c) v          (v–v attention; residual kept, no FFN)
    x̃ ← x̃ + W_o · softmax(q kᵀ / √c) v          (CLIP's own attention)
    x̃ ← x̃ + mlp(ln_2(x̃))                         (CLIP's own FFN, on the original path only)

The class token attends and is attended to like any token (no mask). The patch outputs are
``ln_post(x̂) · proj`` on the new path (the reference then copies the original path's class token
into the new path, which does not touch the patch tokens). Temperature: the standard 1/√c in both
attentions (the reference multiplies q·kᵀ by ``scale`` after the product). The new path keeps the
reference's exact order: residual adds of the attention output only. On open_clip towers with
LayerScale, ``ls_1`` scales both attention residuals and ``ls_2`` the FFN (CLIP has none).

Feature surgery (TEXT_MODE ``minus_empty``): similarity = patch · (t − e), t the L2-normalised phrase
embedding and e that of the empty string "" (``clip_feature_surgery(image, text, redundant_feats)``).

Variants in the source, not used here:
- ResNets (``settings='resnet'`` in ``AttentionPool2d``): the attention-pool becomes v–v attention with
  L2-normalised v and 8× the temperature scale (not a ViT method; out of scope here).
- ``Attention.forward`` keeps a commented ``x = v`` line (MaskCLIP's value path) and the loop comment
  "surgery 7, maskclip 2" (``range(1, 2)``: surgery on the last block only).
- Multi-class feature surgery (``redundant_feats=None``): the redundant feature is the class-weighted
  mean over a label set of image⊙text products, softmax(2·cls·text) weights — needs a label set, so
  the phrase-grounding contract uses the empty-string variant.
- The reference's demo encodes texts with an 85-template prompt ensemble; the contract uses no template.
- The reference interpolates positional embeddings for other input sizes; the contract feeds the model's own
  input size (224 for every paper backbone), so none is needed.
"""
from __future__ import annotations

import warnings

import torch

from grounding.models.vit import blocks as tower_blocks
from grounding.models.vit import dual_path, merge_heads, qkv

from .base import Param, register_method
from .patch import PatchMethod, knob_params

DEFAULTS = {"blocks": 6}
TEXT_MODE = "minus_empty"


def _surgery_attention(attn, h: torch.Tensor):
    """Both attentions of a surgery block on ``h = ln_1(x̃)`` (B, N, D): (v–v output, q–k output),
    each through the block's out-projection (``Attention.forward`` of clip_surgery_model.py)."""
    q, k, v = qkv(attn, h)
    scale = q.shape[-1] ** -0.5
    a_ori = torch.softmax((q @ k.transpose(-2, -1)) * scale, dim=-1)
    a_vv = torch.softmax((v @ v.transpose(-2, -1)) * scale, dim=-1)
    return merge_heads(attn, a_vv @ v), merge_heads(attn, a_ori @ v)


@torch.no_grad()
def patch_tokens(visual, x: torch.Tensor, blocks: int = DEFAULTS["blocks"]) -> torch.Tensor:
    """CLIP Surgery's new-path patch embeddings (B, g², E) after ``ln_post`` and ``proj`` (not normalised)."""
    layers = tower_blocks(visual)
    if blocks < 1:
        raise ValueError(f"clip_surgery: blocks must be >= 1, got {blocks}")
    if blocks > len(layers):  # a shallow tower (e.g. the toy): every block
        warnings.warn(f"clip_surgery: blocks={blocks} but the tower has {len(layers)}: using all")
        blocks = len(layers)
    return dual_path(visual, x, blocks, _surgery_attention)  # ResidualAttentionBlock.forward, dual path


# ------------------------------------------------------------------------------------- the method
@register_method("clip_surgery")
class CLIPSurgery(PatchMethod):
    """CLIP Surgery (Li et al., 2023): dual path with v-v attention in the last 6 blocks; similarity patch·(text−empty)."""

    PARAMS = knob_params(DEFAULTS, blocks=Param("int", "dual-path blocks at the end of the tower", lambda v: v >= 1, "(>= 1)"))
    TEXT_MODE = TEXT_MODE
    tokens = staticmethod(patch_tokens)
