"""grounding.methods.gem against goldens made by WalBouss/GEM's own code
(scripts/zoo_parity/gem.py): tokens, contract score maps within 1e-4, equal boxes."""
import json
from pathlib import Path

import clip
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grounding.data.images import preprocess, resize_square, to_pil_rgb
from grounding.methods import gem
from grounding.models.backbones import state_dict_digest
from grounding.models.random import tiny_clip
from grounding.stages.box_search import search_box

GOLDEN = Path(__file__).resolve().parent / "golden"
META = json.loads((GOLDEN / "zoo_gem.json").read_text())
REGEN = "regenerate with: " + META["command"]


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN / "zoo_gem.npz")


@pytest.fixture(scope="module")
def models():
    out = {}
    for key, spec in META["models"].items():
        model = tiny_clip(**spec["tiny_clip"])
        assert state_dict_digest(model.state_dict()) == spec["digest"], f"tiny model {key} changed; {REGEN}"
        out[key] = model
    return out


def _image(name):
    import skimage.data

    return preprocess(resize_square(to_pil_rgb(getattr(skimage.data, name)()), 224), 224, "cpu")


def _text(model, phrase):
    t = model.encode_text(clip.tokenize([phrase]))
    return t / t.norm(dim=-1, keepdim=True)


def _map(cos_grid, sigma):
    up = F.interpolate(cos_grid[None, None].float(), size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
    phi = torch.exp(up.double() / sigma)
    return ((phi - phi.min()) / (phi.max() - phi.min() + 1e-8)).float().numpy()


@torch.no_grad()
def test_tokens_maps_and_boxes_match_the_authors_code(golden, models):
    assert META["text_mode"] == gem.TEXT_MODE == "plain"
    assert META["knobs"] == gem.DEFAULTS
    tokens = {}
    for i, case in enumerate(META["cases"]):
        model = models[case["model"]]
        key = (case["model"], case["image"])
        if key not in tokens:
            t = gem.patch_tokens(model.visual, _image(case["image"]), **gem.DEFAULTS)
            tokens[key] = (t / t.norm(dim=-1, keepdim=True))[0]
        ours = tokens[key]
        np.testing.assert_allclose(ours.numpy(), golden[f"tokens_{i}"], atol=1e-4, err_msg=f"case {i} tokens; {REGEN}")
        g = case["grid"]
        cos = ours @ _text(model, case["phrase"])[0]
        m = _map(cos.reshape(g, g), META["sigma"])
        np.testing.assert_allclose(m, golden[f"map_{i}"], atol=1e-4, err_msg=f"case {i} map; {REGEN}")
        assert list(search_box(m, META["alpha"], method="hierarchical")) == case["box_hierarchical"], f"case {i}"
        assert list(search_box(m, META["alpha"], method="exact")) == case["box_exact"], f"case {i}"


@torch.no_grad()
def test_knobs_change_the_patches_and_are_checked(models):
    model = models["b32"]
    x = _image("astronaut")
    base = gem.patch_tokens(model.visual, x)
    assert base.shape == (1, 49, 64)
    for knobs in ({"depth": 2}, {"iterations": 2}, {"inv_temperature": 5.0}):
        assert not torch.allclose(gem.patch_tokens(model.visual, x, **knobs), base, atol=1e-3), knobs
    with pytest.raises(ValueError, match="depth must be >= 2"):
        gem.patch_tokens(model.visual, x, depth=1)
    with pytest.warns(UserWarning, match="using all"):  # a shallow tower: every block, as a slice would
        torch.testing.assert_close(gem.patch_tokens(model.visual, x, depth=12), gem.patch_tokens(model.visual, x, depth=9))
    with pytest.raises(ValueError, match="inv_temperature"):
        gem.patch_tokens(model.visual, x, inv_temperature="adaptive")


@torch.no_grad()
def test_open_clip_tower_gives_the_same_tokens(models):
    from open_clip.model import build_model_from_openai_state_dict

    sd = models["b32"].state_dict()
    twin = build_model_from_openai_state_dict({k: v.clone() for k, v in sd.items()}, quick_gelu=True).float()
    twin.load_state_dict(sd)  # undo the builder's fp16 cast
    x = _image("camera")
    ours = gem.patch_tokens(models["b32"].visual, x)
    torch.testing.assert_close(gem.patch_tokens(twin.eval().visual, x), ours, atol=1e-5, rtol=0)
