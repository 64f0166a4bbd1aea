"""ReCLIP / Red-Circle / FGVP on the proposal seat: ``grounding.localize(..., method='reclip', proposals=…)``
equals :class:`VisualPromptRanker` and the authors' goldens; ``python -m grounding.eval split=refcoco_val
method=reclip proposals=gt backbone=vit_b32 'method.ensemble=[CKPT]'`` on the tiny RefCOCO fixture."""
import json
from pathlib import Path

import numpy as np
import PIL
import pytest

import grounding
from grounding.config import compose
from grounding.methods.base import ConfigError
from grounding.methods.visual_prompt import PRESETS, VisualPromptRanker, draw_caption_bank
from grounding.models.backbones import load_backbone
from parity_cases import case_image, tiny_checkpoints
from proposal_cases import BANK, MODEL_SETS, run_app
from test_refcoco import ANNS, IMAGES, REFS, _write

GOLDEN = Path(__file__).resolve().parent / "golden"
META = json.loads((GOLDEN / "visual_prompt.json").read_text())
ARRAYS = np.load(GOLDEN / "visual_prompt.npz")
FAST = ["cache.enabled=false", "progress=false", "save_maps=false"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    paths, digests = tiny_checkpoints(tmp_path_factory.mktemp("tiny"))
    assert all(digests[n] == META["checkpoints"][n] for n in ("ViT-B/32", "RN50")), "tiny models changed"
    return paths


def _cases(preset, subtract):
    return [i for i, c in enumerate(META["cases"]) if tuple(c["representations"]) == PRESETS[preset]
            and c["models"] == "ens" and c["subtract"] == subtract and c["aggregator"] == "sum"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("subtract", [False, True])
def test_api_equals_the_ranker_and_the_goldens(ckpts, preset, subtract):
    found = _cases(preset, subtract)
    assert found, f"no golden for {preset} subtract={subtract}: add it to tests/proposal_cases.py, remake the goldens"
    i = found[0]
    case, names = META["cases"][i], MODEL_SETS["ens"]
    bank = list(BANK) if subtract else None
    image = case_image(case["image"])
    out = grounding.localize(image, case["phrase"], backbone=str(ckpts[names[0]]), method=preset,
                             proposals=case["boxes"], ensemble=[str(ckpts[n]) for n in names[1:]], caption_bank=bank,
                             precision="fp32")
    main, extra = load_backbone(ckpts[names[0]], precision="fp32"), load_backbone(ckpts[names[1]], precision="fp32")
    direct = VisualPromptRanker(main, name=preset, ensemble=[extra], subtract=subtract, caption_bank=bank)(
        image, case["phrase"], case["boxes"])
    np.testing.assert_allclose(out.scores, direct.scores, atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.probs, direct.probs, atol=1e-7, rtol=0)
    assert (out.index, out.box) == (direct.index, direct.box) == (case["argmax"], tuple(case["boxes"][case["argmax"]]))
    if PIL.__version__ == META["versions"]["pillow"]:
        np.testing.assert_allclose(out.scores, ARRAYS[f"scores_{i}"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out.probs, ARRAYS[f"probs_{i}"], atol=5e-5, rtol=0)


def test_api_representations_and_a_dropped_box(ckpts):
    image = case_image("chelsea")
    boxes = [[0, 0, 100, 100], [900, 900, 950, 950], [100.5, 20, 300, 250]]  # the second is outside the image
    out = grounding.localize(image, "a cat", backbone=str(ckpts["ViT-B/32"]), method="reclip", proposals=boxes,
                             representations=["circle"], precision="fp32")
    direct = VisualPromptRanker(load_backbone(ckpts["ViT-B/32"], precision="fp32"), representations=["circle"])(
        image, "a cat", [boxes[0], boxes[2]])
    assert out.scores[1] == -np.inf and out.probs[1] == 0 and out.scores.shape == out.probs.shape == (3,)
    np.testing.assert_allclose(out.scores[[0, 2]], direct.scores, atol=1e-6)
    assert out.index == [0, 2][direct.index] and abs(out.probs.sum() - 1) < 1e-6
    with pytest.raises(ConfigError, match="representations"):
        grounding.localize(image, "a cat", backbone=str(ckpts["ViT-B/32"]), method="reclip", proposals=boxes,
                           representations=["shade"])


def _args(root, ckpts, *extra):
    return ["split=refcoco_val", "proposals=gt", "backbone=vit_b32", f"backbone.name={ckpts['ViT-B/32']}",
            f"data_root={root}", *FAST, *extra]


def _oracle(root, ckpts, rows, **kw):
    """Each row's answer recomputed with the ranker directly on the image's instance boxes."""
    main, extra = load_backbone(ckpts["ViT-B/32"], precision="fp32"), load_backbone(ckpts["RN50"], precision="fp32")
    ranker = VisualPromptRanker(main, ensemble=[extra], **kw)
    files = {im["id"]: im["file_name"] for im in IMAGES}
    out = []
    for row in rows:
        image_id = next(i for i, f in files.items() if row["image"].endswith(f))
        boxes = [[x, y, x + w, y + h] for a in ANNS if a["image_id"] == image_id for x, y, w, h in [a["bbox"]]]
        out.append(list(ranker(PIL.Image.open(row["image"]), row["phrase"], boxes).box))
    return out


@pytest.mark.parametrize("how", ["in_process", pytest.param("subprocess", marks=pytest.mark.slow)])
def test_app_reclip_on_gt_boxes_with_an_ensemble(tmp_path, ckpts, how):
    """`python -m grounding.eval split=refcoco_val method=reclip proposals=gt backbone=vit_b32 'method.ensemble=[CKPT]'`."""
    _write(tmp_path)
    run = tmp_path / "run"
    args = _args(tmp_path, ckpts, "method=reclip", f"method.ensemble=[{ckpts['RN50']}]", "precision=fp32")
    run_app(args, run, how, timeout=600)
    m = json.loads((run / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert m["n"] == len(rows) == sum(len(r["sentences"]) for r in REFS if r["split"] == "val")
    assert m["proposals"]["source"] == "gt" and m["proposals"]["recall"] == 1.0
    assert [r["pred_box"] for r in rows] == _oracle(tmp_path, ckpts, rows)
    ident = json.loads((run / "run.json").read_text())
    assert ident["method_params"]["representations"] == ["crop", "blur"]
    assert ident["method_params"]["ensemble"] == [str(ckpts["RN50"])]


def test_app_subtraction_draws_the_bank_from_the_split_with_the_seed(tmp_path, ckpts):
    from grounding.evaluation.evaluate import evaluate_config

    _write(tmp_path)
    run = tmp_path / "run"
    evaluate_config(compose("config", _args(tmp_path, ckpts, "method=red_circle", "method.subtract=true",
                                            "method.subtract_seed=3", "method.bank_size=2",
                                            f"method.ensemble=[{ckpts['RN50']}]", "precision=fp32")), run)
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    bank = draw_caption_bank([r["phrase"] for r in rows], 3, 2)
    assert len(bank) == 2
    assert [r["pred_box"] for r in rows] == _oracle(tmp_path, ckpts, rows, name="red_circle", subtract=True,
                                                    caption_bank=bank)
    ident = json.loads((run / "run.json").read_text())
    assert ident["method_params"]["subtract_seed"] == 3 and ident["method_params"]["subtract"] is True


def test_proposal_table_has_isolated_scoring_rows_and_the_published_ones(tmp_path):
    import pandas as pd

    from grounding.evaluation.tables import build_tables

    d = tmp_path / "r"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({
        "split": "refcoco_val", "method": "reclip", "backbone": "vit_b32", "backbone_key": "vit_b32", "accuracy": 0.5,
        "n": 4, "iou_threshold": 0.5, "params": {}, "overrides": {},
        "proposals": {"source": "gt", "mean_count": 3.0, "recall": 0.75, "dropped": 0}}))
    (d / "run.json").write_text(json.dumps({"proposals": {"name": "gt"}}))
    t = build_tables([tmp_path])["table_proposal_ranking"]
    disp = t.display.set_index("method")
    assert disp.loc["reclip (isolated scoring)", "refcoco_val"] == "50.00 (75.00)"
    assert disp.loc["reclip (isolated scoring)", "proposals"] == "gt"
    pub = pd.read_csv(ROOT / "grounding" / "proposal_results.csv")
    published = t.display[t.display.method.str.endswith("(published)")]
    assert len(published) == len(pub.drop_duplicates(["method", "variant", "proposals", "backbones"]))
    row = published[(published.method.str.startswith("reclip: ")) & (published.backbone == "ViT-B/32+RN50x16")].iloc[0]
    assert (row["refcoco_val"], row["refcoco_plus_val"], row["refcocog_val"]) == ("45.8", "47.9", "59.3")
    assert row["source"].startswith("ylingfeng/FGVP") and row["proposals"].startswith("detections")
