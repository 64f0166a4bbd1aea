"""The analytic toy CLIP: a real clip.model.CLIP whose colour words meet their colours."""
import numpy as np
import pytest
import torch

import clip
from clip.model import build_model
from grounding.evaluation.evaluator import box_iou
from grounding.api import Localizer
from grounding.data.demo import BACKGROUND, PALETTE, make_scenes
from grounding.models.toy import toy_clip


@pytest.fixture(scope="module")
def model():
    return toy_clip()


def _text(model, phrases):
    with torch.no_grad():
        t = model.encode_text(clip.tokenize(phrases)).float()
    return t / t.norm(dim=-1, keepdim=True)


def test_is_a_real_clip_that_round_trips(model):
    sd = model.state_dict()
    assert sd["token_embedding.weight"].shape[0] == 49408
    rebuilt = build_model({k: v.clone() for k, v in sd.items()}).float()
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.encode_image(x), model.encode_image(x), rtol=1e-3, atol=1e-4)


def test_text_embedding_depends_on_the_colour_word_only(model):
    t = _text(model, ["the red square", "a red circle", "red", "a blue triangle"])
    assert float(t[0] @ t[1]) > 0.999 and float(t[0] @ t[2]) > 0.999
    assert float(t[0] @ t[3]) < 0.0  # red and blue are 120° apart in hue


def test_uniform_colour_image_is_closest_to_its_word(model):
    names = list(PALETTE)
    texts = _text(model, [f"a {n} thing" for n in names])
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    for i, n in enumerate(names):
        img = torch.tensor(PALETTE[n], dtype=torch.float32).view(3, 1, 1).expand(3, 224, 224) / 255
        with torch.no_grad():
            e = model.encode_image(((img - mean) / std)[None]).float()[0]
        sims = texts @ (e / e.norm())
        assert int(sims.argmax()) == i and float(sims[i]) > 0.95
    gray = torch.tensor(BACKGROUND, dtype=torch.float32).view(3, 1, 1).expand(3, 224, 224) / 255
    with torch.no_grad():
        e = model.encode_image(((gray - mean) / std)[None]).float()[0]
    assert float((texts @ (e / e.norm())).abs().max()) < 0.1  # a neutral image matches no colour


def test_scenes_are_deterministic_and_boxes_tight():
    a, b = make_scenes(3, seed=5), make_scenes(3, seed=5)
    for (ia, oa), (ib, ob) in zip(a, b):
        np.testing.assert_array_equal(ia, ib)
        assert oa == ob and 2 <= len(oa) <= 4
        for o in oa:
            x1, y1, x2, y2 = (int(v) for v in o["box"])
            crop = ia[y1:y2, x1:x2]
            colour = np.all(crop == PALETTE[o["colour"]], axis=-1)
            assert colour[0].any() and colour[-1].any() and colour[:, 0].any() and colour[:, -1].any()
            assert colour.sum() == np.all(ia == PALETTE[o["colour"]], axis=-1).sum()  # all of it is inside


@pytest.mark.parametrize("box_search", ["hierarchical", "exact"])
def test_ours_localises_named_shapes(box_search):
    loc = Localizer("toy", "ours", box_search=box_search)
    ious = []
    for img, objs in make_scenes(12, seed=123):
        prep = loc.prepare(img)
        for o in objs:
            ious.append(float(box_iou(loc.localize_prepared(prep, o["phrase"]).box, o["box"])))
    assert len(ious) >= 30
    assert np.mean(np.array(ious) > 0.5) >= 0.9
