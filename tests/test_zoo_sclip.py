"""method=sclip against goldens made by the authors' code (wangf3014/SCLIP, clip/model.py with csa=True).

tests/golden/zoo_sclip.* were written by scripts/zoo_parity/sclip.py, which runs the authors' repository
on the tiny random CLIPs; nothing of ``grounding`` computes the golden tokens.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clip
from grounding.data.images import preprocess, resize_square, to_pil_rgb
from grounding.methods import sclip
from grounding.models.backbones import state_dict_digest
from grounding.models.random import tiny_clip
from grounding.models.vit import block_forward, blocks, head, input_tokens
from grounding.stages.box_search import search_box

GOLDEN = Path(__file__).parent / "golden"
META = json.loads((GOLDEN / "zoo_sclip.json").read_text())
ARR = np.load(GOLDEN / "zoo_sclip.npz")


@pytest.fixture(scope="module")
def models():
    out = {}
    for name, spec in META["models"].items():
        spec = dict(spec)
        digest = spec.pop("digest")
        m = tiny_clip("vit", **spec)
        assert state_dict_digest(m) == digest, (
            f"tiny model {name} changed since tests/golden/zoo_sclip.json was written; "
            f"rerun scripts/zoo_parity/sclip.py")
        out[name] = m
    return out


@pytest.fixture(scope="module")
def images():
    import skimage.data

    return {i: preprocess(resize_square(to_pil_rgb(getattr(skimage.data, i)()), 224), 224, "cpu")
            for i in META["images"]}


@pytest.fixture(scope="module")
def tokens(models, images):
    """Our L2-normalised SCLIP tokens (g², E) per (model, image), computed once."""
    out = {}
    for mname, model in models.items():
        for image, x in images.items():
            t = sclip.patch_tokens(model.visual, x, **sclip.DEFAULTS)[0]
            out[mname, image] = t / t.norm(dim=-1, keepdim=True)
    return out


def _map(tokens, text, sigma):
    """The zoo contract: cos on the g×g grid → bilinear 224 → exp(cos/σ) → min-max."""
    g = int(round(tokens.shape[0] ** 0.5))
    cos = (tokens.double() @ text.double()).float().reshape(1, 1, g, g)
    z = F.interpolate(cos, size=(224, 224), mode="bilinear", align_corners=False)[0, 0].numpy() / np.float32(sigma)
    z = z - z.max() if z.max() > 80 else z
    phi = np.exp(z).astype(np.float32)
    return (phi - phi.min()) / (phi.max() - phi.min() + np.float32(1e-8))


def test_module_contract():
    assert sclip.DEFAULTS == {} and sclip.TEXT_MODE == "plain"


@pytest.mark.parametrize("mname", ["b32", "b16"])
def test_tokens_match_authors(models, tokens, mname):
    for image in META["images"]:
        ours = tokens[mname, image].numpy()
        ref = ARR[f"tokens_{mname}_{image}"]
        assert ours.shape == ref.shape == ((224 // models[mname].visual.conv1.kernel_size[0]) ** 2, 64)
        assert np.abs(ours - ref).max() < 1e-4, (mname, image)


def test_golden_is_not_plain_clip(models, images):
    """The golden must see the modification: CLIP's unmodified last block gives other tokens."""
    v = models["b16"].visual
    with torch.no_grad():
        t = input_tokens(v, images["astronaut"])
        for blk in blocks(v):
            t = block_forward(blk, t)
        plain = head(v, t[:, 1:])[0]
    plain = (plain / plain.norm(dim=-1, keepdim=True)).numpy()
    assert np.abs(plain - ARR["tokens_b16_astronaut"]).max() > 1e-2


def test_maps_and_boxes_match_authors(models, tokens):
    for case in META["cases"]:
        model = models[case["model"]]
        with torch.no_grad():
            text = model.encode_text(clip.tokenize([case["phrase"]])).float()[0]
        text = text / text.norm()
        m = _map(tokens[case["model"], case["image"]], text, META["sigma"])
        key = case["key"]
        assert np.abs(m - ARR[f"map_{key}"]).max() < 1e-4, key
        assert list(search_box(m, META["alpha"], method="hierarchical")) == ARR[f"box_hier_{key}"].tolist(), key
        assert list(search_box(m, META["alpha"], method="exact")) == ARR[f"box_exact_{key}"].tolist(), key


def test_csa_rows_sum_to_two():
    """Oracle: with a single token both softmaxes are 1, so CSA = out_proj(2·v) (the maps are summed, not averaged)."""
    from grounding.models.vit import merge_heads, qkv

    attn = tiny_clip("vit", patch_size=32, seed=0, vision_layers=1, vision_width=128, embed_dim=32).visual \
        .transformer.resblocks[0].attn
    x = torch.randn(3, 1, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, _, v = qkv(attn, x)
        expected = merge_heads(attn, 2 * v)
        got = sclip.correlative_self_attention(attn, x)
    assert torch.allclose(got, expected, atol=1e-5)
