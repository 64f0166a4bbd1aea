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


def _brute_crop_scores(backbone, image, boxes, phrase):
    """Oracle, written apart from CropRank: each crop ``image[y1:y2, x1:x2]`` resized to the model's own input
    size (PIL bicubic), CLIP-normalised by hand, ``encode_image``, cosine with the phrase's text embedding."""
    from PIL import Image

    size = int(backbone.visual.input_resolution)
    mean, std = np.array(backbone.mean), np.array(backbone.std)
    t = backbone.encode_text(phrase)
    out = []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=int):
        crop = Image.fromarray(image[y1:y2, x1:x2]).resize((size, size), Image.BICUBIC)
        x = (np.asarray(crop, dtype=np.float64) / 255.0 - mean) / std
        x = torch.from_numpy(x.transpose(2, 0, 1)[None].astype(np.float32))
        with torch.no_grad():
            e = backbone.model.encode_image(x)[0].float()
        out.append(float(e @ t / e.norm()))
    return np.array(out)


@pytest.mark.parametrize("kind,size,extra", [("resnet", 288, {}), ("vit", 320, {"patch_size": 32}),
                                             ("vit", 336, {"patch_size": 14})], ids=["rn288", "vit320", "vit336p14"])
def test_crop_rank_runs_at_the_backbones_own_input_size(image, kind, size, extra):
    """A non-224 backbone (RN50x4 288, ViT-L/14@336, …): crops are resized to its own input size, so Crop & Rank
    runs; the scores equal a brute-force recomputation, the default proposals (selective search) run too."""
    bb = Backbone("t", tiny_clip(kind, image_resolution=size, seed=5, **extra), torch.device("cpu"), torch.float32)
    assert bb.input_size == size
    h, w = image.shape[:2]
    boxes = np.array([[3, 5, w // 2, h // 3], [w // 4, h // 5, w - 2, h - 1], [0, 0, w, h]], dtype=float)
    cr = CropRank(bb, batch_size=2)
    res = cr.localize_prepared(cr.prepare(image, proposals=boxes), "a cup")
    np.testing.assert_allclose(res.scores, _brute_crop_scores(bb, image, boxes, "a cup"), rtol=1e-4, atol=1e-5)
    assert res.box == tuple(boxes[int(np.argmax(res.scores))])
    got = CropRank(bb, num_proposals=5)(image, "a cup")
    assert len(got.box) == 4
