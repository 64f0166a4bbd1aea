"""Stage 5 — box search: the box maximising (mass inside / total mass) − α · (box area / map area).

Boxes are inclusive integer cell boxes (x1, y1, x2, y2) of the score map (x = column, y = row).
Equivalently a box is a maximum-weight sub-rectangle of h = S / (ΣS + 1e-8) − α / (H·W)
(:func:`box_weights`), which :func:`exact_box_search` solves exactly.

* ``hierarchical`` — the reference's coarse-to-fine brute force (bilinear downsample by 8, every box
  on the coarse grid, then ±8 cells around the coarse answer at full resolution). Like the
  reference it only considers boxes at least two cells wide and high.
* ``exact`` — the global optimum over *all* boxes (a superset of the above, so never lower).
* ``brute_force`` — every box enumerated; the test oracle.
"""
from __future__ import annotations

import math
from typing import Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

Box = Tuple[int, int, int, int]
METHODS = ("exact", "hierarchical", "brute_force")


def _as_numpy(score_map) -> np.ndarray:
    m = score_map.detach().cpu().numpy() if isinstance(score_map, torch.Tensor) else np.asarray(score_map)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"score map must be a non-empty 2-D array, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("score map contains NaN or infinite values")
    return m


def box_weights(score_map, alpha: float) -> np.ndarray:
    """h = S / (ΣS + 1e-8) − α / (H·W) in float64: a box's objective is the sum of h inside it."""
    m = _as_numpy(score_map).astype(np.float64)
    return m / (m.sum() + 1e-8) - float(alpha) / m.size


def box_objective(score_map, box, alpha: float) -> float:
    """The paper's box objective f(box) = Σ_box S / (ΣS + 1e-8) − α · area / (H·W), in float64."""
    m = _as_numpy(score_map).astype(np.float64)
    x1, y1, x2, y2 = (int(v) for v in box)
    inside = m[y1:y2 + 1, x1:x2 + 1].sum()
    return float(inside / (m.sum() + 1e-8) - float(alpha) * (x2 - x1 + 1) * (y2 - y1 + 1) / m.size)


def brute_force_box_search(score_map, alpha: float) -> Box:
    """Every box (x1 ≤ x2, y1 ≤ y2) scored from an integral image; ties → first in (x1, y1, x2, y2) order."""
    h = box_weights(score_map, alpha)
    H, W = h.shape
    P = np.zeros((H + 1, W + 1))
    P[1:, 1:] = h.cumsum(0).cumsum(1)
    x1, y1, x2, y2 = np.meshgrid(np.arange(W), np.arange(H), np.arange(W), np.arange(H), indexing="ij")
    valid = (x2 >= x1) & (y2 >= y1)
    x1, y1, x2, y2 = x1[valid], y1[valid], x2[valid], y2[valid]  # lexicographic order is kept
    val = P[y2 + 1, x2 + 1] - P[y1, x2 + 1] - P[y2 + 1, x1] + P[y1, x1]
    i = int(np.argmax(val))
    return (int(x1[i]), int(y1[i]), int(x2[i]), int(y2[i]))


def _best_runs(colsum: torch.Tensor):
    """Best contiguous run along the last axis: (value, x1, x2) for every leading index.

    best run ending at x2 = prefix[x2+1] − min_{x1 ≤ x2} prefix[x1] (Kadane through a running minimum).
    """
    incl = colsum.cumsum(-1)  # prefix[x+1]
    runmin, argmin = torch.cummin(incl - colsum, dim=-1)  # min over x1 ≤ x2 of prefix[x1] (exclusive prefix)
    v, x2 = (incl - runmin).max(-1)
    x1 = torch.gather(argmin, -1, x2.unsqueeze(-1)).squeeze(-1)
    return v, x1, x2


def exact_box_search(score_map, alpha: float, device: Union[str, torch.device] = "cpu", block: int = 16) -> Box:
    """Global optimum: the maximum-weight sub-rectangle of h (:func:`box_weights`), by branch and bound.

    With C the row-prefix sums of h, the column sums of rows y1..y2 are C[y2+1] − C[y1]. Rows are cut
    into blocks of ``block``; for a block pair (A, B) every row pair y1 ∈ A, y2 ∈ B has column sums
    ≤ max_{y2∈B} C[y2+1] − min_{y1∈A} C[y1] elementwise, so the best run of that upper envelope
    bounds every box in the pair (Kadane on the envelope). Block pairs are visited by decreasing bound
    and solved exactly (all their row pairs at once); the search stops when no remaining bound can
    beat the best box found. Exactness does not depend on the bound's tightness, only on its
    validity; peaky score maps need only a few block pairs. The smaller side is put on the rows.
    """
    h = torch.as_tensor(box_weights(score_map, alpha), dtype=torch.float64, device=device)
    transposed = h.shape[0] > h.shape[1]
    if transposed:
        h = h.t()
    H, W = h.shape
    C = torch.cat([torch.zeros(1, W, dtype=h.dtype, device=h.device), h.cumsum(0)], 0)  # (H+1, W)
    nb = (H + block - 1) // block
    pad = nb * block - H
    tops = torch.cat([C[:H], C[H - 1:H].expand(pad, W)]) if pad else C[:H]  # C[y1], y1 = 0..H-1
    bots = torch.cat([C[1:], C[H:].expand(pad, W)]) if pad else C[1:]  # C[y2+1], y2 = 0..H-1
    min_top = tops.reshape(nb, block, W).min(1).values
    max_bot = bots.reshape(nb, block, W).max(1).values
    bound, _, _ = _best_runs(max_bot[None, :, :] - min_top[:, None, :])  # (A, B): envelope's best run
    ia, ib = torch.triu_indices(nb, nb, device=h.device)  # A ≤ B
    bounds = bound[ia, ib]
    order = torch.argsort(bounds, descending=True)
    bounds_l = bounds[order].tolist()
    pairs = torch.stack([ia[order], ib[order]], 1).tolist()
    best, best_box = -math.inf, None
    for (a, b), ub in zip(pairs, bounds_l):
        if ub <= best:
            break
        a0, a1 = a * block, min(H, (a + 1) * block)
        b0, b1 = b * block, min(H, (b + 1) * block)
        colsum = C[b0 + 1:b1 + 1][None, :, :] - C[a0:a1][:, None, :]  # (|A|, |B|, W)
        v, x1, x2 = _best_runs(colsum)
        if a == b:
            v = v.masked_fill(torch.ones_like(v, dtype=torch.bool).tril(-1), -math.inf)  # y2 < y1
        flat = int(torch.argmax(v))
        i, j = divmod(flat, b1 - b0)
        val = float(v[i, j])
        if val > best:
            best = val
            best_box = (int(x1[i, j]), a0 + i, int(x2[i, j]), b0 + j)
    x1, y1, x2, y2 = best_box
    return (y1, x1, y2, x2) if transposed else (x1, y1, x2, y2)


# ----------------------------------------------------------------- the reference's hierarchical search
def _fraction_area_scores(m: torch.Tensor, alpha: float, x1, y1, x2, y2) -> torch.Tensor:
    """The reference's objective, in the map's dtype, from a zero-padded integral image."""
    sums = F.pad(m.cumsum(1).cumsum(0), (1, 0, 1, 0))
    total = m.sum().item()
    inside = sums[y2 + 1, x2 + 1] - sums[y2 + 1, x1] - sums[y1, x2 + 1] + sums[y1, x1]
    area = (x2 - x1 + 1).float() * (y2 - y1 + 1).float() / float(m.shape[0] * m.shape[1])
    return inside / (total + 1e-8) - alpha * area


def _search_ranges(m: torch.Tensor, alpha: float, ranges, chunk: int = 1 << 22):
    """Best box among the cartesian product of the four (lo, hi) ranges, x2 > x1 and y2 > y1 strictly;
    ties → first in the reference's (x1, y1, x2, y2) cartesian order. Chunked over x1 for memory."""
    H, W = m.shape
    dev = m.device
    axes = [torch.arange(lo, hi + 1, device=dev) for lo, hi in ranges]
    best_v, best_box = None, None
    per_x1 = max(1, len(axes[1]) * len(axes[2]) * len(axes[3]))
    step = max(1, chunk // per_x1)
    for s in range(0, len(axes[0]), step):
        boxes = torch.cartesian_prod(axes[0][s:s + step], axes[1], axes[2], axes[3]).reshape(-1, 4)
        x1, y1, x2, y2 = boxes.t()
        ok = (x1 >= 0) & (y1 >= 0) & (x2 < W) & (y2 < H) & (x2 > x1) & (y2 > y1)
        boxes = boxes[ok]
        if len(boxes) == 0:
            continue
        v = _fraction_area_scores(m, alpha, *boxes.t())
        i = int(torch.argmax(v))
        if best_v is None or v[i] > best_v:  # strict: earlier chunk wins ties
            best_v, best_box = v[i], boxes[i]
    if best_box is None:
        raise ValueError("no box at least 2×2 cells fits the search ranges")
    return [int(c) for c in best_box]


def hierarchical_box_search(score_map, alpha: float, downsample: int = 8, device="cpu") -> Box:
    """The reference's coarse-to-fine search (pals-ttic/adapting-CLIP ``BruteForceBoxSearch``).

    Bilinear downsample by ``downsample``; every box on the coarse grid; scale the winner back; then
    every box whose corners lie within ±``downsample`` cells of it at full resolution. Maps whose
    coarse grid is smaller than 2×2 are searched exactly instead.
    """
    m = torch.as_tensor(_as_numpy(score_map), device=device)
    if not m.is_floating_point():
        m = m.float()
    H, W = m.shape
    hc, wc = H // downsample, W // downsample
    if hc < 2 or wc < 2:
        return exact_box_search(score_map, alpha, device)
    coarse = F.interpolate(m[None, None], (hc, wc), mode="bilinear")[0, 0]
    ax1, ay1, ax2, ay2 = (v * downsample for v in _search_ranges(coarse, alpha, [(0, wc - 1), (0, hc - 1),
                                                                                 (0, wc - 1), (0, hc - 1)]))
    d = downsample
    ranges = [(max(0, ax1 - d), min(ax1 + d, W - 1)), (max(0, ay1 - d), min(ay1 + d, H - 1)),
              (max(0, ax2 - d), min(ax2 + d, W - 1)), (max(0, ay2 - d), min(ay2 + d, H - 1))]
    return tuple(_search_ranges(m, alpha, ranges))


def search_box(score_map, alpha: float, method: str = "exact", *, device="cpu") -> Box:
    """Box maximising (mass inside / total) − α·(area / map area): inclusive cells (x1, y1, x2, y2)."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    if method == "exact":
        return exact_box_search(score_map, alpha, device)
    if method == "hierarchical":
        return hierarchical_box_search(score_map, alpha, device=device)
    if method == "brute_force":
        return brute_force_box_search(score_map, alpha)
    raise ValueError(f"box_search method must be one of {METHODS}, got {method!r}")
