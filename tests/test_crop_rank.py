"""Crop & Rank: the reference's selective search region for region, embeddings, ranking."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from grounding.models.backbones import Backbone
from grounding.methods.crop_rank import CropRank
from grounding.proposals.selective_search_regions import opencv_proposals, reference_regions
from grounding.models.random import tiny_clip
from ss_cases import case_image

GOLDEN = json.loads((Path(__file__).parent / "golden" / "selective_search.json").read_text())


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_reference_selective_search_matches_golden(case):
    ours = reference_regions(case_image(case), case["scale"], case["sigma"], case["min_size"])
    assert ours.tolist() == case["rects"]
    k = min(5, len(case["rects"]))
    assert reference_regions(case_image(case), case["scale"], case["sigma"], case["min_size"], first=k).tolist() \
        == case["rects"][:k]


@pytest.fixture(scope="module")
def bb():
    return Backbone("tiny", tiny_clip("vit", patch_size=32, seed=31), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def image():
    import skimage.data

    return np.ascontiguousarray(skimage.data.coffee()[::3, ::3])


def test_opencv_proposals_deterministic_and_inside(image):
    a, b = opencv_proposals(image), opencv_proposals(image)
    np.testing.assert_array_equal(a, b)
    h, w = image.shape[:2]
    assert len(a) > 50 and (a[:, 0] >= 0).all() and (a[:, 2] <= w).all() and (a[:, 3] <= h).all()
    assert (a[:, 2] > a[:, 0]).all() and (a[:, 3] > a[:, 1]).all()


@pytest.mark.parametrize("variant", ["paper", "reference"])
def test_embeddings_ranking_and_oracle(bb, image, variant):
    cr = CropRank(bb, variant=variant, num_proposals=12, batch_size=5)
    prep = cr.prepare(image)
    assert len(prep.proposals) <= 12
    # each crop's embedding is CLIP's image embedding of that crop alone (oracle: one at a time)
    from grounding.data.images import preprocess

    for i in (0, len(prep.proposals) - 1):
        x = preprocess(cr._crop(image, prep.proposals[i]), 224, "cpu")
        with torch.no_grad():
            e = bb.model.encode_image(x)[0]
        torch.testing.assert_close(prep.embeddings[i], e / e.norm(), rtol=1e-4, atol=1e-5)
    res = cr.localize_prepared(prep, "a cup")
    assert res.box == tuple(prep.proposals[int(np.argmax(res.scores))])
    # a text embedding equal to crop k's embedding must select crop k
    k = len(prep.proposals) // 2
    cr.backbone = Backbone("tiny", bb.model, bb.device, bb.dtype)
    cr.backbone.encode_text = lambda phrase: prep.embeddings[k]
    assert cr.localize_prepared(prep, "anything").box == tuple(prep.proposals[k])
