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

import heapq
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
    """The paper's box objective f(box) = Σ_box S / (ΣS + 1e-8) − α · area / (H·W), in float64: the sum
    of :func:`box_weights` inside the box."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return float(box_weights(score_map, alpha)[y1:y2 + 1, x1:x2 + 1].sum())


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


def _on(a, index):
    """``index`` (numpy) as an index for ``a`` (numpy array or torch tensor on any device)."""
    return index if isinstance(a, np.ndarray) else torch.as_tensor(index, device=a.device)


def _run_gains(colsum):
    """Kadane through a running minimum, along the last axis: the best run ending at x2 is
    prefix[x2+1] − min_{x1 ≤ x2} prefix[x1]. Returns (that gain per x2, exclusive prefix, its running
    minimum). numpy arrays (CPU) or torch tensors (any device)."""
    incl = colsum.cumsum(-1)  # prefix[x+1]
    excl = incl - colsum  # prefix[x]
    runmin = np.minimum.accumulate(excl, -1) if isinstance(colsum, np.ndarray) else torch.cummin(excl, -1).values
    return incl - runmin, excl, runmin


def _best_run_values(colsum):
    """The best contiguous run's value along the last axis, for every leading index."""
    gain = _run_gains(colsum)[0]
    return (gain.max(-1) if isinstance(gain, np.ndarray) else gain.amax(-1)).tolist()


def _block_envelopes(C, H: int, start: int, size: int, n: int):
    """For ``n`` blocks of ``size`` rows from ``start``: min over y1 in the block of C[y1] and max over
    y2 in the block of C[y2+1] (rows past H−1 repeat the last one)."""
    if start + n * size <= H:  # no padding: views, no copies
        tops = C[start:start + n * size].reshape(n, size, -1)
        bots = C[start + 1:start + n * size + 1].reshape(n, size, -1)
    else:
        rows = _on(C, np.minimum(start + np.arange(n * size), H - 1))
        tops, bots = C[:H][rows].reshape(n, size, -1), C[1:][rows].reshape(n, size, -1)
    if isinstance(C, np.ndarray):
        return tops.min(1), bots.max(1)
    return tops.amin(1), bots.amax(1)


def exact_box_search(score_map, alpha: float, device: Union[str, torch.device] = "cpu", block: int = 16,
                     split: int = 4, leaf: int = 4, backend: str = "auto") -> Box:
    """Global optimum: the maximum-weight sub-rectangle of h (:func:`box_weights`), by branch and bound.

    With C the row-prefix sums of h, the column sums of rows y1..y2 are C[y2+1] − C[y1]. For a pair of
    row blocks (A, B), every y1 ∈ A, y2 ∈ B has column sums ≤ max_{y2∈B} C[y2+1] − min_{y1∈A} C[y1]
    elementwise, so the best run of that upper envelope (Kadane) bounds every box in the pair. Pairs
    of ``block`` rows are bounded at once and kept in a max-heap; the best is popped and either split
    into ``split``×``split`` sub-pairs (bounded, pushed) or, at ``leaf`` rows or fewer, solved exactly
    for all its row pairs. The search stops when no bound in the heap can beat the best box found.
    Exactness rests only on the bounds' validity (brute-force tests); peaky maps touch few pairs.
    The smaller side is put on the rows. Float64 throughout. ``backend="auto"``: numpy on the CPU
    (fewer dispatches than torch), torch on other devices; both give the same box.
    """
    if backend == "auto":
        backend = "numpy" if torch.device(device).type == "cpu" else "torch"
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    if block < 1 or split < 2 or leaf < 1:
        raise ValueError(f"need block ≥ 1, split ≥ 2, leaf ≥ 1; got {block}, {split}, {leaf}")
    h = box_weights(score_map, alpha)
    transposed = h.shape[0] > h.shape[1]
    if transposed:
        h = h.T
    H, W = h.shape
    C = np.zeros((H + 1, W))  # C[y] = Σ_{rows < y} h
    np.cumsum(h, 0, out=C[1:])
    if backend == "torch":
        C = torch.as_tensor(C, device=device)
    nb = (H + block - 1) // block
    ia, ib = np.triu_indices(nb)  # block pairs A ≤ B
    top, bot = _block_envelopes(C, H, 0, block, nb)
    bounds = _best_run_values(bot[_on(C, ib)] - top[_on(C, ia)])
    heap = [(-u, int(a) * block, int(b) * block, block) for u, a, b in zip(bounds, ia, ib)]
    heapq.heapify(heap)
    best, best_box = -math.inf, None
    while heap and -heap[0][0] > best:
        _, a0, b0, size = heapq.heappop(heap)
        if size > leaf:  # branch: bound the sub-pairs
            sub = -(-size // split)
            top, _ = _block_envelopes(C, H, a0, sub, split)
            _, bot = _block_envelopes(C, H, b0, sub, split)
            i, j = (x.ravel() for x in np.meshgrid(np.arange(split), np.arange(split), indexing="ij"))
            a, b = a0 + i * sub, b0 + j * sub
            keep = (a < min(H, a0 + size)) & (b < min(H, b0 + size)) & (b + sub > a)  # some y1 ≤ y2 left
            i, j, a, b = i[keep], j[keep], a[keep], b[keep]
            for u, aa, bb in zip(_best_run_values(bot[_on(C, j)] - top[_on(C, i)]), a.tolist(), b.tolist()):
                if u > best:
                    heapq.heappush(heap, (-u, aa, bb, sub))
            continue
        a1, b1 = min(H, a0 + size), min(H, b0 + size)  # leaf: every row pair, exactly
        gain, excl, runmin = _run_gains(C[b0 + 1:b1 + 1][None, :, :] - C[a0:a1][:, None, :])
        gain[_on(gain, np.arange(a0, a1)[:, None] > np.arange(b0, b1)[None, :])] = -math.inf  # y2 < y1: no box
        i, j, r = np.unravel_index(int(gain.argmax()), tuple(gain.shape))  # first maximum: rows, then x2
        if float(gain[i, j, r]) > best:
            best = float(gain[i, j, r])
            x1 = int((excl[i, j, :r + 1] == runmin[i, j, r]).nonzero()[0][0])  # first minimal prefix
            best_box = (x1, a0 + i, r, b0 + j)
    x1, y1, x2, y2 = best_box
    return (y1, x1, y2, x2) if transposed else (x1, y1, x2, y2)


# ----------------------------------------------------------------- the reference's hierarchical search
def _search_ranges(m: torch.Tensor, alpha: float, ranges, chunk: int = 1 << 22):
    """Best box among the cartesian product of the four in-bounds (lo, hi) ranges of (x1, y1, x2, y2),
    x2 > x1 and y2 > y1 strictly, scored with the reference's objective
    ``(inside / (total + 1e-8)) − α · area / (H·W)`` in the map's dtype from a zero-padded integral image,
    term by term in the reference's order (so ties and roundings are the reference's). The reference
    gathers four corners per listed box; here each corner term is a 2-D table broadcast over the 4-D
    grid of boxes, which gives the same numbers faster. Ties → first in (x1, y1, x2, y2) order, as the
    reference's ``cartesian_prod``. Chunked over x1 to bound memory."""
    S = F.pad(m.cumsum(1).cumsum(0), (1, 0, 1, 0))
    total = m.sum().item()
    area_all = float(m.shape[0] * m.shape[1])
    X1, Y1, X2, Y2 = (torch.arange(lo, hi + 1, device=m.device) for lo, hi in ranges)
    top_rows, bottom_rows = S[Y1], S[Y2 + 1]  # S[y1, :], S[y2+1, :]
    tr = top_rows[:, X2 + 1][None, :, :, None]  # S[y1, x2+1]   (1, y1, x2, 1)
    br = bottom_rows[:, X2 + 1].t()[None, None]  # S[y2+1, x2+1] (1, 1, x2, y2)
    h = (Y2[None, :] - Y1[:, None] + 1).float()  # (y1, y2)
    best_v, best_box = None, None
    step = max(1, chunk // max(1, len(Y1) * len(X2) * len(Y2)))
    for s0 in range(0, len(X1), step):
        x1 = X1[s0:s0 + step]
        bl = bottom_rows[:, x1].t()[:, None, None, :]  # S[y2+1, x1] (x1, 1, 1, y2)
        tl = top_rows[:, x1].t()[:, :, None, None]  # S[y1, x1]     (x1, y1, 1, 1)
        inside = br - bl - tr + tl
        w = (X2[None, :] - x1[:, None] + 1).float()  # (x1, x2)
        area = w[:, None, :, None] * h[None, :, None, :] / area_all
        v = inside / (total + 1e-8) - alpha * area
        valid = (X2[None, :] > x1[:, None])[:, None, :, None] & (Y2[None, :] > Y1[:, None])[None, :, None, :]
        v = v.masked_fill(~valid, float("-inf"))
        if not bool(valid.any()):
            continue
        i = int(torch.argmax(v))
        vi = float(v.flatten()[i])
        if best_v is None or vi > best_v:  # strict: earlier chunk wins ties
            a, b, c, d = np.unravel_index(i, tuple(v.shape))
            best_v, best_box = vi, (int(x1[a]), int(Y1[b]), int(X2[c]), int(Y2[d]))
    if best_box is None:
        raise ValueError("no box at least 2×2 cells fits the search ranges")
    return list(best_box)


def hierarchical_box_search(score_map, alpha: float, downsample: int = 8, device="cpu",
                            search=None) -> Box:
    """The reference's coarse-to-fine search (pals-ttic/adapting-CLIP ``BruteForceBoxSearch``).

    Bilinear downsample by ``downsample``; every box on the coarse grid; scale the winner back; then
    every box whose corners lie within ±``downsample`` cells of it at full resolution. Maps whose
    coarse grid is smaller than 2×2 are searched exactly instead. ``search`` replaces the range search
    (:func:`_search_ranges`; the benchmark passes the reference's box-listing way of scoring).
    """
    search = search or _search_ranges
    m = torch.as_tensor(_as_numpy(score_map), device=device)
    if not m.is_floating_point():
        m = m.float()
    H, W = m.shape
    hc, wc = H // downsample, W // downsample
    if hc < 2 or wc < 2:
        return exact_box_search(score_map, alpha, device)
    coarse = F.interpolate(m[None, None], (hc, wc), mode="bilinear")[0, 0]
    ax1, ay1, ax2, ay2 = (v * downsample for v in search(coarse, alpha, [(0, wc - 1), (0, hc - 1),
                                                                         (0, wc - 1), (0, hc - 1)]))
    d = downsample
    ranges = [(max(0, ax1 - d), min(ax1 + d, W - 1)), (max(0, ay1 - d), min(ay1 + d, H - 1)),
              (max(0, ax2 - d), min(ax2 + d, W - 1)), (max(0, ay2 - d), min(ay2 + d, H - 1))]
    return tuple(search(m, alpha, ranges))


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
