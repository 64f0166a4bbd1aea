"""grounding.methods.clip_surgery against goldens made by xmed-lab/CLIP_Surgery's own code
(scripts/zoo_parity/clip_surgery.py): tokens, contract score maps within 1e-4, equal boxes."""
import json
from pathlib import Path

import clip
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grounding.data.images import preprocess, resize_square, to_pil_rgb
from grounding.methods import clip_surgery
from grounding.models.backbones import state_dict_digest
from grounding.models.random import tiny_clip
from grounding.stages.box_search import search_box

GOLDEN = Path(__file__).resolve().parent / "golden"
META = json.loads((GOLDEN / "zoo_clip_surgery.json").read_text())
REGEN = "regenerate with: " + META["command"]


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN / "zoo_clip_surgery.npz")


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
    assert META["text_mode"] == clip_surgery.TEXT_MODE == "minus_empty"
    tokens = {}
    for i, case in enumerate(META["cases"]):
        model = models[case["model"]]
        key = (case["model"], case["image"])
        if key not in tokens:
            t = clip_surgery.patch_tokens(model.visual, _image(case["image"]), **clip_surgery.DEFAULTS)
            tokens[key] = (t / t.norm(dim=-1, keepdim=True))[0]
        ours = tokens[key]
        np.testing.assert_allclose(ours.numpy(), golden[f"tokens_{i}"], atol=1e-4, err_msg=f"case {i} tokens; {REGEN}")
        g = case["grid"]
        cos = ours @ (_text(model, case["phrase"]) - _text(model, ""))[0]
        m = _map(cos.reshape(g, g), META["sigma"])
        np.testing.assert_allclose(m, golden[f"map_{i}"], atol=1e-4, err_msg=f"case {i} map; {REGEN}")
        assert list(search_box(m, META["alpha"], method="hierarchical")) == case["box_hierarchical"], f"case {i}"
        assert list(search_box(m, META["alpha"], method="exact")) == case["box_exact"], f"case {i}"


@torch.no_grad()
def test_surgery_changes_the_patches_and_blocks_is_checked(models):
    model = models["b32"]
    x = _image("astronaut")
    last = clip_surgery.patch_tokens(model.visual, x, blocks=1)
    six = clip_surgery.patch_tokens(model.visual, x)
    assert six.shape == (1, 49, 64)
    assert not torch.allclose(last, six, atol=1e-3)
    with pytest.raises(ValueError, match="blocks must be >= 1"):
        clip_surgery.patch_tokens(model.visual, x, blocks=0)
    with pytest.warns(UserWarning, match="using all"):
        torch.testing.assert_close(clip_surgery.patch_tokens(model.visual, x, blocks=9),
                                   clip_surgery.patch_tokens(model.visual, x, blocks=8))


@torch.no_grad()
def test_open_clip_tower_gives_the_same_tokens(models):
    from open_clip.model import build_model_from_openai_state_dict

    sd = models["b32"].state_dict()
    twin = build_model_from_openai_state_dict({k: v.clone() for k, v in sd.items()}, quick_gelu=True).float()
    twin.load_state_dict(sd)  # undo the builder's fp16 cast
    x = _image("camera")
    ours = clip_surgery.patch_tokens(models["b32"].visual, x)
    torch.testing.assert_close(clip_surgery.patch_tokens(twin.eval().visual, x), ours, atol=1e-5, rtol=0)
