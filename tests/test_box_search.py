"""Box search: exact == brute force (oracle), hierarchical == the reference's two-stage procedure."""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference_box_search import search_ranges_listed  # scripts/: the benchmark's reference-style scoring
from grounding.stages.box_search import (box_objective, brute_force_box_search, exact_box_search,
                                  hierarchical_box_search, search_box)


def _maps(rng, n):
    for i in range(n):
        H, W = (int(v) for v in rng.integers(1, 13, 2))
        kind = i % 6
        if kind == 0:
            m = rng.integers(0, 3, (H, W)).astype(float)  # many ties
        elif kind == 1:
            m = np.full((H, W), float(rng.integers(0, 3)))  # constant, including all-zero
        elif kind == 2:
            m = np.zeros((H, W))
            m[rng.integers(H), rng.integers(W)] = 1.0  # one hot pixel
        elif kind == 3:
            m = rng.random((H, W)) * (rng.random((H, W)) < 0.2)  # sparse
        else:
            m = np.exp(rng.normal(size=(H, W)) / 0.3)  # peaky, exp(cos / T)-like
        yield m, float(rng.choice([0.0, 0.1, 0.5, 0.8, 1.0, 1.5]))


def test_exact_equals_brute_force_objective():
    rng = np.random.default_rng(0)
    for m, a in _maps(rng, 240):
        b = brute_force_box_search(m, a)
        for block, split, leaf in [(2, 2, 1), (8, 2, 1), (16, 4, 4), (5, 3, 2)]:
            e = exact_box_search(m, a, block=block, split=split, leaf=leaf)
            assert box_objective(m, e, a) == pytest.approx(box_objective(m, b, a), abs=1e-12), (m, a)
            x1, y1, x2, y2 = e
            assert 0 <= x1 <= x2 < m.shape[1] and 0 <= y1 <= y2 < m.shape[0]
            # the torch implementation (used on GPUs) finds the same box as the numpy one
            assert exact_box_search(m, a, block=block, split=split, leaf=leaf, backend="torch") == e


def test_exact_backends_agree_on_score_maps():
    rng = np.random.default_rng(5)
    for i in range(12):
        m = _blobs(rng, *[(224, 224), (60, 100), (100, 60)][i % 3])
        a = float(rng.uniform(0.5, 0.95))
        e = exact_box_search(m, a)
        assert exact_box_search(m, a, backend="torch") == e
        with pytest.raises(ValueError, match="backend"):
            exact_box_search(m, a, backend="cupy")


def test_brute_force_is_brute_force():
    """The oracle itself against a literal loop over every box (first maximum in (x1,y1,x2,y2) order)."""
    rng = np.random.default_rng(1)
    for m, a in _maps(rng, 60):
        H, W = m.shape
        best = -np.inf
        for x1, y1, x2, y2 in itertools.product(range(W), range(H), range(W), range(H)):
            if x2 >= x1 and y2 >= y1:
                best = max(best, box_objective(m, (x1, y1, x2, y2), a))
        assert box_objective(m, brute_force_box_search(m, a), a) == pytest.approx(best, abs=1e-12)


def test_planted_rectangle_is_recovered():
    # inside the rectangle h = 1/area − α/N > 0 (area < N/α); outside h = −α/N < 0: the optimum is the rectangle
    m = np.zeros((40, 60))
    m[7:19, 22:51] = 1.0
    for a in (0.2, 0.5, 0.9):
        assert exact_box_search(m, a) == (22, 7, 50, 18)
        # the reference's search can only refine ±8 cells around its 8×-coarse answer: it may miss
        hier = search_box(m, a, method="hierarchical")
        assert box_objective(m, hier, a) <= box_objective(m, (22, 7, 50, 18), a)


def _blobs(rng, H, W):
    y, x = np.mgrid[0:H, 0:W]
    m = np.zeros((H, W))
    for _ in range(int(rng.integers(1, 4))):
        cy, cx, s = rng.uniform(0, H), rng.uniform(0, W), rng.uniform(4, 30)
        m += rng.uniform(0.3, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    z = np.exp(m / 0.1)
    return ((z - z.min()) / (z.max() - z.min() + 1e-8)).astype(np.float32)


def test_hierarchical_never_beats_exact():
    rng = np.random.default_rng(2)
    shapes = [(32, 32), (48, 64), (64, 80), (224, 224)]
    for i in range(16):
        m = _blobs(rng, *shapes[i % 4])
        a = float(rng.uniform(0.5, 0.95))
        e = search_box(m, a, method="exact")
        hbox = search_box(m, a, method="hierarchical")
        assert box_objective(m, e, a) >= box_objective(m, hbox, a) - 1e-12


def _reference_two_stage(m: np.ndarray, alpha: float, d: int = 8):
    """The reference's procedure restated with explicit loops (exact for dyadic-valued maps)."""
    H, W = m.shape
    coarse = F.interpolate(torch.from_numpy(m)[None, None], (H // d, W // d), mode="bilinear")[0, 0].numpy()

    def best(mat, rx1, ry1, rx2, ry2):
        h, w = mat.shape
        tot = mat.sum()
        top, arg = None, None
        for x1 in rx1:
            for y1 in ry1:
                for x2 in rx2:
                    for y2 in ry2:
                        if not (x1 >= 0 and y1 >= 0 and x2 < w and y2 < h and x2 > x1 and y2 > y1):
                            continue
                        v = mat[y1:y2 + 1, x1:x2 + 1].sum() / (tot + 1e-8) - alpha * (x2 - x1 + 1) * (y2 - y1 + 1) / (h * w)
                        if top is None or v > top:
                            top, arg = v, (x1, y1, x2, y2)
        return arg

    hc, wc = coarse.shape
    ax1, ay1, ax2, ay2 = (v * d for v in best(coarse, range(wc), range(hc), range(wc), range(hc)))
    rng_ = lambda c, hi: range(max(0, c - d), min(c + d, hi - 1) + 1)
    return best(m, rng_(ax1, W), rng_(ay1, H), rng_(ax2, W), rng_(ay2, H))


def test_hierarchical_reproduces_reference_procedure():
    rng = np.random.default_rng(3)
    for H, W in [(32, 32), (40, 48), (24, 56)]:
        # integer maps whose 8× bilinear downsample is exact in float32 (2×2 averages of integers / 4)
        m = (rng.integers(0, 4, (H // 2, W // 2)) * 4).repeat(2, 0).repeat(2, 1).astype(np.float32)
        m[rng.integers(H), :] += 8
        for a in (0.3, 0.7):
            assert hierarchical_box_search(m, a) == _reference_two_stage(m, a)


def test_hierarchical_broadcast_scoring_equals_listed_boxes():
    """The broadcast scoring returns exactly the box of the reference-style listing (cartesian_prod and
    corner gathers), ties included: same arithmetic per box, same order."""
    rng = np.random.default_rng(4)
    for i in range(60):
        H, W = (int(v) for v in rng.integers(16, 90, 2))
        kind = i % 4
        if kind == 0:
            m = rng.integers(0, 3, (H, W)).astype(np.float32)  # many ties
        elif kind == 1:
            m = np.full((H, W), float(rng.integers(0, 2)), np.float32)  # constant, all-zero included
        elif kind == 2:
            m = (rng.random((H, W)) ** 8).astype(np.float32)
        else:
            m = _blobs(rng, H, W).astype(np.float32)
        a = float(rng.choice([0.0, 0.3, 0.7, 0.9, 1.5]))
        assert hierarchical_box_search(m, a) == hierarchical_box_search(m, a, search=search_ranges_listed), (i, a)


def test_invalid_input():
    with pytest.raises(ValueError, match="NaN"):
        search_box(np.array([[1.0, np.nan]]), 0.5)
    with pytest.raises(ValueError, match="2-D"):
        search_box(np.zeros((2, 2, 2)), 0.5)
    with pytest.raises(ValueError, match="2-D"):
        search_box(np.zeros((0, 3)), 0.5)
    with pytest.raises(ValueError, match="method"):
        search_box(np.ones((3, 3)), 0.5, method="greedy")
    with pytest.raises(ValueError, match="alpha"):
        search_box(np.ones((3, 3)), float("inf"))
