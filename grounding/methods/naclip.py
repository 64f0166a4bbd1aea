"""NACLIP (Hajimiri, Ben Ayed, Dolz, WACV 2025): neighbourhood-aware k–k attention in a reduced last block.

Follows sinahmr/NACLIP, ``clip/model.py`` — ``VisionTransformer.forward`` with ``arch='reduced'`` and
``VisionTransformer.custom_attn`` with ``attn_strategy='naclip'``, ``gaussian_std=5`` (the defaults of the
``NACLIP`` segmentor in ``naclip.py`` and of the README's command ``test_all.sh reduced naclip 5 …``), plus
``gaussian_window`` / ``get_attention_addition`` for the neighbourhood term.

With ``x`` the input of the last block L (all ``1 + g²`` tokens, class token included), per head h (head
width d = D / heads), patch p at grid position (r_p, c_p) (row-major, g×g)::

    z      = ln_1(x)
    k_h, v_h = z W_k,h + b_k,h ,  z W_v,h + b_v,h          (queries are NOT used)
    Ω[p, p'] = exp(−((r_p − r_p')² + (c_p − c_p')²) / (2 σ²))  for two patches, 0 in the class row/column
    A_h    = softmax(k_h k_hᵀ / √d + Ω)                     (row-wise over all 1 + g² tokens)
    o      = out_proj(concat_h A_h v_h)
    tokens = proj(ln_post(o))[1:]                           (no "x +" residual, no ln_2 / MLP)

σ = ``gaussian_std`` (patch units; a Gaussian of peak 1, not normalised) — the authors build Ω as the 'same'
convolution of one-hot patch maps with a (2g−1)² window, which equals the closed form above. Blocks
0 … L−1 run unmodified; the last block's ordinary output is discarded. One modified block, the model's own
heads, temperature 1/√d on k kᵀ only (Ω is added unscaled).

Other variants the source offers (not used here): ``arch='vanilla'`` (keeps ``x + attn`` and
``+ mlp(ln_2(·))``); ``attn_strategy='nonly'`` (Ω only, scaled by the mean of ‖q‖‖k‖/√d), ``'kk'``
(softmax(k kᵀ/√d), no Ω), ``'csa'`` (SCLIP's softmax(q qᵀ/√d) + softmax(k kᵀ/√d), vanilla arch only),
``'vanilla'`` (CLIP's q kᵀ). The segmentor also resizes the short side to 336 (560 on Cityscapes), slides
224-crops with stride 112 (VOC configs: the whole image), interpolates positional embeddings, refines logits
with PAMR (10 steps, dilations 8 and 16) and applies a softmax over classes with logit scale 40 — none of that
is part of this package's contract.
"""
from __future__ import annotations

import torch

from grounding.models.vit import last_block_replaced, merge_heads, qkv

from .base import Param, positive, register_method
from .patch import PatchMethod, knob_params

DEFAULTS: dict = {"gaussian_std": 5.0}
TEXT_MODE = "plain"


def neighbourhood_bias(g: int, std: float, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """NACLIP's Ω (``get_attention_addition`` of ``gaussian_window(2g−1, 2g−1, std)``): (1 + g², 1 + g²), the
    unnormalised Gaussian exp(−‖pos_p − pos_p'‖² / 2σ²) between patches of the g×g grid, zero for the class
    token's row and column."""
    if not std > 0:
        raise ValueError(f"gaussian_std must be > 0, got {std}")
    r, c = torch.meshgrid(torch.arange(g, dtype=torch.float64), torch.arange(g, dtype=torch.float64), indexing="ij")
    pos = torch.stack([r.flatten(), c.flatten()], 1)
    omega = torch.exp(-torch.cdist(pos, pos).square() / (2.0 * std * std))
    out = torch.zeros(g * g + 1, g * g + 1, dtype=torch.float64)
    out[1:, 1:] = omega
    return out.to(dtype=dtype, device=device)


def neighbourhood_kk_attention(attn, z: torch.Tensor, grid: int, std: float) -> torch.Tensor:
    """NACLIP's attention (``custom_attn``, attn_strategy 'naclip'): out_proj(softmax(k kᵀ/√d + Ω) v) on
    batch-first ``z`` (already ``ln_1``-normalised, class token first), heads of ``attn``."""
    _, k, v = qkv(attn, z)
    omega = neighbourhood_bias(grid, std, dtype=k.dtype, device=k.device)[-k.shape[-2]:, -k.shape[-2]:]  # no class token: patches only
    a = torch.softmax((k * k.shape[-1] ** -0.5) @ k.transpose(-2, -1) + omega, dim=-1)
    return merge_heads(attn, a @ v)


@torch.no_grad()
def patch_tokens(visual, x: torch.Tensor, gaussian_std: float = DEFAULTS["gaussian_std"]) -> torch.Tensor:
    """NACLIP patch embeddings (B, g², E) after ``ln_post`` and ``proj``, not normalised."""
    def reduced_block(last, t):  # arch 'reduced': no residual, no FFN
        grid = int(round((t.shape[1] - 1) ** 0.5))
        return neighbourhood_kk_attention(last.attn, last.ln_1(t), grid, float(gaussian_std))

    return last_block_replaced(visual, x, reduced_block)


# ------------------------------------------------------------------------------------- the method
@register_method("naclip")
class NACLIP(PatchMethod):
    """NACLIP (Hajimiri et al., WACV 2025): last block = k-k attention + Gaussian neighbourhood bias (no residual, no FFN)."""

    PARAMS = knob_params(DEFAULTS, gaussian_std=Param("float", "σ of the Gaussian neighbourhood prior, in patches", positive, "(> 0)"))
    TEXT_MODE = TEXT_MODE
    tokens = staticmethod(patch_tokens)
