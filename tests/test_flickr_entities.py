"""Raw Flickr30k Entities loader on the real annotation files in ../shared/fixtures/real.

Expected values were read by hand from Sentences/65567.txt, Annotations/65567.xml and
Sentences/23008340.txt (see the fixtures' README for their provenance).
"""
import shutil

import pytest
from omegaconf import OmegaConf

from conftest import FIXTURES
from grounding.data.splits import split_info
from grounding.config import conf_dir
from grounding.data.datasets import DatasetError
from grounding.data.flickr_entities import load_flickr30k_entities, union_box

ENT = FIXTURES / "flickr30k_entities"
needs_fixtures = pytest.mark.skipif(not (ENT / "Annotations" / "65567.xml").is_file(),
                                    reason=f"real fixtures not found at {FIXTURES}")

# 65567: every phrase occurrence, in file order -> (phrase, first type, union box or drop reason)
OCCURRENCES_65567 = [
    ("A bearded man", "people", [24, 63, 208, 500]),        # sentence 1
    ("a girl", "people", [162, 96, 333, 497]),
    ("a red dress", "clothing", [172, 168, 311, 500]),
    ("The group of people", "people", [1, 62, 333, 499]),   # sentence 2; chain 255544: 2 boxes, union
    ("a wedding", "other", "no_box"),                       # chain 255546: <nobndbox>1
    ("a man", "people", [24, 63, 208, 500]),                # sentence 3
    ("woman", "people", [162, 96, 333, 497]),
    ("a wedding function", "other", "no_box"),
    ("A woman", "people", [162, 96, 333, 497]),             # sentence 4
    ("a man 's arm", "bodyparts", [133, 167, 210, 283]),
    ("a formal event", "scene", "no_box"),                  # chain 255549: <scene>0, <nobndbox>1
    ("A wedding party", "other", [24, 63, 333, 500]),       # sentence 5; chain 255547: 2 boxes, union
    ("a building", "scene", [1, 1, 375, 499]),              # typed scene but boxed: kept
]


def _load(tmp_path, ids, sentences=None, annotations=None, **kw):
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{i}\n" for i in ids))
    return load_flickr30k_entities(data_root=str(tmp_path), name="flickr30k_entities_test", image_list="list.txt",
                                   sentences_dir=str(sentences or ENT / "Sentences"),
                                   annotations_dir=str(annotations or ENT / "Annotations"), **kw)


def test_union_box():
    assert union_box([[24, 63, 208, 500], [162, 96, 333, 497]]) == [24, 63, 333, 500]
    assert union_box([[1, 2, 3, 4]]) == [1, 2, 3, 4]


@needs_fixtures
def test_rows_union_boxes_drops_and_types_on_real_files(tmp_path):
    s = _load(tmp_path, ["65567"])
    kept = [(i, o) for i, o in enumerate(OCCURRENCES_65567) if isinstance(o[2], list)]
    assert [(r.index, r.phrase, r.phrase_type, list(r.gt_box)) for r in s] == \
        [(i, p, t, b) for i, (p, t, b) in kept]
    assert [r.csv_row for r in s] == [i + 1 for i, _ in kept]
    assert all(isinstance(v, float) for r in s for v in r.gt_box) and s.n_errors == 0
    assert s.n_rows_in_csv == 13 and s.dropped == {"notvisual": 0, "scene": 0, "no_box": 3}
    assert s.family == "flickr" and s.csv_path == str(tmp_path / "list.txt")
    assert s.source_files == [str(tmp_path / "list.txt"), str(ENT / "Sentences" / "65567.txt"),
                              str(ENT / "Annotations" / "65567.xml")]
    assert s[0].image_path == str(tmp_path.resolve() / "flickr30k-images" / "65567.jpg")
    assert s[0].phrases == ["A bearded man"]
    lim = _load(tmp_path, ["65567"], limit=4)
    assert [r.index for r in lim] == [0, 1, 2, 3] and lim.n_rows_in_csv == 13 and lim.dropped["no_box"] == 3


@needs_fixtures
def test_multi_type_phrase_takes_its_first_type(tmp_path):
    s = _load(tmp_path, ["65567"], sentences=FIXTURES / "quoted" / "X1AOX1A_Datasets" / "Sentences")
    arm = [r for r in s if r.phrase == "a man 's arm"]
    assert len(arm) == 1 and arm[0].phrase_type == "bodyparts" and arm[0].gt_box == (133.0, 167.0, 210.0, 283.0)


@needs_fixtures
def test_scene_marked_chain_is_dropped_as_scene(tmp_path):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    xml = (ENT / "Annotations" / "65567.xml").read_text()
    # mark chain 255549 ("a formal event") as a whole-image scene, as the XML does for scene phrases
    marked = xml.replace("<name>255549</name>\n\t\t<scene>0</scene>", "<name>255549</name>\n\t\t<scene>1</scene>")
    assert marked != xml
    (ann / "65567.xml").write_text(marked)
    s = _load(tmp_path, ["65567"], annotations=ann)
    assert s.dropped == {"notvisual": 0, "scene": 1, "no_box": 2} and len(s) == 10


@needs_fixtures
def test_notvisual_dropped_and_missing_xml_named(tmp_path):
    # 23008340 has a [/EN#0/notvisual her] phrase and no Annotations file among the fixtures
    with pytest.raises(DatasetError) as e:
        _load(tmp_path, ["65567", "23008340"])
    msg = str(e.value)
    assert "Sentences/23008340.txt, sentence 1" in msg and "(chain 39958)" in msg
    assert f"annotation file not found: {ENT / 'Annotations' / '23008340.xml'}" in msg
    s = _load(tmp_path, ["65567", "23008340"], on_error="skip")
    assert s.n_rows_in_csv == 13 + 17 and s.dropped == {"notvisual": 1, "scene": 0, "no_box": 3}
    assert len(s) == 10 + 16 and s.n_errors == 16
    bad = [r for r in s if r.error]
    assert bad[0].index == 13 and bad[0].phrase == "A young woman" and bad[0].phrase_type == "people"
    assert "her" not in [r.phrase for r in s]


@needs_fixtures
@pytest.mark.parametrize("edit,new,expect", [  # both on chain 255545 ("a man 's arm", box [133, 167, 210, 283])
    ("<xmax>210</xmax>", "<xmax>100</xmax>", "degenerate box [133, 167, 100, 283]"),
    ("<ymax>283</ymax>", "<ymax>600</ymax>", "box [133, 167, 210, 600] lies outside the 375x500 image"),
])
def test_bad_box_named_raise_or_skip(tmp_path, edit, new, expect):
    ann = tmp_path / "Annotations"
    ann.mkdir()
    xml = (ENT / "Annotations" / "65567.xml").read_text()
    assert xml.count(edit) == 1
    (ann / "65567.xml").write_text(xml.replace(edit, new))
    with pytest.raises(DatasetError) as e:
        _load(tmp_path, ["65567"], annotations=ann)
    msg = str(e.value)
    assert expect in msg and "65567.txt, sentence 4" in msg and "(chain 255545)" in msg
    assert str(ann / "65567.xml") in msg
    s = _load(tmp_path, ["65567"], annotations=ann, on_error="skip")
    bad = [(r.index, r.phrase) for r in s if r.error]
    assert len(s) == 10 and bad == [(9, "a man 's arm")]


@needs_fixtures
def test_split_yamls_read_the_official_lists(tmp_path):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    d = tmp_path / "flickr30k_entities"
    (d / "Sentences").mkdir(parents=True)
    (d / "Annotations").mkdir()
    for split in ("test", "val"):
        shutil.copy(ENT / f"{split}.txt", d / f"{split}.txt")
        cfg = OmegaConf.load(conf_dir() / "split" / f"flickr30k_entities_{split}.yaml")
        assert split_info(cfg.name).family == "flickr" and cfg.iou_compare == ">" and cfg.iou_threshold == 0.5
        s = instantiate(cfg.loader, data_root=str(tmp_path), on_error="skip", limit=None, name=cfg.name)
        # no Sentences files here: one error row per listed image, in list order
        first = (ENT / f"{split}.txt").read_text().split()[0]
        assert s.name == cfg.name and len(s) == s.n_errors == 1000 and s.n_rows_in_csv == 1000
        assert s[0].error == f"Sentences file not found: {d / 'Sentences' / first}.txt"
        with pytest.raises(InstantiationException) as e:  # Hydra wraps the loader's error
            instantiate(cfg.loader, data_root=str(tmp_path), on_error="raise", limit=None, name=cfg.name)
        assert isinstance(e.value.__cause__, DatasetError) and f"Sentences/{first}.txt" in str(e.value.__cause__)
