"""Public API contract: grounding.localize / Localizer / search_box, and the CLI."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import grounding
from grounding.stages.box_search import box_objective
from grounding.stages.cache import FeatureCache
from grounding.api import Localizer, cell_to_pixel_box
from grounding.models.random import tiny_clip


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("w")
    out = {}
    for kind, spec in {"vit": dict(kind="vit", patch_size=32, seed=11), "resnet": dict(kind="resnet", seed=12)}.items():
        p = d / f"{kind}.pt"
        torch.save(tiny_clip(**spec).state_dict(), p)
        out[kind] = p
    return out


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    import skimage.data

    p = tmp_path_factory.mktemp("img") / "coffee.jpg"
    Image.fromarray(skimage.data.coffee()).save(p)
    return p


@pytest.mark.parametrize("kind,method", [("vit", "ours"), ("resnet", "ours"), ("resnet", "denseclip")])
def test_localize_contract(ckpts, photo, kind, method):
    img = np.asarray(Image.open(photo).convert("RGB"))
    h, w = img.shape[:2]
    out = grounding.localize(img, "a cup of coffee", backbone=str(ckpts[kind]), method=method, device="cpu",
                             n_segments=[50, 100] if kind == "vit" else None)
    x1, y1, x2, y2 = out.box
    assert all(isinstance(v, float) for v in out.box)
    assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
    assert out.score_map.ndim == 2 and out.score_map.shape == (224, 224)
    # the box is the searched cell box scaled to image pixels
    assert out.box == pytest.approx(cell_to_pixel_box(out.cell_box, out.score_map.shape, (w, h)))
    # same answer from a path and from a PIL image
    for src in (photo, Image.open(photo)):
        again = grounding.localize(src, "a cup of coffee", backbone=str(ckpts[kind]), method=method, device="cpu",
                                   n_segments=[50, 100] if kind == "vit" else None)
        assert again.box == out.box


def test_params_override_and_validation(ckpts, photo):
    loc = Localizer(str(ckpts["vit"]), "ours", n_segments=[40])
    assert loc.params["alpha"] == 0.9  # the paper's ViT-B/32 Flickr value
    prep = loc.prepare(photo)
    a = loc.localize_prepared(prep, "a spoon", alpha=0.3, box_search="exact")
    b = loc.localize_prepared(prep, "a spoon", alpha=0.3, box_search="brute_force" if False else "exact")
    assert a.cell_box == b.cell_box
    hier = loc.localize_prepared(prep, "a spoon", alpha=0.3, box_search="hierarchical")
    assert box_objective(a.score_map, a.cell_box, 0.3) >= box_objective(a.score_map, hier.cell_box, 0.3) - 1e-12
    with pytest.raises(ValueError, match="unknown key method.beta"):
        loc.localize_prepared(prep, "a spoon", beta=1)
    with pytest.raises(ValueError, match="prepared with"):
        loc.localize_prepared(prep, "a spoon", upsample=1)
    with pytest.raises(ValueError, match="denseclip"):
        Localizer(str(ckpts["vit"]), "denseclip")


def test_prepared_features_reused_across_phrases(ckpts, photo):
    loc = Localizer(str(ckpts["vit"]), "ours", n_segments=[40, 80])
    prep = loc.prepare(photo)
    calls = []
    orig = loc.method.features
    loc.method.features = lambda p: calls.append(1) or orig(p)
    maps = [loc.localize_prepared(prep, ph).score_map for ph in ("a cup", "a spoon", "a table")]
    assert len(calls) == 1
    fresh = loc(photo, "a spoon")
    np.testing.assert_array_equal(fresh.score_map, maps[1])


def test_cache_gives_identical_results_and_skips_model(ckpts, photo, tmp_path):
    cache = FeatureCache(tmp_path / "c")
    loc = Localizer(str(ckpts["vit"]), "ours", n_segments=[40, 80], cache=cache)
    first = loc(photo, "a cup")
    loc2 = Localizer(str(ckpts["vit"]), "ours", n_segments=[40, 80], cache=cache)
    loc2._embed = lambda p: (_ for _ in ()).throw(AssertionError("model ran despite a cache hit"))
    second = loc2(photo, "a cup", alpha=0.5)
    plain = Localizer(str(ckpts["vit"]), "ours", n_segments=[40, 80])(photo, "a cup", alpha=0.5)
    np.testing.assert_array_equal(second.score_map, plain.score_map)
    assert second.box == plain.box
    np.testing.assert_array_equal(first.score_map, plain.score_map)


def test_cache_entries_of_older_feature_code_are_not_read(ckpts, photo, tmp_path, monkeypatch):
    """FEATURE_VERSION is part of every key: after a bump the model runs again instead of reading old entries."""
    import grounding.methods.dense as pipeline

    cache = FeatureCache(tmp_path / "c")
    Localizer(str(ckpts["vit"]), "ours", n_segments=[40], cache=cache)(photo, "a cup")
    monkeypatch.setattr(pipeline, "FEATURE_VERSION", pipeline.FEATURE_VERSION + 1)
    loc = Localizer(str(ckpts["vit"]), "ours", n_segments=[40], cache=cache)
    calls = []
    orig = loc.method.features
    loc.method.features = lambda p: calls.append(1) or orig(p)
    loc(photo, "a cup")
    assert calls == [1]
    assert len(list((tmp_path / "c").glob("*/*.npz"))) == 4  # SLIC + cosines, for each version


def test_over_long_phrase_is_truncated_with_warning(ckpts, photo):
    loc = Localizer(str(ckpts["vit"]), "ours", n_segments=[40])
    with pytest.warns(UserWarning, match="truncated"):
        loc(photo, "a very " * 100 + "long phrase")
    with pytest.raises(ValueError, match="empty"):
        loc(photo, "   ")


def test_cli_prints_json_and_writes_png(ckpts, photo, tmp_path, capsys):
    from grounding.cli.localize import main

    png = tmp_path / "fig.png"
    rc = main([str(photo), "a cup of coffee", "backbone=vit_b32", f"backbone.name={ckpts['vit']}", "method.n_segments=[50]",
               f"out={png}"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["box"]) == 4 and png.is_file() and png.stat().st_size > 1000
    assert main([str(tmp_path / "missing.jpg"), "x", f"backbone.name={ckpts['vit']}"]) == 2
