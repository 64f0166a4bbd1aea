"""GEM — Grounding Everything Module (Bousselham, Petersen, Ferrari, Kuehne, CVPR 2024): a dual path whose
new branch uses normalised, iterated self-self attention (q–q, k–k, v–v, ensembled) in the last blocks.

Follows WalBouss/GEM, ``gem/gem_utils.py`` (``SelfSelfAttention.forward``, ``GEMResidualBlock.forward``,
``modified_vit_forward``) as installed by ``gem/gem_wrapper.py::GEMWrapper.apply_gem`` with the defaults of
``GEMWrapper`` / ``gem/gem.py::create_gem_model``: ``depth=7``, ``ss_attn_iter=1``, ``ss_attn_temp=None``.

In math. Let L be the number of blocks; the last ``depth − 1`` (= 6; ``for i in range(1, depth):
resblocks[-i]``) are modified, the earlier ones run unchanged. At the input x of the first modified block
both paths start equal, x̃ = x (original) and x̂ = x (GEM). In every modified block, with
``h = ln_1(x̃)`` — the attention input is ALWAYS the original path — and q, k, v the block's in-projection
of h split into H heads of size c = D/H:

    τ⁻¹ = c^{-1/2} · mean_n ‖h_n‖₂                      (adaptive inverse temperature, per image;
                                                        a fixed number when ``inv_temperature`` is one)
    for p in (v, k, q):
        z ← p;  repeat ``iterations`` times:  z ← n(z);  z ← softmax(τ⁻¹ z zᵀ) z      (self-self iteration)
        z ← n(z);  o_p = softmax(τ⁻¹ z zᵀ) v                                          (assignment to v)
    x̂ ← x̂ + W_o · (o_v + o_k + o_q) / 3                 (residual kept, NO FFN on the GEM path)
    x̃ ← x̃ + W_o · softmax(q kᵀ / √c) v ;  x̃ ← x̃ + mlp(ln_2(x̃))       (CLIP's own block)

with n(·) the L2 normalisation over each head's channels (``F.normalize``, eps 1e-12). The class token
takes part in every attention (no mask). Patch outputs: ``ln_post(x̂) · proj`` (GEM path, all tokens; the
class token is not replaced). On LayerScale towers ``ls_1`` scales both attention residuals and ``ls_2``
the FFN, as ``GEMResidualBlock`` does.

Variants / behaviour of the source not used here:
- ``GEMWrapper.encode_text`` wraps every phrase in the prompt "a photo of a {}." — the zoo contract
  uses no template.
- ``GEMWrapper.forward`` min–max normalises the bilinearly upsampled cosine map without exp(cos/σ);
  ``batched_forward`` multiplies cosines by 100 first. The contract's φ and box search replace both.
- ``ss_attn_temp`` (our ``inv_temperature``) fixed instead of adaptive; ``ss_attn_iter`` > 1;
  ``gem_depth`` other than 7; ``return_ori=True`` gives CLIP's own (original path) features.
- ``modified_vit_forward`` resamples positional embeddings (bicubic, antialiased) for other input sizes
  (its demo feeds 448×448); the contract feeds the model's own input size, where it is the identity.
- The repository pins ``open_clip_torch<=2.23.0``: its forward permutes tokens to sequence-first before
  ``visual.transformer``, which only open_clip ≤ 2.23 towers expect (3.x towers are batch-first and would
  mix the tokens of a sequence into the batch dimension in the unmodified blocks).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from grounding.models.vit import blocks as tower_blocks
from grounding.models.vit import dual_path, merge_heads, qkv

from .base import Param, register_method
from .patch import PatchMethod, knob_params

DEFAULTS = {"depth": 7, "iterations": 1, "inv_temperature": "auto"}
TEXT_MODE = "plain"


def _adaptive_inv_temperature(h: torch.Tensor, head_dim: int) -> torch.Tensor:
    """τ⁻¹ = head_dim^{-1/2} · mean over tokens of ‖h‖₂, per image, as (B, 1, 1, 1) to broadcast over heads
    (``SelfSelfAttention.forward`` with ``ss_attn_temp=None``, gem_utils.py)."""
    return h.norm(dim=-1).mean(dim=-1)[:, None, None, None] * head_dim ** -0.5


def _self_self_attention(p: torch.Tensor, v: torch.Tensor, inv_temp, iterations: int) -> torch.Tensor:
    """Iterated normalised p–p attention, then its assignment to v: (B, H, N, c) → (B, H, N, c)."""
    z = p
    for _ in range(iterations):
        z = F.normalize(z, dim=-1)
        z = torch.softmax((z @ z.transpose(-2, -1)) * inv_temp, dim=-1) @ z
    z = F.normalize(z, dim=-1)
    return torch.softmax((z @ z.transpose(-2, -1)) * inv_temp, dim=-1) @ v


def _gem_attention(attn, h: torch.Tensor, iterations: int, inv_temperature):
    """Both attentions of a GEM block on ``h = ln_1(x̃)``: (GEM output, q–k output), each through the
    out-projection. GEM output = mean of the v–v, k–k and q–q self-self attentions applied to v."""
    q, k, v = qkv(attn, h)
    c = q.shape[-1]
    a_ori = torch.softmax((q @ k.transpose(-2, -1)) * c ** -0.5, dim=-1)
    inv_temp = _adaptive_inv_temperature(h, c) if inv_temperature == "auto" else float(inv_temperature)
    o = (_self_self_attention(v, v, inv_temp, iterations) + _self_self_attention(k, v, inv_temp, iterations)
         + _self_self_attention(q, v, inv_temp, iterations)) / 3
    return merge_heads(attn, o), merge_heads(attn, a_ori @ v)


@torch.no_grad()
def patch_tokens(visual, x: torch.Tensor, depth: int = DEFAULTS["depth"], iterations: int = DEFAULTS["iterations"],
                 inv_temperature=DEFAULTS["inv_temperature"]) -> torch.Tensor:
    """GEM-path patch embeddings (B, g², E) after ``ln_post`` and ``proj`` (not normalised)."""
    layers = tower_blocks(visual)
    if depth < 2:
        raise ValueError(f"gem: depth must be >= 2 (it modifies the last depth-1 blocks), got {depth}")
    if depth - 1 > len(layers):  # a shallow tower (e.g. the toy): every block, as a slice [-(depth-1):] would
        warnings.warn(f"gem: depth={depth} asks for {depth - 1} blocks; the tower has {len(layers)}: using all")
        depth = len(layers) + 1
    if iterations < 0:
        raise ValueError(f"gem: iterations must be >= 0, got {iterations}")
    if inv_temperature != "auto" and not isinstance(inv_temperature, (int, float)):
        raise ValueError(f"gem: inv_temperature must be 'auto' or a number, got {inv_temperature!r}")
    return dual_path(visual, x, depth - 1,  # GEMResidualBlock.forward: GEM path, no FFN
                     lambda attn, h: _gem_attention(attn, h, iterations, inv_temperature))


# ------------------------------------------------------------------------------------- the method
@register_method("gem")
class GEM(PatchMethod):
    """GEM (Bousselham et al., CVPR 2024): dual path with q-q/k-k/v-v self-self attention in the last 6 blocks."""

    PARAMS = knob_params(
        DEFAULTS,
        depth=Param("int", "the dual path runs in the last depth-1 blocks", lambda v: v >= 2, "(>= 2)"),
        iterations=Param("int", "self-self iterations", lambda v: v >= 1, "(>= 1)"),
        inv_temperature=Param("float_or_auto", "1/τ of self-self attention, or auto (adaptive, as GEM)"))
    TEXT_MODE = TEXT_MODE
    tokens = staticmethod(patch_tokens)
