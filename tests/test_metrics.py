"""Metrics: IoU against pycocotools, strict threshold, skipped rows count as misses."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from grounding.evaluation.evaluator import GroundingEvaluator, box_iou, pointing_hit


def _boxes(rng, n):
    xy = rng.uniform(0, 400, (n, 2))
    wh = rng.uniform(0.5, 200, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def test_iou_matches_pycocotools():
    rng = np.random.default_rng(0)
    a, b = _boxes(rng, 3000), _boxes(rng, 3000)
    b[:500] = a[:500] + rng.normal(0, 5, (500, 4)).clip(-0.2, 0.2)  # many overlapping pairs
    ours = box_iou(a, b)
    xywh = lambda x: np.stack([x[:, 0], x[:, 1], x[:, 2] - x[:, 0], x[:, 3] - x[:, 1]], 1)
    ref = np.array([mask_utils.iou(xywh(a[i:i + 1]).tolist(), xywh(b[i:i + 1]).tolist(), [0])[0, 0]
                    for i in range(len(a))])
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert (ours > 0.5).sum() > 100


def test_iou_edge_cases():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0  # empty union


def test_threshold_is_strict_and_skips_are_misses():
    ev = GroundingEvaluator(iou_threshold=0.5)
    ev.reset()
    ev.process([
        {"index": 0, "gt_box": [0, 0, 10, 10], "pred_box": [0, 0, 10, 5], "pointing": True},  # IoU exactly 0.5
        {"index": 1, "gt_box": [0, 0, 10, 10], "pred_box": [0, 0, 10, 10], "pointing": True},
        {"index": 2, "gt_box": [0, 0, 10, 10], "pred_box": None, "skipped": True},
    ])
    m = ev.evaluate()
    assert m["n"] == 3 and m["n_skipped"] == 1 and m["skipped"] == [2]
    assert m["accuracy"] == pytest.approx(1 / 3)  # 0.5 is not > 0.5; the skipped row is a miss
    assert m["pointing_game"] == pytest.approx(2 / 3)
    accs = [m["acc_at"][k] for k in sorted(m["acc_at"])]
    assert all(x >= y for x, y in zip(accs, accs[1:]))


def test_pointing_none_without_maps():
    ev = GroundingEvaluator(0.5)
    ev.process([{"gt_box": [0, 0, 1, 1], "pred_box": [0, 0, 1, 1], "pointing": None}])
    assert ev.evaluate()["pointing_game"] is None


def test_pointing_hit_maps_cells_to_pixels():
    m = np.zeros((10, 20))
    m[2, 15] = 1.0  # centre of that cell at x=(15.5/20)*W, y=(2.5/10)*H
    assert pointing_hit(m, [150, 40, 160, 60], (200, 200))
    assert not pointing_hit(m, [0, 0, 100, 100], (200, 200))


def test_greater_or_equal_comparison_counts_the_threshold():
    ev = GroundingEvaluator(0.5, ">=")
    m = ev.summarize([{"index": 0, "gt_box": [0, 0, 10, 10], "pred_box": [0, 0, 10, 5]}])
    assert m["accuracy"] == 1.0 and m["iou_compare"] == ">="
    with pytest.raises(ValueError, match="iou_threshold"):
        GroundingEvaluator(1.5)
    with pytest.raises(ValueError, match="iou_compare"):
        GroundingEvaluator(0.5, "=>")
