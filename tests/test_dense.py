"""Dense-feature stage: region tokens (Eq. 7), dilated ResNet trunk, value path (Eq. 13)."""
import numpy as np
import pytest
import torch
from torch import nn

from clip.model import AttentionPool2d
from grounding.data.images import preprocess  # noqa: E402
from grounding.methods import ours_vit, resnet_dense
from grounding.stages.regions import Regions, single_region, slic_regions
from grounding.models.random import tiny_clip


@pytest.mark.parametrize("patch,seed", [(32, 0), (16, 1), (14, 2)])
def test_whole_image_region_equals_encode_image(patch, seed):
    """One region covering every patch at upsample 1 (unpadded stem) is exactly CLIP's image embedding."""
    m = tiny_clip("vit", patch_size=patch, seed=seed, vision_layers=3)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref = m.encode_image(x)[0]
    emb = ours_vit.vit_region_embeddings(m.visual, x, single_region(224, 224), upsample=1, stem_padding=0)[0]
    torch.testing.assert_close(emb, ref, rtol=1e-5, atol=1e-5)


def _reference_style_region_tokens(visual, x, regions, upsample):
    """Oracle for Eq. 7 written the other way round: one nn.MultiheadAttention call over the
    concatenated [patch tokens, region tokens] with a full additive mask (as the paper describes)."""
    stride, pad = ours_vit.stem_geometry(visual, upsample)
    t = nn.functional.conv2d(x, visual.conv1.weight, stride=stride, padding=pad)
    g = t.shape[-1]
    t = torch.cat([visual.class_embedding.reshape(1, 1, -1), t.flatten(2).transpose(1, 2)], 1)
    t = visual.ln_pre(t + ours_vit.upsample_positional_embedding(visual.positional_embedding, g))
    t = t.permute(1, 0, 2)  # LND
    masks = torch.from_numpy(regions.masks()).float()[:, None]
    inside = nn.functional.interpolate(masks, size=(g, g), mode="nearest")[:, 0].reshape(len(masks), -1) > 0
    n = len(masks)
    allowed = torch.cat([inside, torch.eye(n, dtype=torch.bool)], 1)
    mask = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))
    r = t[:1].repeat(n, 1, 1)
    for blk in visual.transformer.resblocks:
        src = blk.ln_1(torch.cat([t[1:], r], 0))
        r = r + blk.attn(src[-n:], src, src, need_weights=False, attn_mask=mask)[0]
        r = r + blk.mlp(blk.ln_2(r))
        t = blk(t)
    return visual.ln_post(r[:, 0]) @ visual.proj


@pytest.mark.parametrize("patch,upsample", [(32, 2), (16, 2), (16, 4), (32, 1)])
def test_region_tokens_match_full_masked_attention(patch, upsample):
    m = tiny_clip("vit", patch_size=patch, seed=3, vision_layers=2)
    rng = np.random.default_rng(0)
    img = np.kron(rng.integers(0, 255, (8, 8, 3)), np.ones((28, 28, 1))).astype(np.uint8)
    regions = slic_regions(img, [10, 30], compactness=10, sigma=0)
    x = preprocess(img, 224, "cpu")
    with torch.no_grad():
        ref = _reference_style_region_tokens(m.visual, x, regions, upsample)
    ours = ours_vit.vit_region_embeddings(m.visual, x, regions, upsample=upsample)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    # chunking region tokens is exact (they never attend to each other)
    chunked = ours_vit.vit_region_embeddings(m.visual, x, regions, upsample=upsample, region_chunk=3)
    torch.testing.assert_close(chunked, ours, rtol=1e-5, atol=1e-5)


def test_region_token_ignores_patches_outside_its_region():
    m = tiny_clip("vit", patch_size=32, seed=4, vision_layers=1)  # one block: patch tokens not yet mixed
    lab = np.zeros((1, 224, 224), np.int32)
    lab[0, :, 112:] = 1
    regions = Regions(labels=lab, counts=[2])
    x = torch.randn(1, 3, 224, 224)
    a = ours_vit.vit_region_embeddings(m.visual, x, regions, upsample=1, stem_padding=0)
    # change only pixels of right-region patches: with one block, the left region's token sees only
    # its own patches' input tokens, which are unchanged, so it must be identical.
    x2 = x.clone()
    x2[..., 128:] = torch.randn_like(x2[..., 128:])
    b = ours_vit.vit_region_embeddings(m.visual, x2, regions, upsample=1, stem_padding=0)
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])


@pytest.mark.parametrize("layers,width,size", [((1, 1, 1, 1), 8, 224), ((2, 1, 2, 1), 8, 160), ((1, 2, 1, 1), 16, 96)])
def test_dilated_trunk_equals_strided_on_lattice(layers, width, size):
    m = tiny_clip("resnet", seed=5, vision_layers=layers, vision_width=width)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        strided = resnet_dense.resnet_trunk(m.visual, x)
        dil = resnet_dense.resnet_trunk(resnet_dense.dilate_resnet_trunk(m.visual), x)
    n = strided.shape[-1]
    assert dil.shape[-1] == size - 30  # the un-padded dilated average filters trim 2+4+8+16 px
    lattice = dil[..., 0:32 * n:32, 0:32 * n:32]
    assert lattice.shape == strided.shape
    torch.testing.assert_close(lattice, strided, rtol=1e-4, atol=1e-5)
    # and the original model is untouched
    assert m.visual.conv1.stride == (2, 2)


def test_value_path_equals_attention_pool_on_single_position():
    """Eq. 13: with one position (and no positional bias) the attention pool outputs c_proj(v_proj(x))."""
    m = tiny_clip("resnet", seed=6)
    ap = m.visual.attnpool
    c = ap.k_proj.in_features
    single = AttentionPool2d(1, c, ap.num_heads, ap.c_proj.out_features)
    single.load_state_dict({k: v for k, v in ap.state_dict().items() if k != "positional_embedding"}, strict=False)
    with torch.no_grad():
        single.positional_embedding.zero_()
        x = torch.randn(4, c, 1, 1)
        torch.testing.assert_close(resnet_dense.value_path_embeddings(ap, x)[:, :, 0, 0], single(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("high_res,expected", [(True, 224), (False, 224)])
def test_resnet_dense_embeddings_shape(high_res, expected):
    m = tiny_clip("resnet", seed=7)
    x = torch.randn(1, 3, 224, 224)
    e = resnet_dense.resnet_dense_embeddings(m.visual, x, high_res=high_res)
    assert e.shape == (1, m.visual.attnpool.c_proj.out_features, expected, expected)
    if not high_res:  # bilinear upsampling of a 7x7 map: smooth, low-rank structure
        assert torch.linalg.matrix_rank(e[0, 0]).item() <= 7


def test_positional_embedding_interpolation_keeps_class_and_grid():
    pos = torch.randn(1 + 49, 8)
    assert ours_vit.upsample_positional_embedding(pos, 7, fp16=False) is pos
    # the reference stores the embedding in fp16 at every upsample factor, 1 included
    torch.testing.assert_close(ours_vit.upsample_positional_embedding(pos, 7), pos.half().float(), rtol=0, atol=0)
    up = ours_vit.upsample_positional_embedding(pos, 14)
    assert up.shape == (1 + 196, 8)
    torch.testing.assert_close(up[0], pos[0].half().float())
    # bilinear interpolation never leaves the range of the original values per channel
    assert (up[1:].max(0).values <= pos[1:].max(0).values + 1e-3).all()
