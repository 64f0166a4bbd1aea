"""Ours, ViT (paper §3.2, §4.3): region tokens over multi-scale SLIC regions.

Every SLIC region gets a *region token*, initialised from the class token, that attends in every block
only to the patch tokens inside its region and to itself (:func:`region_token_attention`, Eq. 7). Patch
and class tokens run the unmodified CLIP forward. The stem convolution's stride is divided by
``upsample`` and the positional embeddings are bilinearly interpolated to the finer grid
(:func:`upsample_positional_embedding`).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.vit import block_forward, fused_self_attention, layer_scale, prefix_tokens
from ..stages.regions import Regions, slic_regions
from ..stages.score_map import AGGREGATIONS, aggregate_regions, minmax_normalise, phi
from .base import BOX_PARAMS, ConfigError, Param, all_positive, positive, register_method
from .dense import DenseMethod, Prepared


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


def patch_labels(regions: Regions, grid: int) -> np.ndarray:
    """(S, grid²) int64: the flat index of the region owning each patch, per SLIC scale.

    Each label map is resampled to the patch grid with nearest-neighbour interpolation (as the
    reference resamples each region mask), i.e. patch (i, j) takes the label of pixel
    (⌊i·H/grid⌋, ⌊j·W/grid⌋).
    """
    lab = torch.from_numpy(regions.flat_labels())
    sampled = F.interpolate(lab[:, None].float(), size=(grid, grid), mode="nearest")[:, 0].long()
    return sampled.reshape(sampled.shape[0], -1).numpy()


def patch_membership(regions: Regions, grid: int, device) -> torch.Tensor:
    """(R, grid²) bool: which patches each region's token may attend to (see :func:`patch_labels`).

    A region too small to own a patch centre has an empty row: its token attends only to itself.
    """
    sampled = patch_labels(regions, grid)
    member = np.zeros((regions.n_regions, grid * grid), dtype=bool)
    cols = np.arange(grid * grid)
    for s in range(sampled.shape[0]):
        member[sampled[s], cols] = True
    return torch.from_numpy(member).to(device)


def distinct_memberships(member: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Rows of the (R, P) bool membership that are distinct, and where every region maps to.

    Returns ``(first, inverse)``: ``member[first]`` are the distinct rows in order of first occurrence
    and ``member[first][inverse] == member``. Region tokens depend on nothing but their membership
    (they start as the class token and never attend to each other, Eq. 7), so computing one token per
    distinct row and gathering with ``inverse`` is exact. This includes the regions that own no patch
    (an empty row): their token attends only to itself and is the same for all of them.
    """
    packed = np.packbits(member, axis=1)
    _, first, inverse = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse]


def bucket_length(n: int) -> int:
    """Padded key count of a region owning ``n`` patches: exact up to 16, then rounded up so that
    padding stays below 1/8 (17 → 18, 100 → 104, 784 → 832): few buckets, little padding."""
    if n <= 16:
        return n
    step = 2 ** (int(math.floor(math.log2(n))) - 3)
    return -(-n // step) * step


def segment_groups(sizes: np.ndarray, cols: np.ndarray, device) -> List[Tuple[torch.Tensor, Optional[torch.Tensor],
                                                                             Optional[torch.Tensor]]]:
    """Bucket regions given in CSR form (``sizes`` patches each, their patch indices ``cols`` concatenated)
    by :func:`bucket_length`. Returns ``(rows, idx, valid)`` per bucket: the region rows, their (n, L) patch
    indices (padded with the region's first patch; ``None`` for regions owning no patch) and the (n, L)
    mask of real entries (``None`` when no entry is padding)."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    keys = np.fromiter((bucket_length(int(n)) for n in sizes), dtype=np.int64, count=len(sizes))
    groups = []
    for L in np.unique(keys):
        rows = np.nonzero(keys == L)[0]
        if L == 0:
            groups.append((torch.from_numpy(rows).to(device), None, None))
            continue
        ar = np.arange(L)[None]
        valid = ar < sizes[rows][:, None]
        pos = np.where(valid, starts[rows][:, None] + ar, starts[rows][:, None])
        idx = torch.from_numpy(cols[pos]).to(device)
        groups.append((torch.from_numpy(rows).to(device), idx,
                       None if valid.all() else torch.from_numpy(valid).to(device)))
    return groups


def region_token_attention(attn: nn.MultiheadAttention, x_patch: torch.Tensor, x_region: torch.Tensor,
                           member: torch.Tensor) -> torch.Tensor:
    """Masked attention of region tokens (paper Eq. 7), dense form: the test oracle of
    :func:`region_token_attention_segments` (``vit_region_embeddings(..., dense=True)``).

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


def region_token_attention_segments(attn: nn.MultiheadAttention, k_patch: torch.Tensor, v_patch: torch.Tensor,
                                    x_region: torch.Tensor, groups) -> torch.Tensor:
    """Masked attention of region tokens (paper Eq. 7) over each region's own patches only.

    The same function as :func:`region_token_attention` (exact up to fp32 rounding), without the
    regions × patches score matrix: each region's keys and values are gathered from ``k_patch`` /
    ``v_patch`` (N, D; the patch tokens' projections) by :func:`segment_groups`, so memory and work
    per layer are proportional to the regions' sizes. ``x_region`` (R, D) is already layer-normed.
    """
    d = x_region.shape[-1]
    h = attn.num_heads
    hd = d // h
    q, k_r, v_r = F.linear(x_region, attn.in_proj_weight, attn.in_proj_bias).split(d, dim=-1)  # one GEMM
    q = q * hd ** -0.5
    out = torch.empty_like(q)
    for rows, idx, valid in groups:
        if idx is None:  # no patch: softmax over the token itself alone is 1
            out[rows] = v_r[rows]
            continue
        n, L = idx.shape
        qg = q[rows].reshape(n, 1, h, hd)
        s_p = (qg * k_patch[idx].reshape(n, L, h, hd)).sum(-1).transpose(1, 2)  # (n, h, L)
        if valid is not None:
            s_p = s_p.masked_fill(~valid[:, None], float("-inf"))
        s_r = (qg[:, 0] * k_r[rows].reshape(n, h, hd)).sum(-1, keepdim=True)  # (n, h, 1)
        p = torch.softmax(torch.cat([s_p, s_r], -1).float(), -1).to(q.dtype)
        o = torch.matmul(p[:, :, None, :L], v_patch[idx].reshape(n, L, h, hd).transpose(1, 2))[:, :, 0]
        out[rows] = (o + p[..., L:] * v_r[rows].reshape(n, h, hd)).reshape(n, d)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


def _input_tokens(visual, images: torch.Tensor, upsample: int, stem_padding) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1 + g², D) after the strided stem, class token, interpolated positions, ln_pre."""
    dtype = visual.conv1.weight.dtype
    stride, pad = stem_geometry(visual, upsample, stem_padding)
    x = F.conv2d(images.to(dtype), visual.conv1.weight, stride=stride, padding=pad)  # (B, D, g, g)
    grid = x.shape[-1]
    if x.shape[-2] != grid:
        raise ValueError("ViT region tokens need a square input")
    x = x.flatten(2).transpose(1, 2)  # (B, P, D)
    cls = visual.class_embedding.to(dtype).reshape(1, 1, -1).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], 1)
    x = x + upsample_positional_embedding(visual.positional_embedding, grid,
                                          fp16=stem_padding == "reference").to(dtype)
    return visual.ln_pre(x)


@torch.no_grad()
def vit_region_embeddings_batch(visual, images, regions_list: Sequence[Regions], *,
                                upsample: int = 2, stem_padding="reference", region_chunk: int = 4096,
                                dedup: bool = True, dense: bool = False) -> List[torch.Tensor]:
    """Region-token embeddings of several images in one forward: paper §3.2, Eq. 7.

    ``images``: normalised (B, 3, H, W) tensor or a list of (1, 3, H, W); returns one (R_b, E) tensor per
    image. Patch and class tokens run the unmodified CLIP forward, batched. Region tokens of all images
    are then processed together (each attends only to its own image's patches).

    * ``dedup``: one token per distinct patch membership per image (:func:`distinct_memberships`), exact.
    * ``dense``: the regions × patches masked attention (:func:`region_token_attention`), kept as the
      oracle of the default segment attention (:func:`region_token_attention_segments`).
    * ``region_chunk`` bounds memory: region tokens never interact, so chunks are exact.
    ``dedup=False, dense=True`` is the original algorithm, token for token.
    """
    if isinstance(images, (list, tuple)):
        images = torch.cat(list(images), 0)
    if images.shape[0] != len(regions_list):
        raise ValueError(f"{images.shape[0]} images but {len(regions_list)} region sets")
    x = _input_tokens(visual, images, upsample, stem_padding)  # (B, 1 + P, D)
    n_img, n_tok, _ = x.shape
    grid = int(round(math.sqrt(n_tok - 1)))
    n_patch = grid * grid
    device = x.device

    # Patch and class tokens: the unmodified forward, once. Keep each block's ln_1(patches), flattened.
    ln_patches, tokens = [], x  # batch-first (grounding.models.vit: OpenAI and open_clip towers alike)
    for block in visual.transformer.resblocks:
        ln_patches.append(block.ln_1(tokens[:, 1:]).reshape(n_img * n_patch, -1))
        tokens = block_forward(block, tokens, fused_self_attention)

    sizes, cols, owner, inverses = _region_rows(regions_list, grid, dedup, device)
    r = x[torch.from_numpy(owner).to(device), 0]  # region tokens start as the class token
    chunks = _region_chunks(sizes, cols, n_img * n_patch, region_chunk, dense, device)
    r = _region_blocks(visual, r, ln_patches, chunks, dense)
    r = visual.ln_post(r)
    if visual.proj is not None:
        r = r @ visual.proj
    return [r[inv] for inv in inverses]


def _region_rows(regions_list: Sequence[Regions], grid: int, dedup: bool, device):
    """The region tokens to compute, in CSR form over the flattened (image, patch) index: each row's size
    (patches), columns and owning image, and per image the rows of its regions (``inverses``)."""
    n_patch = grid * grid
    sizes, cols, owner, inverses, n_rows = [], [], [], [], 0
    for b, regions in enumerate(regions_list):
        member = patch_membership(regions, grid, "cpu").numpy()
        if dedup:
            first, inv = distinct_memberships(member)
            member = member[first]
        else:
            inv = np.arange(member.shape[0])
        _, c = np.nonzero(member)
        sizes.append(member.sum(1))
        cols.append(c + b * n_patch)
        owner.append(np.full(member.shape[0], b))
        inverses.append(torch.from_numpy(inv + n_rows).to(device))
        n_rows += member.shape[0]
    return np.concatenate(sizes), np.concatenate(cols), np.concatenate(owner), inverses


def _region_chunks(sizes, cols, n_cols: int, region_chunk: int, dense: bool, device):
    """(lo, hi, attention structure) per chunk of rows: a dense rows × patches mask, or segment groups."""
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    chunks = []
    for lo in range(0, len(sizes), region_chunk):
        hi = min(lo + region_chunk, len(sizes))
        if dense:
            m = torch.zeros(hi - lo, n_cols, dtype=torch.bool)
            m[np.repeat(np.arange(hi - lo), sizes[lo:hi]), cols[starts[lo]:starts[hi]]] = True
            chunks.append((lo, hi, m.to(device)))
        else:
            chunks.append((lo, hi, segment_groups(sizes[lo:hi], cols[starts[lo]:starts[hi]], device)))
    return chunks


def _region_blocks(visual, r: torch.Tensor, ln_patches, chunks, dense: bool) -> torch.Tensor:
    """The region tokens ``r`` through every block, each attending only to its region's patches (Eq. 7)."""
    d = r.shape[-1]
    for block, ln_patch in zip(visual.transformer.resblocks, ln_patches):
        w, bias = block.attn.in_proj_weight, block.attn.in_proj_bias
        if not dense:
            k_p = F.linear(ln_patch, w[d:2 * d], bias[d:2 * d])
            v_p = F.linear(ln_patch, w[2 * d:], bias[2 * d:])
        parts = []
        for lo, hi, how in chunks:
            rc = r[lo:hi]
            if dense:
                a = region_token_attention(block.attn, ln_patch, block.ln_1(rc), how)
            else:
                a = region_token_attention_segments(block.attn, k_p, v_p, block.ln_1(rc), how)
            rc = rc + layer_scale(block, 1)(a)
            parts.append(rc + layer_scale(block, 2)(block.mlp(block.ln_2(rc))))
        r = torch.cat(parts, 0)
    return r


def vit_region_embeddings(visual, image: torch.Tensor, regions: Regions, *,
                          upsample: int = 2, stem_padding="reference", region_chunk: int = 4096,
                          dedup: bool = True, dense: bool = False) -> torch.Tensor:
    """Region-token embeddings (R, E) for one normalised image (1, 3, H, W): paper §3.2, Eq. 7.

    See :func:`vit_region_embeddings_batch` for the options (defaults: each distinct region once,
    attention over each region's own patches).
    """
    return vit_region_embeddings_batch(visual, image, [regions], upsample=upsample, stem_padding=stem_padding,
                                       region_chunk=region_chunk, dedup=dedup, dense=dense)[0]


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
    paper_defaults = "ours"
    uses_regions = True

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        if not getattr(self.backbone, "has_class_token", True):
            raise ValueError(f"method {self.name!r} builds region tokens from the class token, which backbone "
                             f"{self.backbone.name} has none of; choose a patch-token method (maskclip, sclip, …)")

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

    def prepare_features(self, items) -> None:
        """Region tokens of several images in one forward (:func:`vit_region_embeddings_batch`; the runner
        calls this with ``batch_images`` > 1, the default on CUDA). ``items``: (prepared, phrases) pairs;
        images whose cosines are all cached are left out. Exact: the same tokens as one image at a time."""
        items = [(self.own(p), phrases) for p, phrases in items]
        todo = [p for p, phrases in items if p._features is None and not (
            self.cache is not None and all(self.cache.has(self.cache_key("cos", p, ph)) for ph in phrases))]
        if len(todo) < 2 or len({repr(p.params) for p in todo}) != 1:
            return
        prm = todo[0].params
        embs = vit_region_embeddings_batch(self.backbone.visual, torch.cat([self.input_tensor(p) for p in todo]),
                                           [p.regions for p in todo], upsample=int(prm["upsample"]),
                                           stem_padding=prm.get("stem_padding", "reference"))
        for p, e in zip(todo, embs):
            p._features = e

    def score_map_from_cosines(self, prepared: Prepared, cos: np.ndarray, params) -> np.ndarray:
        m = aggregate_regions(prepared.regions, phi(cos, params["temperature"]), params["aggregation"])
        return minmax_normalise(m)
