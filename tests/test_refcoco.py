"""RefCOCO-family loader on a small data set in the refer toolkit's layout, and the restricted unpickler."""
import json
import os
import pickle
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from PIL import Image

from grounding.data.splits import split_info
from grounding.config import conf_dir
from grounding.data.datasets import DatasetError
from grounding.data.refcoco import load_refcoco, ref_in_split
from grounding.data.safe_pickle import safe_load

IMAGES = [{"id": 1, "file_name": "COCO_train2014_000000000001.jpg", "width": 64, "height": 48},
          {"id": 2, "file_name": "COCO_train2014_000000000002.jpg", "width": 40, "height": 40}]
ANNS = [{"id": 10, "image_id": 1, "bbox": [4, 6, 20, 10], "category_id": 1},
        {"id": 11, "image_id": 1, "bbox": [30.5, 5, 10, 30], "category_id": 1},
        {"id": 12, "image_id": 2, "bbox": [0, 0, 40, 40], "category_id": 2},
        {"id": 13, "image_id": 2, "bbox": [1, 2, 3, 4], "category_id": 2},
        {"id": 14, "image_id": 2, "bbox": [10, 10, 5, 5], "category_id": 1},
        {"id": 15, "image_id": 1, "bbox": [0, 0, 8, 8], "category_id": 1}]


def _ref(ref_id, ann_id, image_id, split, sents):
    sentences = [{"tokens": s.split(), "raw": s, "sent_id": sid, "sent": s} for sid, s in sents]
    return {"sent_ids": [sid for sid, _ in sents], "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
            "ann_id": ann_id, "ref_id": ref_id, "image_id": image_id, "split": split, "sentences": sentences,
            "category_id": 1}


REFS = [_ref(0, 10, 1, "train", [(0, "man on left")]),
        _ref(1, 11, 1, "testA", [(1, "man on right"), (2, "right guy")]),
        _ref(2, 12, 2, "testB", [(3, "whole table")]),
        _ref(3, 13, 2, "val", [(4, "small cup"), (5, "cup"), (6, "the cup at top")]),
        _ref(4, 14, 2, "testA", [(7, "woman in middle")]),
        _ref(5, 15, 1, "testAB", [(8, "corner")])]


def _write(root: Path, refs=REFS, images=IMAGES, anns=ANNS, dataset="refcoco", split_by="unc"):
    d = root / "refer" / dataset
    d.mkdir(parents=True, exist_ok=True)
    inst = {"images": images, "annotations": [dict(a, area=a["bbox"][2] * a["bbox"][3], iscrowd=0) for a in anns],
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dining table"}]}
    (d / "instances.json").write_text(json.dumps(inst))
    with open(d / f"refs({split_by}).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)  # the refer toolkit's pickles are Python 2 era
    imdir = root / "coco" / "train2014"
    imdir.mkdir(parents=True, exist_ok=True)
    for im in images:
        Image.new("RGB", (im["width"], im["height"]), (90, 120, 30)).save(imdir / im["file_name"])
    return d


def _load(root, split, **kw):
    return load_refcoco(data_root=str(root), name=f"refcoco_{split}", dataset="refcoco", split_by="unc",
                        split=split, **kw)


def test_one_row_per_sentence_split_letters_and_boxes(tmp_path):
    d = _write(tmp_path)
    a = _load(tmp_path, "testA")
    # testA = refs 1, 4 and the testAB ref 5, in pickle order; one row per sentence
    assert [s.phrase for s in a] == ["man on right", "right guy", "woman in middle", "corner"]
    assert [s.index for s in a] == [0, 1, 2, 3] and [s.csv_row for s in a] == [1, 2, 3, 4]
    assert a[0].gt_box == (30.5, 5.0, 40.5, 35.0) and a[1].gt_box == a[0].gt_box  # [x, y, w, h] -> xyxy
    assert a[2].gt_box == (10.0, 10.0, 15.0, 15.0)
    assert a[0].image_path == str(tmp_path.resolve() / "coco/train2014/COCO_train2014_000000000001.jpg")
    assert all(os.path.isfile(s.image_path) for s in a) and a.n_images == 2
    assert a.n_errors == 0 and a.n_rows_in_csv == 4 and a.family == "refcoco" and a.name == "refcoco_testA"
    assert a.csv_path == str(d / "refs(unc).p")
    assert a.source_files == [str(d / "refs(unc).p"), str(d / "instances.json")]
    assert [s.phrase for s in _load(tmp_path, "testB")] == ["whole table", "corner"]
    assert [s.phrase for s in _load(tmp_path, "val")] == ["small cup", "cup", "the cup at top"]
    assert len(_load(tmp_path, "test")) == 5 and len(_load(tmp_path, "train")) == 1
    lim = _load(tmp_path, "val", limit=2)
    assert [s.index for s in lim] == [0, 1] and lim.n_rows_in_csv == 3


def test_split_rule_is_the_refer_toolkits():
    assert ref_in_split("testA", "testA") and ref_in_split("testAB", "testB") and not ref_in_split("testB", "testA")
    assert ref_in_split("testB", "test") and not ref_in_split("val", "test") and not ref_in_split("valA", "val")


def test_instantiated_from_split_yaml(tmp_path):
    from hydra.utils import instantiate

    _write(tmp_path)
    cfg = OmegaConf.load(conf_dir() / "split" / "refcoco_testA.yaml")
    assert cfg.iou_compare == ">=" and cfg.iou_threshold == 0.5 and split_info(cfg.name).family == "refcoco"
    split = instantiate(cfg.loader, data_root=str(tmp_path), on_error="raise", limit=None, name=cfg.name)
    assert [s.phrase for s in split] == ["man on right", "right guy", "woman in middle", "corner"]
    for name in ("refcoco_val", "refcoco_testB", "refcoco_plus_val", "refcoco_plus_testA", "refcoco_plus_testB",
                 "refcocog_val", "refcocog_test"):
        c = OmegaConf.load(conf_dir() / "split" / f"{name}.yaml")
        assert c.name == name and c.iou_compare == ">="
        assert c.loader.split_by == ("umd" if "refcocog" in name else "unc")
        assert c.loader.refs == f"refer/{c.loader.dataset}/refs({c.loader.split_by}).p"


BAD = {  # ref (in split val) -> what the message must say
    "missing_ann": (_ref(20, 999, 1, "val", [(30, "ghost")]), "annotation id 999 is not in", None),
    "missing_image": (_ref(21, 16, 7, "val", [(31, "lost")]), "image id 7 is not in", None),
    "empty_sentence": (_ref(22, 10, 1, "val", [(32, "  ")]), "sentence is empty", 32),
    "degenerate_box": (_ref(23, 17, 1, "val", [(33, "flat")]), "degenerate bbox", 33),
    "outside_image": (_ref(24, 18, 2, "val", [(34, "far")]), "lies outside the 40x40 image", 34),
    "ann_id_not_int": (_ref(25, "10", 1, "val", [(35, "text id")]), "ann_id '10' is not an integer", 35),
}
EXTRA_ANNS = [{"id": 16, "image_id": 7, "bbox": [1, 1, 2, 2], "category_id": 1},
              {"id": 17, "image_id": 1, "bbox": [5, 5, 0, 9], "category_id": 1},
              {"id": 18, "image_id": 2, "bbox": [30, 30, 20, 5], "category_id": 1}]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_ref_named_raise_or_skip(tmp_path, case):
    bad, expect, sent_id = BAD[case]
    good = _ref(3, 13, 2, "val", [(4, "small cup")])
    d = _write(tmp_path, refs=[good, bad], anns=ANNS + EXTRA_ANNS)
    with pytest.raises(DatasetError) as e:
        _load(tmp_path, "val")
    msg = str(e.value)
    assert str(d / "refs(unc).p") in msg and f"ref {bad['ref_id']}" in msg and expect in msg
    assert f"sentence {bad['sentences'][0]['sent_id']}" in msg
    if "is not in" in expect:
        assert str(d / "instances.json") in msg
    s = _load(tmp_path, "val", on_error="skip")
    assert len(s) == 2 and s.n_errors == 1 and s[0].error is None and s[0].phrase == "small cup"
    assert s[1].index == 1 and s[1].csv_row == 2 and expect in s[1].error
    assert s[1].phrase == bad["sentences"][0]["sent"].strip()


def test_every_sentence_of_a_bad_ref_is_a_skipped_row(tmp_path):
    _write(tmp_path, refs=[_ref(9, 999, 1, "val", [(1, "a"), (2, "b")]), ["not", "a", "ref"],
                           _ref(3, 13, 2, "val", [(4, "small cup")])])
    s = _load(tmp_path, "val", on_error="skip")
    assert [(r.index, r.error is not None) for r in s] == [(0, True), (1, True), (2, True), (3, False)]
    assert "ref 9, sentence 2: annotation id 999" in s[1].error
    assert "ref #1: ref is not a dict" in s[2].error


def test_missing_files_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match=r"refs\(unc\)\.p.*lichengunc/refer"):
        _load(tmp_path, "val")
    d = _write(tmp_path)
    (d / "instances.json").unlink()
    with pytest.raises(DatasetError, match="instances.json"):
        _load(tmp_path, "val")
    with pytest.raises(DatasetError, match="unknown refer split"):
        _load(tmp_path, "testD")


# ------------------------------------------------------------------------ restricted unpickler
class _Payload:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


class _DictSubclass(dict):
    pass


def _payloads(marker: Path):
    import builtins

    return {
        "os.system": _Payload(os.system, (f"touch {marker}",)),
        "builtins.open": _Payload(builtins.open, (str(marker), "w")),
        "builtins.exec": _Payload(builtins.exec, (f"open({str(marker)!r}, 'w')",)),
        "nested in a ref": [{"ref_id": 0, "split": "val", "sentences": [_Payload(os.system, (f"touch {marker}",))]}],
        "dict subclass": _DictSubclass(a=1),
    }


@pytest.mark.parametrize("proto", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("kind", ["os.system", "builtins.open", "builtins.exec", "nested in a ref", "dict subclass"])
def test_crafted_pickle_runs_no_code(tmp_path, kind, proto):
    marker = tmp_path / "pwned"
    p = tmp_path / "refs(unc).p"
    p.write_bytes(pickle.dumps(_payloads(marker)[kind], protocol=proto))
    with pytest.raises(DatasetError) as e:
        safe_load(p)
    assert str(p) in str(e.value) and "not allowed" in str(e.value)
    assert not marker.exists()


def test_loader_refuses_a_crafted_refs_file(tmp_path):
    d = _write(tmp_path)
    marker = tmp_path / "pwned"
    (d / "refs(unc).p").write_bytes(pickle.dumps(_Payload(os.system, (f"touch {marker}",)), protocol=2))
    with pytest.raises(DatasetError, match=r"refs\(unc\)\.p: refused to unpickle: global 'posix.system'"):
        _load(tmp_path, "val")
    assert not marker.exists()


def test_codecs_encode_only_as_bytes_constructor(tmp_path):
    p = tmp_path / "x.p"
    # Python 3 writes bytes as _codecs.encode(text, 'latin1') under protocol 2: admitted
    data = {"b": b"\x00\xff", "s": {1, 2}, "f": frozenset({"x"}), "t": (1.5, None, True), "n": 2 ** 70}
    p.write_bytes(pickle.dumps(data, protocol=2))
    assert safe_load(p) == data
    # ...but not with any other codec
    p.write_bytes(b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(DatasetError, match="only allowed as"):
        safe_load(p)


def test_python2_str_and_truncated_pickles(tmp_path):
    p = tmp_path / "py2.p"
    # a Python 2 protocol-2 dict {'sent': 'a caf\xe9 dog'} with byte strings (SHORT_BINSTRING)
    p.write_bytes(b"\x80\x02}q\x00U\x04sentq\x01U\x0aa caf\xe9 dogq\x02s.")
    assert safe_load(p) == {"sent": "a caf\u00e9 dog"}
    p.write_bytes(pickle.dumps(REFS, protocol=2)[:-20])
    with pytest.raises(DatasetError, match="py2.p: not a readable pickle"):
        safe_load(p)


def test_the_app_runs_refcoco_testA_end_to_end(tmp_path):
    """`python -m grounding.eval split=refcoco_testA backbone=vit_b16 method=ours data_root=DIR` (in process,
    a tiny ViT-B/16-layout checkpoint as backbone.name): IoU ≥ 0.5 counts, written to metrics.json."""
    import torch

    from grounding.config import compose
    from grounding.evaluation.evaluate import evaluate_config
    from grounding.models.random import tiny_clip

    _write(tmp_path)
    ckpt = tmp_path / "tiny_vit_b16.pt"
    torch.save(tiny_clip("vit", patch_size=16, seed=5).state_dict(), ckpt)
    cfg = compose("config", ["split=refcoco_testA", "backbone=vit_b16", "method=ours", f"data_root={tmp_path}",
                             f"backbone.name={ckpt}", "method.n_segments=[20]", "cache.enabled=false",
                             "progress=false"])
    m = evaluate_config(cfg, tmp_path / "run")
    assert m["n"] == 4 and m["iou_compare"] == ">=" and m["iou_threshold"] == 0.5 and m["split"] == "refcoco_testA"
    assert m["params"]["alpha"] == 0.8  # ViT-B/16's paper value; the refcoco family borrows Flickr's
