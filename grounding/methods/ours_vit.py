"""Ours, ViT (paper §3.2, §4.3): region tokens over multi-scale SLIC regions.

Every SLIC region gets a *region token*, initialised from the class token, that attends in every block
only to the patch tokens inside its region and to itself (:func:`region_token_attention`, Eq. 7). Patch
and class tokens run the unmodified CLIP forward. The stem convolution's stride is divided by
``upsample`` and the positional embeddings are bilinearly interpolated to the finer grid
(:func:`upsample_positional_embedding`).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.vit import block_forward, layer_scale
from ..stages.regions import Regions, slic_regions
from ..stages.score_map import AGGREGATIONS, aggregate_regions, minmax_normalise, phi
from .base import BOX_PARAMS, Param, all_positive, positive, register_method
from .dense import DenseMethod, Prepared
from .hparams import paper_hparams

def stem_geometry(visual, upsample: int, stem_padding="reference") -> Tuple[int, int]:
    """Stride and padding of the patch-embedding convolution.

    stride = patch // upsample. The reference pads by (patch - 1) // 2 at every upsample factor
    (``stem_padding="reference"``, which also stores the positional embeddings in fp16, see
    :func:`upsample_positional_embedding`); ``stem_padding=0`` gives the unmodified CLIP stem at upsample 1.
    """
    p = int(visual.conv1.kernel_size[0])
    if upsample < 1 or p % upsample:
        raise ValueError(f"upsample={upsample} must be a positive divisor of the patch size {p}")
    pad = (p - 1) // 2 if stem_padding == "reference" else int(stem_padding)
    return p // upsample, pad


def upsample_positional_embedding(pos: torch.Tensor, grid: int, fp16: bool = True) -> torch.Tensor:
    """Bilinearly interpolate the (1 + g², D) patch positional embeddings to ``grid``² positions.

    The class-token embedding is kept. With ``fp16`` (as the reference, which stores the result as a
    half-precision parameter on every device and at every upsample factor, 1 included) all rows are
    rounded through fp16; OpenAI's checkpoints already hold fp16 values, fp32 state dicts may not.
    """
    cls_pos, patch_pos = pos[:1], pos[1:]
    g = int(round(math.sqrt(patch_pos.shape[0])))
    if g * g != patch_pos.shape[0]:
        raise ValueError("positional embedding is not a square grid")
    if grid == g:
        return pos.half().to(pos.dtype) if fp16 else pos
    d = patch_pos.shape[1]
    x = patch_pos.float().t().reshape(1, d, g, g)
    x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
    x = x.reshape(d, grid * grid).t()
    out = torch.cat([cls_pos.float(), x], 0)
    return out.half().to(pos.dtype) if fp16 else out.to(pos.dtype)


def patch_membership(regions: Regions, grid: int, device) -> torch.Tensor:
    """(R, grid²) bool: which patches each region's token may attend to.

    Each region mask is resampled to the patch grid with nearest-neighbour interpolation (as the
    reference), i.e. patch (i, j) belongs to the region containing pixel (⌊i·H/grid⌋, ⌊j·W/grid⌋).
    """
    lab = torch.from_numpy(regions.flat_labels()).to(device)
    sampled = F.interpolate(lab[:, None].float(), size=(grid, grid), mode="nearest")[:, 0].long()
    sampled = sampled.reshape(sampled.shape[0], -1)  # (S, P)
    member = torch.zeros(regions.n_regions, grid * grid, dtype=torch.bool, device=device)
    for s in range(sampled.shape[0]):
        member[sampled[s], torch.arange(grid * grid, device=device)] = True
    return member


def region_token_attention(attn: nn.MultiheadAttention, x_patch: torch.Tensor, x_region: torch.Tensor,
                           member: torch.Tensor) -> torch.Tensor:
    """Masked attention of region tokens (paper Eq. 7).

    Region token r attends to the patch tokens in its region and to itself; not to the class token
    nor to other region tokens. ``x_patch`` (P, D) and ``x_region`` (R, D) are already layer-normed.
    Cost is O(R·P) — the region-to-region block, all masked except the diagonal, is never formed.
    """
    d = x_patch.shape[-1]
    h = attn.num_heads
    hd = d // h
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(x_region, w[:d], b[:d]).reshape(-1, h, hd).transpose(0, 1) * hd ** -0.5  # (h, R, hd)
    k_r = F.linear(x_region, w[d:2 * d], b[d:2 * d]).reshape(-1, h, hd).transpose(0, 1)
    v_r = F.linear(x_region, w[2 * d:], b[2 * d:]).reshape(-1, h, hd).transpose(0, 1)
    k_p = F.linear(x_patch, w[d:2 * d], b[d:2 * d]).reshape(-1, h, hd).transpose(0, 1)  # (h, P, hd)
    v_p = F.linear(x_patch, w[2 * d:], b[2 * d:]).reshape(-1, h, hd).transpose(0, 1)
    s_p = torch.matmul(q, k_p.transpose(1, 2))  # (h, R, P)
    s_p = s_p.masked_fill(~member[None], float("-inf"))
    s_r = (q * k_r).sum(-1, keepdim=True)  # (h, R, 1)
    p = torch.softmax(torch.cat([s_p, s_r], -1).float(), -1).to(q.dtype)
    out = torch.matmul(p[..., :-1], v_p) + p[..., -1:] * v_r  # (h, R, hd)
    out = out.transpose(0, 1).reshape(-1, d)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


@torch.no_grad()
def vit_region_embeddings(visual, image: torch.Tensor, regions: Regions, *,
                          upsample: int = 2, stem_padding="reference", region_chunk: int = 4096) -> torch.Tensor:
    """Region-token embeddings (R, E) for one normalised image (1, 3, H, W): paper §3.2, Eq. 7.

    ``region_chunk`` bounds memory: region tokens never interact, so chunks are exact.
    """
    dtype = visual.conv1.weight.dtype
    x = image.to(dtype)
    stride, pad = stem_geometry(visual, upsample, stem_padding)
    x = F.conv2d(x, visual.conv1.weight, stride=stride, padding=pad)  # (1, D, g, g)
    grid = x.shape[-1]
    if x.shape[-2] != grid:
        raise ValueError("ViT region tokens need a square input")
    x = x.flatten(2).transpose(1, 2)  # (1, P, D)
    cls = visual.class_embedding.to(dtype).reshape(1, 1, -1)
    x = torch.cat([cls, x], 1)
    x = x + upsample_positional_embedding(visual.positional_embedding, grid,
                                          fp16=stem_padding == "reference").to(dtype)
    x = visual.ln_pre(x)[0]  # (1 + P, D)

    member = patch_membership(regions, grid, x.device)
    # Patch and class tokens: the unmodified forward, once. Keep each block's ln_1(patches).
    ln_patches, tokens = [], x
    for block in visual.transformer.resblocks:
        ln_patches.append(block.ln_1(tokens[1:]))
        tokens = block_forward(block, tokens[None])[0]
    outs = []
    for start in range(0, member.shape[0], region_chunk):
        m = member[start:start + region_chunk]
        r = x[:1].expand(m.shape[0], -1).clone()  # region tokens start as the class token
        for block, ln_patch in zip(visual.transformer.resblocks, ln_patches):
            r = r + layer_scale(block, 1)(region_token_attention(block.attn, ln_patch, block.ln_1(r), m))
            r = r + layer_scale(block, 2)(block.mlp(block.ln_2(r)))
        r = visual.ln_post(r)
        if visual.proj is not None:
            r = r @ visual.proj
        outs.append(r)
    return torch.cat(outs, 0)


# ------------------------------------------------------------------------------------- the method
def _stem_padding_ok(v) -> bool:
    return v == "reference" or (isinstance(v, int) and v >= 0)


VIT_PARAMS = dict(
    BOX_PARAMS,
    n_segments=Param("int_list", "SLIC scales, e.g. [100,150,...,600]", all_positive, "(each > 0)", feature=True),
    compactness=Param("float", "SLIC compactness", positive, "(> 0)", feature=True),
    sigma=Param("float", "SLIC Gaussian smoothing", lambda v: v >= 0, "(>= 0)", feature=True),
    upsample=Param("int", "stem stride divisor", lambda v: v >= 1, "(>= 1)", feature=True),
    aggregation=Param("str", "mean | median | max | min over the regions covering a pixel", choices=AGGREGATIONS),
    stem_padding=Param("int_or_str", '"reference" ((patch-1)//2) or an int', _stem_padding_ok,
                       '("reference" or an int >= 0)', feature=True),
)


@register_method("ours_vit")
class OursViT(DenseMethod):
    """Ours on a ViT: region tokens over multi-scale SLIC regions; the map is the min–max normalised
    mean φ of the regions covering each pixel."""

    PARAMS = VIT_PARAMS
    uses_regions = True

    @classmethod
    def default_params(cls, backbone, family):
        return paper_hparams(backbone.key, "ours", family)

    def regions(self, prepared: Prepared) -> Regions:
        p = prepared.params
        key = self.cache_key("slic", prepared) if self.cache is not None else None
        hit = self.cache.get(key) if key else None
        if hit is not None:
            return Regions(labels=hit["labels"].astype(np.int32), counts=hit["counts"].tolist())
        regions = slic_regions(prepared.resized, p["n_segments"], p["compactness"], p["sigma"])
        if key:
            self.cache.put(key, labels=regions.labels.astype(np.int16), counts=np.asarray(regions.counts))
        return regions

    def features(self, prepared: Prepared) -> torch.Tensor:
        p = prepared.params
        return vit_region_embeddings(self.backbone.visual, self.input_tensor(prepared), prepared.regions,
                                     upsample=int(p["upsample"]), stem_padding=p.get("stem_padding", "reference"))

    def score_map_from_cosines(self, prepared: Prepared, cos: np.ndarray, params) -> np.ndarray:
        m = aggregate_regions(prepared.regions, phi(cos, params["temperature"]), params["aggregation"])
        return minmax_normalise(m)
