"""Parity of grounding.methods.clearclip with the authors' code (mc-lan/ClearCLIP).

tests/golden/zoo_clearclip.* were written by scripts/zoo_parity/clearclip.py, which runs the repository's own
``open_clip`` (``encode_image(x, 'ClearCLIP', ignore_residual=True)``) on the tiny random CLIPs below.
Tokens and maps must agree within 1e-4, boxes exactly.
"""
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clip
from grounding.data.images import preprocess, resize_square, to_pil_rgb
from grounding.methods import clearclip
from grounding.models import vit
from grounding.models.backbones import state_dict_digest
from grounding.models.random import tiny_clip
from grounding.stages.box_search import search_box

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "zoo_clearclip.json").read_text())
ARR = np.load(GOLDEN / "zoo_clearclip.npz")
RERUN = "rerun scripts/zoo_parity/clearclip.py"


@pytest.fixture(scope="module")
def models():
    out = {}
    for name, spec in META["models"].items():
        m = tiny_clip("vit", **{k: v for k, v in spec.items() if k != "digest"})
        assert state_dict_digest(m) == spec["digest"], f"tiny model {name} changed since the golden was written; {RERUN}"
        out[name] = m
    return out


@lru_cache(maxsize=None)
def _image(name):
    import skimage.data

    return preprocess(resize_square(to_pil_rgb(getattr(skimage.data, name)()), 224), 224, "cpu")


def _map(tokens, text, sigma):
    """The zoo contract: cos grid → bilinear 224 → exp(cos/σ) → min–max."""
    g = int(round(tokens.shape[0] ** 0.5))
    cos = torch.as_tensor(tokens @ text, dtype=torch.float32).reshape(1, 1, g, g)
    z = F.interpolate(cos, size=(224, 224), mode="bilinear", align_corners=False)[0, 0].numpy() / np.float32(sigma)
    phi = np.exp(z - z.max() if z.max() > 80 else z)
    return (phi - phi.min()) / (phi.max() - phi.min() + np.float32(1e-8))


@pytest.mark.parametrize("model", ["b32", "b16"])
def test_clearclip_matches_authors(models, model):
    m = models[model]
    g = 224 // vit.patch_size(m.visual)
    for image in META["images"]:
        tok = clearclip.patch_tokens(m.visual, _image(image), **clearclip.DEFAULTS)[0]
        assert tok.shape == (g * g, m.visual.proj.shape[1])
        tok = F.normalize(tok, dim=-1).numpy()
        ref_tok = ARR[f"tokens_{model}_{image}"]
        assert np.abs(tok - ref_tok).max() < 1e-4, f"{model}/{image}: tokens differ from ClearCLIP's"
        for i, phrase in enumerate(META["phrases"]):
            key = f"{model}_{image}_{i}"
            with torch.no_grad():
                t = m.encode_text(clip.tokenize([phrase]))[0]
            ours = _map(tok, F.normalize(t, dim=0).numpy(), META["sigma"])
            assert np.abs(ours - ARR[f"map_{key}"]).max() < 1e-4, key
            assert list(search_box(ours, META["alpha"], method="hierarchical")) == ARR[f"box_hier_{key}"].tolist(), key
            assert list(search_box(ours, META["alpha"], method="exact")) == ARR[f"box_exact_{key}"].tolist(), key


def test_golden_is_not_plain_clip(models):
    """The goldens discriminate: CLIP's unmodified last block gives clearly different tokens."""
    m = models["b16"]
    x = _image("astronaut")
    t = vit.input_tokens(m.visual, x)
    with torch.no_grad():
        for blk in vit.blocks(m.visual):
            t = vit.block_forward(blk, t)
        plain = F.normalize(vit.head(m.visual, t[:, 1:]), dim=-1)[0].numpy()
    assert np.abs(plain - ARR["tokens_b16_astronaut"]).max() > 1e-2
