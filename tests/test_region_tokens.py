"""Fast region tokens (issue #17): each distinct patch membership once, attention over each region's own
patches, several images in one forward, SLIC scales in threads, bf16 on CPU as an opt-in.

The oracle is the original algorithm, kept in the package: ``vit_region_embeddings(..., dedup=False,
dense=True)`` (regions × patches masked attention, one token per region), itself checked against
nn.MultiheadAttention with a full mask in tests/test_dense.py.
"""
import numpy as np
import pytest
import torch
from torch import nn

from grounding.methods import ours_vit
from grounding.models.backbones import resolve_precision
from grounding.models.random import tiny_clip
from grounding.stages.regions import Regions, slic_regions


def random_regions(seed: int, size: int = 224, scales=(6, 20, 60), specks: int = 6) -> Regions:
    """Voronoi cells of random seed points at several scales, plus single-pixel "specks" (regions that own
    no patch centre, whose token attends only to itself) and one scale repeated (duplicate memberships)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    maps = []
    for k in scales:
        pts = rng.uniform(0, size, (k, 2))
        d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
        lab = d.argmin(-1)
        for _ in range(specks):
            lab[rng.integers(size), rng.integers(size)] = k + _  # new label, one pixel
        maps.append(np.unique(lab, return_inverse=True)[1].reshape(size, size).astype(np.int32))
    maps.append(maps[0].copy())
    return Regions(labels=np.stack(maps), counts=[int(m.max()) + 1 for m in maps])


LAYOUTS = {"B/32": dict(patch_size=32), "B/16": dict(patch_size=16)}


@pytest.mark.parametrize("layout,upsample,seed", [("B/32", 1, 0), ("B/32", 2, 1), ("B/16", 1, 2), ("B/16", 2, 3),
                                                  ("B/16", 2, 4)])
def test_fast_paths_equal_dense_oracle(layout, upsample, seed):
    m = tiny_clip("vit", seed=10 + seed, vision_layers=2, **LAYOUTS[layout])
    regions = random_regions(seed)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
    oracle = ours_vit.vit_region_embeddings(m.visual, x, regions, upsample=upsample, dedup=False, dense=True)
    assert oracle.shape[0] == regions.n_regions
    for dedup, dense in [(True, True), (False, False), (True, False)]:
        fast = ours_vit.vit_region_embeddings(m.visual, x, regions, upsample=upsample, dedup=dedup, dense=dense)
        torch.testing.assert_close(fast, oracle, rtol=1e-5, atol=1e-5, msg=f"dedup={dedup} dense={dense}")
    if upsample == 1:
        return
    # chunks of distinct memberships are exact too
    chunked = ours_vit.vit_region_embeddings(m.visual, x, regions, upsample=upsample, region_chunk=7)
    torch.testing.assert_close(chunked, oracle, rtol=1e-5, atol=1e-5)


def test_segment_attention_equals_dense_on_random_tokens():
    """Eq. 7 alone, with memberships of every size 0…P (padding buckets above 16 included)."""
    torch.manual_seed(0)
    d, heads, n_patch = 64, 4, 200
    attn = nn.MultiheadAttention(d, heads)
    xp, xr = torch.randn(n_patch, d), torch.randn(300, d)
    sizes = np.r_[0, 0, 1, 17, 33, 100, n_patch, np.random.default_rng(0).integers(0, 40, 293)]
    member = np.zeros((300, n_patch), bool)
    for i, s in enumerate(sizes):
        member[i, np.random.default_rng(i).choice(n_patch, s, replace=False)] = True
    r, c = np.nonzero(member)
    groups = ours_vit.segment_groups(member.sum(1), c, "cpu")
    w, b = attn.in_proj_weight, attn.in_proj_bias
    with torch.no_grad():
        k_p, v_p = nn.functional.linear(xp, w[d:2 * d], b[d:2 * d]), nn.functional.linear(xp, w[2 * d:], b[2 * d:])
        fast = ours_vit.region_token_attention_segments(attn, k_p, v_p, xr, groups)
        dense = ours_vit.region_token_attention(attn, xp, xr, torch.from_numpy(member))
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)
    assert sorted(torch.cat([g[0] for g in groups]).tolist()) == list(range(300))  # every row once


def test_bucket_length_pads_little():
    for n in range(0, 3000):
        L = ours_vit.bucket_length(n)
        assert n <= L <= max(n, 16) * 9 / 8 and (n > 16 or L == n)


def test_distinct_memberships_invariants():
    member = np.random.default_rng(0).random((500, 49)) < 0.02  # many empty and repeated rows
    first, inverse = ours_vit.distinct_memberships(member)
    np.testing.assert_array_equal(member[first][inverse], member)
    assert len({row.tobytes() for row in member[first]}) == len(first)  # distinct
    assert (np.diff(first) > 0).all() and first[0] == 0  # first occurrences, in order
    assert (inverse[first] == np.arange(len(first))).all()


def test_regions_without_patches_share_one_image_independent_token():
    m = tiny_clip("vit", patch_size=32, seed=3, vision_layers=2)
    regions = random_regions(5)
    member = ours_vit.patch_membership(regions, 7, "cpu").numpy()
    empty = np.nonzero(~member.any(1))[0]
    assert len(empty) >= 2
    embs = [ours_vit.vit_region_embeddings(m.visual, torch.randn(1, 3, 224, 224), regions, upsample=1)[empty]
            for _ in range(2)]
    for e in embs:
        torch.testing.assert_close(e, e[:1].expand_as(e), rtol=0, atol=0)
    torch.testing.assert_close(embs[0], embs[1], rtol=0, atol=0)  # a function of the class token only


def test_batch_equals_per_image():
    m = tiny_clip("vit", patch_size=16, seed=4, vision_layers=2)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(1, 3, 224, 224, generator=g) for _ in range(2)]
    regs = [random_regions(s, scales=(5 + 7 * s, 30)) for s in range(2)]
    batch = ours_vit.vit_region_embeddings_batch(m.visual, xs, regs, upsample=2)
    dense = ours_vit.vit_region_embeddings_batch(m.visual, torch.cat(xs), regs, upsample=2, dense=True)
    assert [b.shape[0] for b in batch] == [r.n_regions for r in regs]
    for x, r, b, bd in zip(xs, regs, batch, dense):
        one = ours_vit.vit_region_embeddings(m.visual, x, r, upsample=2, dedup=False, dense=True)
        torch.testing.assert_close(b, one, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bd, one, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="region sets"):
        ours_vit.vit_region_embeddings_batch(m.visual, xs, regs[:1])


def test_slic_threads_give_the_same_regions():
    import skimage.data

    img = np.ascontiguousarray(skimage.data.astronaut()[::4, ::4])
    scales = [20, 60, 100]
    serial = slic_regions(img, scales, workers=1)
    threaded = slic_regions(img, scales, workers=3)
    default = slic_regions(img, scales)
    for r in (threaded, default):
        assert r.counts == serial.counts
        np.testing.assert_array_equal(r.labels, serial.labels)


def test_bf16_on_cpu_is_an_explicit_opt_in():
    assert resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision("bf16", "cpu") == torch.bfloat16
    assert resolve_precision("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="bf16 as an opt-in"):
        resolve_precision("fp16", "cpu")


def test_bf16_checkpoint_runs_on_cpu(tiny_ckpts):
    from grounding import Localizer
    import skimage.data

    paths, _ = tiny_ckpts
    loc = Localizer(str(paths["ViT-B/32"]), "ours", device="cpu", precision="bf16", n_segments=[50, 100])
    assert loc.backbone.dtype == torch.bfloat16
    out = loc(skimage.data.coffee(), "a cup")
    assert np.isfinite(out.score_map).all() and out.score_map.max() == 1.0


def test_random_clip_names_openai_architectures():
    import clip

    from grounding.models.random import ARCHITECTURES, random_clip

    assert set(ARCHITECTURES) == set(clip.available_models())
    with pytest.raises(ValueError, match="unknown architecture"):
        random_clip("ViT-B/8")
