"""ReCLIP / Red-Circle / FGVP rankers against goldens made by the authors' own executors.

tests/golden/visual_prompt.{json,npz} were written by scripts/proposal_parity/make_goldens.py running
allenai/reclip and ylingfeng/FGVP (commits in the json) on tests/proposal_cases.py's cases with the tiny
checkpoints of tests/parity_cases.py: ``.scores`` within 1e-4, ``.probs`` within 5e-5, same argmax.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL
import pytest

from grounding.methods.base import ConfigError
from grounding.methods.visual_prompt import (PRESETS, VisualPromptRanker, draw_caption_bank, localize_proposals,
                                             render_blur)
from grounding.models.backbones import load_backbone
from parity_cases import case_image, tiny_checkpoints
from proposal_cases import BANK, MODEL_SETS

GOLDEN = Path(__file__).resolve().parent / "golden"
META = json.loads((GOLDEN / "visual_prompt.json").read_text())
ARRAYS = np.load(GOLDEN / "visual_prompt.npz")


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    paths, digests = tiny_checkpoints(tmp_path_factory.mktemp("tiny"))
    for name in ("ViT-B/32", "ViT-B/16", "RN50"):
        assert digests[name] == META["checkpoints"][name], f"tiny {name} changed: remake the goldens"
    return {name: load_backbone(paths[name], precision="fp32") for name in ("ViT-B/32", "ViT-B/16", "RN50")}


@pytest.fixture(scope="module")
def results(backbones):
    """Our answer for every golden case; image sides shared across phrases, aggregators and subtraction."""
    sides, out = {}, []
    for case in META["cases"]:
        names = MODEL_SETS[case["models"]]
        ranker = VisualPromptRanker(backbones[names[0]], representations=case["representations"],
                                    aggregator=case["aggregator"], ensemble=[backbones[n] for n in names[1:]],
                                    subtract=case["subtract"], caption_bank=list(BANK) if case["subtract"] else None)
        key = (case["image"], case["models"], tuple(case["representations"]))
        if key not in sides:
            sides[key] = ranker.image_side(case_image(case["image"]), case["boxes"])
        out.append(ranker.rank(sides[key], case["phrase"]))
    return out


def test_goldens_record_their_making():
    assert set(META["commits"]) == {"reclip", "fgvp", "sam"}
    assert all(len(c) == 40 for c in META["commits"].values())
    assert {"pillow", "torch", "opencv"} <= set(META["versions"])
    cases = META["cases"]
    assert {tuple(c["representations"]) for c in cases if len(c["representations"]) == 1} == {
        ("crop",), ("blur",), ("circle",), ("blur_box_mask",)}
    assert any(c["models"] == "ens" for c in cases) and any(c["subtract"] for c in cases)
    assert {c["source"] for c in cases} == {"reclip", "fgvp"} and any(c["aggregator"] == "max" for c in cases)


def test_pillow_matches_the_goldens():
    if PIL.__version__ != META["versions"]["pillow"]:
        pytest.skip(f"goldens made with Pillow {META['versions']['pillow']}, installed {PIL.__version__}: "
                    f"remake them (scripts/proposal_parity/make_goldens.py)")


@pytest.mark.parametrize("i", range(len(META["cases"])))
def test_authors_scores_probs_argmax(results, i):
    if PIL.__version__ != META["versions"]["pillow"]:
        pytest.skip("Pillow version differs from the goldens' (crop scores move by up to 0.03)")
    case, ours = META["cases"][i], results[i]
    np.testing.assert_allclose(ours.scores, ARRAYS[f"scores_{i}"], atol=1e-4, rtol=0, err_msg=str(case))
    np.testing.assert_allclose(ours.probs, ARRAYS[f"probs_{i}"], atol=5e-5, rtol=0, err_msg=str(case))
    assert ours.index == case["argmax"] == int(np.argmax(ARRAYS[f"probs_{i}"]))
    assert ours.box == tuple(case["boxes"][ours.index])


def test_blur_paste_is_imagedraw_rectangle():
    """The sharp region is what Pillow's ``ImageDraw.rectangle`` fills for float corners (truncated, inclusive)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    blurred = np.zeros_like(image)
    for box in ([3.7, 2.2, 9.9, 30.5], [0.0, 0.0, 50.0, 40.0], [10.5, 11.5, 11.5, 12.5]):
        mask = Image.new("L", (50, 40), 0)
        ImageDraw.Draw(mask).rectangle([tuple(box[:2]), tuple(box[2:])], fill=255)
        expect = Image.fromarray(blurred.copy())
        expect.paste(Image.fromarray(image), mask=mask)
        assert np.array_equal(np.asarray(render_blur(image, blurred, box)), np.asarray(expect))
        x1, y1 = int(box[0]), int(box[1])
        assert (np.asarray(mask)[y1, x1], np.asarray(mask)[min(int(box[3]), 39), min(int(box[2]), 49)]) == (255, 255)


def test_options_and_presets(backbones):
    assert PRESETS == {"reclip": ("crop", "blur"), "red_circle": ("crop", "circle"), "fgvp_box": ("crop", "blur_box_mask")}
    for bad in (["crop", "shade"], [], ["crop", "crop"]):
        with pytest.raises(ConfigError, match="representations"):
            VisualPromptRanker(backbones["ViT-B/32"], representations=bad)
    with pytest.raises(ConfigError, match="aggregator"):
        VisualPromptRanker(backbones["ViT-B/32"], aggregator="mean")
    with pytest.raises(ConfigError, match="caption bank"):
        VisualPromptRanker(backbones["ViT-B/32"], subtract=True).bank_mean()
    bank = draw_caption_bank([f"e{i}" for i in range(900)], seed=3)
    assert len(bank) == 500 == len(set(bank)) and bank == draw_caption_bank([f"e{i}" for i in range(899, -1, -1)], 3)
    assert bank != draw_caption_bank([f"e{i}" for i in range(900)], seed=4)


def test_api_shape_and_image_side_reuse(backbones):
    image, boxes = case_image("chelsea"), [[0, 0, 100, 100], [100.5, 20, 300, 250]]
    r = localize_proposals(image, "a cat", backbone=backbones["ViT-B/32"], method="fgvp_box", proposals=boxes,
                           ensemble=[backbones["RN50"]], caption_bank=["a dog"])
    assert r.box == tuple(float(v) for v in boxes[r.index]) and r.scores.shape == r.probs.shape == (2,)
    assert abs(r.probs.sum() - 1) < 1e-6
    ranker = VisualPromptRanker(backbones["ViT-B/32"], name="red_circle")
    side = ranker.image_side(image, boxes)
    a, b = ranker.rank(side, "a cat"), ranker(image, "a cat", boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert ranker.rank(side, "the sky").scores.tolist() != a.scores.tolist()


def test_published_reference_numbers_are_cited_data():
    import pandas as pd

    df = pd.read_csv(Path(__file__).resolve().parents[1] / "grounding" / "proposal_results.csv")
    assert list(df.columns) == ["method", "variant", "proposals", "backbones", "split", "accuracy", "source"]
    assert df["accuracy"].between(0, 100).all() and df["source"].str.len().gt(10).all()
    assert not df.duplicated(["method", "variant", "backbones", "split"]).any()
    fgvp = df[(df.method == "reclip") & (df.backbones == "ViT-B/32+RN50x16")].set_index("split")["accuracy"]
    assert fgvp.to_dict() == {"refcoco_val": 45.8, "refcoco+_val": 47.9, "refcocog_val": 59.3}


@pytest.mark.parametrize("preset", ["reclip", "red_circle", "fgvp_box"])
def test_yaml_presets_instantiate(backbones, preset):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "method" / f"{preset}.yaml")
    ranker = instantiate(cfg, backbone=backbones["ViT-B/32"], device="cpu", precision="fp32", family="refcoco")
    assert ranker.representations == PRESETS[preset] and ranker.aggregator == "sum" and not ranker.subtract
    assert ranker.identity()["name"] == preset
