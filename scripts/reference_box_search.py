"""The reference's way of scoring the hierarchical search's boxes — every box listed with
``cartesian_prod``, filtered, its four integral-image corners gathered — for the benchmark baseline
(scripts/bench_box_search.py) and as a cross-check in tests/test_box_search.py. Benchmark-only code: the
library scores the same boxes by broadcasting (grounding.stages.box_search._search_ranges).

    from grounding.stages.box_search import hierarchical_box_search
    hierarchical_box_search(score_map, alpha, search=search_ranges_listed)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def fraction_area_scores(m: torch.Tensor, alpha: float, x1, y1, x2, y2) -> torch.Tensor:
    """The reference's objective, in the map's dtype, from a zero-padded integral image."""
    sums = F.pad(m.cumsum(1).cumsum(0), (1, 0, 1, 0))
    total = m.sum().item()
    inside = sums[y2 + 1, x2 + 1] - sums[y2 + 1, x1] - sums[y1, x2 + 1] + sums[y1, x1]
    area = (x2 - x1 + 1).float() * (y2 - y1 + 1).float() / float(m.shape[0] * m.shape[1])
    return inside / (total + 1e-8) - alpha * area


def search_ranges_listed(m: torch.Tensor, alpha: float, ranges, chunk: int = 1 << 22):
    """As :func:`_search_ranges`, the way the reference computes it: every box listed
    (``cartesian_prod``), filtered, and its four integral-image corners gathered. Slower; kept as the
    reference-style baseline for ``scripts/bench_box_search.py`` and as a cross-check in the tests."""
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
        v = fraction_area_scores(m, alpha, *boxes.t())
        i = int(torch.argmax(v))
        if best_v is None or v[i] > best_v:  # strict: earlier chunk wins ties
            best_v, best_box = v[i], boxes[i]
    if best_box is None:
        raise ValueError("no box at least 2×2 cells fits the search ranges")
    return [int(c) for c in best_box]
