"""Proposal sources, the proposal-ranking seat, dense_rank / det_label, and runs with proposals on a tiny
RefCOCO-format split (tests/test_refcoco.py's fixture): recall checked against a brute-force count."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from grounding.config import compose
from grounding.errors import GroundingError
from grounding.proposals.base import ProposalError, ProposalSet
from proposal_cases import run_app
from test_refcoco import ANNS, IMAGES, _write

FAST = ["cache.enabled=false", "progress=false", "save_maps=false"]


def iou(a, b):  # an independent IoU (continuous corners)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def clip_box(b, w, h):
    c = [min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h)]
    return c if c[2] > c[0] and c[3] > c[1] else None


def brute_force(rows, boxes_of, sizes):
    """(recall, mean count, dropped over images) by loops over rows and boxes (IoU >= 0.5: RefCOCO's rule)."""
    hits, counts, dropped = 0, [], {}
    for r in rows:
        w, h = sizes[r["image"]]
        kept = [b for b in boxes_of[r["image"]] if clip_box(b, w, h) is not None]
        dropped[r["image"]] = len(boxes_of[r["image"]]) - len(kept)
        counts.append(len(kept))
        hits += any(iou(b, r["gt_box"]) >= 0.5 for b in kept)
    return hits / len(rows), sum(counts) / len(counts), sum(dropped.values())


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from grounding.models.random import tiny_clip

    p = tmp_path_factory.mktemp("bb") / "tiny_vit_b16.pt"
    torch.save(tiny_clip("vit", patch_size=16, seed=5).state_dict(), p)
    return p


def _cfg(root, ckpt, *extra):
    return compose("config", ["split=refcoco_testA", "backbone=vit_b16", f"backbone.name={ckpt}",
                              f"data_root={root}", *FAST, *extra])


def _rows(run):
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]


def _gt_boxes():
    out = {}
    for a in ANNS:
        x, y, w, h = a["bbox"]
        out.setdefault(a["image_id"], []).append([x, y, x + w, y + h])
    return out


def _paths(root):
    return {im["id"]: str(Path(root).resolve() / "coco/train2014" / im["file_name"]) for im in IMAGES}


@pytest.mark.parametrize("how", ["in_process", pytest.param("subprocess", marks=pytest.mark.slow)])
def test_app_crop_rank_on_gt_boxes_end_to_end(tmp_path, ckpt, how):
    """`python -m grounding.eval split=refcoco_testA method=crop_rank proposals=gt backbone=vit_b16`."""
    _write(tmp_path)
    run = tmp_path / "run"
    args = ["split=refcoco_testA", "method=crop_rank", "proposals=gt", "backbone=vit_b16", f"backbone.name={ckpt}",
            f"data_root={tmp_path}", *FAST]
    run_app(args, run, how)
    m = json.loads((run / "metrics.json").read_text())
    rows = _rows(run)
    gt, paths = _gt_boxes(), _paths(tmp_path)
    boxes_of = {paths[i]: b for i, b in gt.items()}
    sizes = {paths[im["id"]]: (im["width"], im["height"]) for im in IMAGES}
    recall, mean_count, dropped = brute_force(rows, boxes_of, sizes)
    assert m["proposals"] == {"source": "gt", "mean_count": pytest.approx(mean_count), "recall": pytest.approx(recall),
                              "dropped": dropped}
    assert recall == 1.0 and m["n"] == 4  # the referred box is one of the instances
    for row in rows:  # the answer is one of the image's instance boxes
        assert row["pred_box"] in boxes_of[row["image"]]
    ident = json.loads((run / "run.json").read_text())
    assert ident["proposals"]["name"] == "gt"


def _detections(root, tmp_path, boxes1, boxes2, fmt="dict"):
    p = tmp_path / "dets.json"
    if fmt == "dict":
        p.write_text(json.dumps({"1": boxes1, "2": boxes2}))
    else:
        p.write_text(json.dumps([{"image_id": 1, "box": b, "score": 0.5} for b in boxes1]
                                + [{"image_id": 2, "box": b} for b in boxes2]))
    return p


DETS1 = [[29, 6, 12, 28], [0, 0, 9, 7], [100, 100, 5, 5], [-20, 2, 22, 10], [50, 40, 30, 30]]  # xywh; one outside


def test_both_detection_layouts_read_the_same(tmp_path):
    from grounding.proposals.detections import DetectionsFile

    a = DetectionsFile(file=str(_detections(tmp_path, tmp_path, DETS1, [[2, 2, 10, 10]], "dict")))
    b = DetectionsFile(file=str(_detections(tmp_path, tmp_path, DETS1, [[2, 2, 10, 10]], "list")))
    for k in ("1", "2"):
        assert a._set(k).boxes.tolist() == b._set(k).boxes.tolist()
    assert b._set("1").scores.tolist() == [0.5] * 5 and a._set("1").scores is None
    assert a._set("1").boxes[0].tolist() == [29, 6, 41, 34]


@pytest.mark.parametrize("fmt", ["dict"])
def test_dense_rank_on_a_detections_file_recall_is_brute_force(tmp_path, ckpt, fmt):
    from grounding.evaluation.evaluate import evaluate_config as evaluate

    _write(tmp_path)
    dets = _detections(tmp_path, tmp_path, DETS1, [[2, 2, 10, 10]], fmt)
    cfg = _cfg(tmp_path, ckpt, "method=dense_rank", "proposals=detections", f"proposals.file={dets}",
               "method.dense=ours", "method.alpha=0.5")
    m = evaluate(cfg, tmp_path / "run")
    rows = _rows(tmp_path / "run")
    paths = _paths(tmp_path)
    boxes_of = {paths[1]: [[x, y, x + w, y + h] for x, y, w, h in DETS1],
                paths[2]: [[2, 2, 12, 12]]}
    sizes = {paths[im["id"]]: (im["width"], im["height"]) for im in IMAGES}
    recall, mean_count, dropped = brute_force(rows, boxes_of, sizes)
    assert dropped == 1 and 0 < recall < 1  # the fixture has a hit and a miss
    assert m["proposals"] == {"source": "detections", "mean_count": pytest.approx(mean_count),
                              "recall": pytest.approx(recall), "dropped": dropped}
    for row in rows:
        assert row["pred_box"] in boxes_of[row["image"]]
    ident = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(ident["proposals_files"]["sha256"]) == 64 and ident["proposals"]["file"] == str(dets)


def test_image_without_detections_gets_the_whole_image(tmp_path):
    from grounding.data.refcoco import load_refcoco
    from grounding.proposals.detections import DetectionsFile

    _write(tmp_path)
    dets = _detections(tmp_path, tmp_path, DETS1, [])
    split = load_refcoco(data_root=str(tmp_path), name="t", split="testA")
    src = DetectionsFile(file=str(dets))
    assert src.bind(split) == {}
    got = src.for_image(_paths(tmp_path)[2])
    assert got.boxes.tolist() == [[0, 0, 40, 40]]


@pytest.mark.parametrize("content, match", [
    ("{not json", r"dets.json: not a valid JSON detections file"),
    (json.dumps({"1": [[0, 0, 0, 5]], "2": []}), r"dets.json, image id 1: box \[0, 0, 0, 5\] has zero or negative"),
    (json.dumps({"1": [[0, 0, 3, -5]], "2": []}), r"dets.json, image id 1: .*negative"),
    (json.dumps({"1": [[0, 0, 3, 5]]}), r"dets.json: no entry for image id 2"),
])
def test_bad_detections_are_one_line_errors_before_a_model_loads(tmp_path, content, match):
    _write(tmp_path)
    dets = tmp_path / "dets.json"
    dets.write_text(content)
    cfg = compose("config", ["split=refcoco_testA", "backbone=vit_b16", "method=crop_rank", "proposals=detections",
                             f"proposals.file={dets}", f"data_root={tmp_path}", *FAST])
    with pytest.raises(GroundingError, match=match) as e:
        _no_model(cfg, tmp_path)
    assert "\n" not in str(e.value)


def _no_model(cfg, tmp_path):
    """evaluate() up to the proposals' binding (what runs before any model loads)."""
    from grounding.data.splits import load_split
    from grounding.evaluation.proposal_runs import bind_source, check_proposals

    check_proposals(cfg)
    split = load_split(cfg.split, cfg.data_root, family=cfg.family.name)
    return bind_source(cfg, split, "raise")


def test_bad_box_under_on_error_skip_is_a_recorded_skip(tmp_path, ckpt):
    from grounding.evaluation.evaluate import evaluate_config as evaluate

    _write(tmp_path)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps({"1": [[0, 0, 3, 5]], "2": [[1, 1, 0, 4]]}))
    m = evaluate(_cfg(tmp_path, ckpt, "method=crop_rank", "proposals=detections", f"proposals.file={dets}",
                      "on_error=skip"), tmp_path / "run")
    rows = {r["index"]: r for r in _rows(tmp_path / "run")}
    assert m["n_skipped"] == 1 and rows[2]["skipped"] and "image id 2" in rows[2]["error"]
    assert m["proposals"]["recall"] == pytest.approx(sum(r.get("proposals", {}).get("hit", False)
                                                         for r in rows.values()) / 4)


def test_zero_usable_proposals_is_a_recorded_miss(tmp_path, ckpt):
    from grounding.evaluation.evaluate import evaluate_config as evaluate

    _write(tmp_path)
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps({"1": [[200, 200, 3, 5]], "2": [[1, 1, 4, 4]]}))  # image 1: all outside
    m = evaluate(_cfg(tmp_path, ckpt, "method=crop_rank", "proposals=detections", f"proposals.file={dets}"),
                 tmp_path / "run")
    rows = {r["index"]: r for r in _rows(tmp_path / "run")}
    assert rows[0]["pred_box"] is None and "no usable proposal" in rows[0]["miss"] and not rows[0]["hit"]
    assert m["n_skipped"] == 0 and m["n_missed_no_proposal"] == 3 and m["proposals"]["dropped"] == 1
    assert m["proposals"]["mean_count"] == pytest.approx(1 / 4)


def test_gt_refused_on_a_csv_split_before_a_model_loads():
    from grounding.eval import check_command_line

    with pytest.raises(GroundingError, match="proposals=gt cannot serve split flickr_s1") as e:
        check_command_line(["split=flickr_s1", "method=crop_rank", "proposals=gt", "backbone=vit_b16"], files=False)
    assert "\n" not in str(e.value)
    with pytest.raises(GroundingError, match="method=dense_rank ranks proposals"):
        check_command_line(["split=refcoco_val", "method=dense_rank", "backbone=vit_b16"], files=False)
    with pytest.raises(GroundingError, match="method=ours does not rank proposals"):
        check_command_line(["split=refcoco_val", "method=ours", "proposals=gt", "backbone=vit_b16"], files=False)


def test_proposals_are_part_of_the_run_identity():
    from grounding.config import run_dir_name, run_spec

    a = compose("config", ["split=refcoco_val", "method=crop_rank", "proposals=gt"])
    b = compose("config", ["split=refcoco_val", "method=crop_rank", "proposals=selective_search"])
    c = compose("config", ["split=refcoco_val", "method=crop_rank"])
    assert run_spec(a)["proposals"]["name"] == "gt" and "proposals" not in run_spec(c)
    assert len({run_dir_name(x) for x in (a, b, c)}) == 3


def test_clipping_drops_and_counts():
    s = ProposalSet(np.array([[-5, -5, 10, 10], [50, 0, 60, 5], [0, 0, 4, 4.0]])).clipped((40, 30))
    assert s.boxes.tolist() == [[0, 0, 10, 10], [0, 0, 4, 4]] and s.dropped == 1
    assert s.given.tolist() == [[-5, -5, 10, 10], [0, 0, 4, 4]] and s.index.tolist() == [0, 2]


class DuckRanker:  # not a ProposalMethod: the seat's protocol only
    needs_proposals = True
    name, params = "duck", {}

    def prepare(self, image, proposals=None):
        return {"image_size": (64, 48), "boxes": np.asarray(proposals.boxes)}

    def localize_prepared(self, prepared, phrase):
        class R:
            pass

        r = R()
        areas = np.prod(prepared["boxes"][:, 2:] - prepared["boxes"][:, :2], 1)
        r.index = int(np.argmax(areas))
        r.box, r.scores, r.score_map = tuple(prepared["boxes"][r.index]), areas, None
        return r


def test_a_duck_typed_ranker_runs_with_a_source(tmp_path):
    from grounding.data.refcoco import load_refcoco
    from grounding.evaluation.evaluator import GroundingEvaluator
    from grounding.evaluation.proposal_runs import with_proposals
    from grounding.evaluation.runner import run_split
    from grounding.proposals.gt import GroundTruthBoxes

    _write(tmp_path)
    split = load_refcoco(data_root=str(tmp_path), name="t", split="testA")
    src = GroundTruthBoxes()
    src.bind(split)

    class Prep(dict):
        image_size = property(lambda self: self["image_size"])

    duck = DuckRanker()
    duck.prepare = lambda image, proposals=None, _p=duck.prepare: Prep(_p(image, proposals))
    m = run_split(with_proposals(duck, src), list(split), tmp_path / "run", identity={"split": {"name": "t"}},
                  evaluator=GroundingEvaluator(0.5, ">="), progress=False, save_maps=False)
    rows = _rows(tmp_path / "run")
    largest = {1: [30.5, 5, 40.5, 35], 2: [0, 0, 40, 40]}
    assert [r["pred_box"] for r in rows] == [largest[1], largest[1], largest[2], largest[1]]
    assert m["n"] == 4 and "proposals" not in m  # a duck result without proposal_info: no block


def test_dense_rank_is_the_box_objective_restricted_to_the_proposals(ckpt):
    from grounding.api import Localizer
    from grounding.methods.dense_rank import pixel_to_cell_box
    from grounding.stages.box_search import box_weights

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    loc = Localizer(str(ckpt), "dense_rank", family="refcoco", dense="ours")
    loc.method.dense.params["n_segments"] = [20]
    props = [[0, 0, 30, 20], [10, 10, 60, 40], [5, 30, 20, 47.5], [0, 0, 64, 48]]
    out = loc(image, "a red cup", proposals=props)
    m = out.score_map
    hmap = box_weights(m, loc.method.alpha)
    brute = []
    for b in props:  # loops over cells, not slicing
        x1, y1, x2, y2 = pixel_to_cell_box(b, m.shape, (64, 48))
        brute.append(sum(hmap[y, x] for y in range(y1, y2 + 1) for x in range(x1, x2 + 1)))
    np.testing.assert_allclose(out.scores, brute, rtol=1e-9, atol=1e-12)
    assert out.index == int(np.argmax(brute)) and out.box == tuple(float(v) for v in props[out.index])


def test_api_returns_a_given_box_index_and_one_score_per_proposal(ckpt):
    import grounding

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    props = [[0, 0, 30, 20], [100, 100, 120, 130], [10.5, 10, 60, 40]]
    out = grounding.localize(image, "a cup", backbone=str(ckpt), method="crop_rank", proposals=props)
    assert len(out.scores) == 3 and out.scores[1] == -np.inf and out.index in (0, 2)
    assert out.box == tuple(props[out.index]) and out.score_map is None
    with pytest.raises(GroundingError, match="zero or negative"):
        grounding.localize(image, "a cup", backbone=str(ckpt), method="crop_rank", proposals=[[5, 5, 5, 9]])
    with pytest.raises(GroundingError, match="does not rank proposals"):
        grounding.localize(image, "a cup", backbone=str(ckpt), method="ours", proposals=props)


def test_the_seat_computes_the_image_side_once_per_image_and_proposal_set(ckpt):
    from grounding.api import Localizer

    loc = Localizer(str(ckpt), "crop_rank")
    calls = []
    orig = loc.method.image_side
    loc.method.image_side = lambda *a: calls.append(1) or orig(*a)
    image = np.full((48, 64, 3), 120, np.uint8)
    for phrase in ("a", "b", "c"):
        loc(image, phrase, proposals=[[0, 0, 10, 10], [5, 5, 30, 30]])
    assert len(calls) == 1
    loc(image, "a", proposals=[[0, 0, 10, 10]])
    assert len(calls) == 2


def test_det_label_ties_broken_by_detection_score(ckpt):
    from grounding.api import Localizer

    loc = Localizer(str(ckpt), "det_label")
    image = np.full((48, 64, 3), 120, np.uint8)
    ps = ProposalSet(np.array([[0, 0, 10, 10], [5, 5, 30, 30], [1, 1, 20, 20.0]]), np.array([0.2, 0.9, 0.5]),
                     ["dog", "cat", "cat"])
    out = loc(image, "a cat", proposals=ps)
    assert out.scores[1] == out.scores[2]  # same label, same text score
    best_label = 1 if out.scores[1] >= out.scores[0] else 0
    assert out.index == best_label  # among the tied cats, the higher detection score
    text = loc.method._text
    assert out.scores[0] == pytest.approx(float(text("a photo of a dog") @ text("a cat")), abs=1e-6)
    with pytest.raises(ProposalError, match="det_label needs labelled proposals"):
        loc(image, "a cat", proposals=[[0, 0, 10, 10]])


def test_det_label_runs_with_a_random_weight_torchvision_detector(tmp_path, ckpt):
    from torchvision.models import get_model

    from grounding.evaluation.evaluate import evaluate_config as evaluate

    _write(tmp_path)
    torch.manual_seed(0)
    det = get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights=None, weights_backbone=None, num_classes=91)
    wpath = tmp_path / "det.pth"
    torch.save(det.state_dict(), wpath)
    m = evaluate(_cfg(tmp_path, ckpt, "method=det_label", "proposals=detector",
                      "proposals.arch=fasterrcnn_mobilenet_v3_large_320_fpn", f"proposals.weights={wpath}",
                      "proposals.score_threshold=0.0", "proposals.top_k=5"), tmp_path / "run")
    assert m["n"] == 4 and m["n_skipped"] == 0 and m["proposals"]["source"] == "detector"
    assert 1 <= m["proposals"]["mean_count"] <= 5
    ident = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(ident["proposals_files"]["weights_sha256"]) == 64


def test_detector_labels_from_torchvision_metadata_and_bad_weights(tmp_path):
    from grounding.proposals.detector import TorchvisionDetector, label_names

    assert label_names("fasterrcnn_resnet50_fpn_v2")[1] == "person"
    (tmp_path / "labels.txt").write_text("bg\nthing\n")
    assert label_names("x", str(tmp_path / "labels.txt")) == ["bg", "thing"]
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    src = TorchvisionDetector(arch="fasterrcnn_mobilenet_v3_large_320_fpn", weights=str(bad))
    with pytest.raises(ProposalError, match="bad.pth: not a state dict"):
        src.load()
    with pytest.raises(ProposalError, match="not a torchvision detection model"):
        TorchvisionDetector(arch="resnet50", weights=str(bad))


def _fake_run(root, name, method, split, acc, proposals=None, recall=None):
    d = root / name
    d.mkdir(parents=True)
    m = {"split": split, "method": method, "backbone": "vit_b16", "backbone_key": "vit_b16", "accuracy": acc,
         "n": 4, "iou_threshold": 0.5, "params": {}, "overrides": {}}
    if recall is not None:
        m["proposals"] = {"source": proposals or "selective_search", "mean_count": 3.0, "recall": recall, "dropped": 0}
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "run.json").write_text(json.dumps({"proposals": {"name": proposals}} if proposals else {}))


def test_tables_show_acc_and_recall_and_both_families_on_refcoco(tmp_path):
    from grounding.evaluation.tables import build_tables

    _fake_run(tmp_path, "a", "crop_rank", "refcoco_testA", 0.5, "gt", 0.75)
    _fake_run(tmp_path, "b", "crop_rank", "refcoco_testA", 0.25, "detections", 0.5)
    _fake_run(tmp_path, "c", "ours", "refcoco_testA", 0.4)
    t = build_tables([tmp_path])
    prop = t["table_proposal_ranking"].display
    assert list(prop.columns) == ["method", "proposals", "backbone", "refcoco_testA"]
    cells = dict(zip(prop.proposals, prop.refcoco_testA))
    assert cells == {"gt": "50.00 (75.00)", "detections": "25.00 (50.00)"}
    ref = t["table_refcoco"].display
    assert dict(zip(ref["method (backbone)"], ref.refcoco_testA)) == {
        "crop_rank on detections (vit_b16)": "25.0", "crop_rank on gt (vit_b16)": "50.0", "ours (vit_b16)": "40.0"}


def test_grounding_localize_cli_ranks_given_boxes(tmp_path, ckpt, capsys):
    from PIL import Image

    from grounding.cli.localize import main

    photo = tmp_path / "p.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(photo)
    rc = main([str(photo), "a cup", "backbone=vit_b16", f"backbone.name={ckpt}", "method=crop_rank",
               "proposals.boxes=[[0,0,30,20],[10,10,60,40]]", f"out={tmp_path / 'f.png'}"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["box"] == [[0, 0, 30, 20], [10, 10, 60, 40]][out["index"]] and len(out["scores"]) == 2
    assert main([str(photo), "a cup", "backbone=vit_b16", f"backbone.name={ckpt}", "method=crop_rank",
                 "proposals.boxes=[[0,0,0,20]]"]) == 2
    assert "zero or negative" in capsys.readouterr().err
