"""Backbones whose input is not 224 px: the training-free patch family runs on the model's own input size
and grid (no positional-embedding interpolation); ours/DenseCLIP keep the reference's 224.

Oracle: each method's own ``patch_tokens`` called directly on an input built here by hand (PIL bicubic to the
model's size S, CLIP mean/std), cosines with the phrase (CLIP Surgery: text − empty), the g×g grid (g = S / patch)
bilinearly upsampled to S×S, φ = exp(cos/σ), min–max — against the registered method's score map.
"""
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from grounding import Localizer
from grounding.models.backbones import Backbone
from grounding.models.random import tiny_clip

ZOO = ("maskclip", "sclip", "clearclip", "naclip", "gem", "clip_surgery")
# (input size, patch): a ViT-B/32-like 320 px tower (10×10 grid) and a ViT-L/14@336-like one (24×24)
TOWERS = {"320p32": (320, 32), "336p14": (336, 14)}
pytestmark = pytest.mark.filterwarnings("ignore:.*using all:UserWarning")  # shallow towers (GEM, CLIP Surgery)


@pytest.fixture(scope="module")
def towers():
    return {k: Backbone(f"tiny-{k}", tiny_clip("vit", image_resolution=s, patch_size=p, seed=7, vision_layers=3),
                        "cpu", torch.float32) for k, (s, p) in TOWERS.items()}


@pytest.fixture(scope="module")
def image():
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((150, 110), Image.BICUBIC))


def _oracle_map(method, backbone, image, phrase, sigma):
    mod = importlib.import_module(f"grounding.methods.{method}")
    size = int(backbone.visual.input_resolution)
    arr = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), dtype=np.float64) / 255.0
    x = torch.from_numpy(((arr - np.array(backbone.mean)) / np.array(backbone.std)).transpose(2, 0, 1)[None]).float()
    with torch.no_grad():
        f = mod.patch_tokens(backbone.visual, x, **mod.DEFAULTS)[0].float()
    g = size // backbone.visual.conv1.kernel_size[0]
    assert f.shape[0] == g * g  # the model's own grid
    t = backbone.encode_text(phrase)
    if method == "clip_surgery":
        t = t - backbone.encode_text_empty()
    cos = (f / f.norm(dim=-1, keepdim=True)) @ t
    up = F.interpolate(cos.reshape(1, 1, g, g), size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    phi = torch.exp((up - up.max()) / sigma).double()  # shifted: min–max is unchanged
    return ((phi - phi.min()) / (phi.max() - phi.min())).numpy()


@pytest.mark.parametrize("tower", list(TOWERS))
@pytest.mark.parametrize("method", ZOO)
def test_patch_family_runs_on_the_models_own_grid(method, tower, towers, image):
    bb = towers[tower]
    size, patch = TOWERS[tower]
    loc = Localizer(bb, method, temperature=0.05)
    prep = loc.prepare(image)
    out = loc.localize_prepared(prep, "a woman's face")
    assert loc.method.input_size == size and prep.features.shape[0] == (size // patch) ** 2
    assert out.score_map.shape == (size, size) and out.score_map.max() == pytest.approx(1.0) and out.score_map.min() == 0
    np.testing.assert_allclose(out.score_map, _oracle_map(method, bb, image, "a woman's face", 0.05), atol=1e-4)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = out.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_ours_keeps_the_reference_224(towers, image):
    loc = Localizer(towers["320p32"], "ours", n_segments=[30])
    assert loc.method.input_size == 224 and loc(image, "a woman's face").score_map.shape == (224, 224)


def test_a_224_backbone_is_unchanged(image):
    bb = Backbone("tiny224", tiny_clip("vit", seed=7), "cpu", torch.float32)
    for method in ZOO:
        assert Localizer(bb, method).method.input_size == 224


def test_a_knob_given_to_prepare_is_the_one_the_tokens_use():
    """``prepare(image, depth=3)`` (then ``localize_prepared(…, depth=3)``) computes GEM's tokens with depth 3 (the prepared image's own feature
    parameters), the same map as a GEM built with depth 3."""
    import warnings
    from pathlib import Path

    from grounding.methods.base import method_class

    b = Backbone("t", tiny_clip("vit", vision_layers=4), "cpu", torch.float32)
    img = Image.open(Path(__file__).resolve().parents[1] / "data" / "demo-images" / "demo_0000.png")
    gem = method_class("gem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m = gem(b)
        via_prepare = m.localize_prepared(m.prepare(img, depth=3), "a red square", depth=3)
        built = gem(b, depth=3)(img, "a red square")
        default = gem(b)(img, "a red square")
    np.testing.assert_array_equal(via_prepare.score_map, built.score_map)
    assert not np.array_equal(default.score_map, built.score_map)
