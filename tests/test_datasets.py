"""Split loaders on generated ZSG CSVs and the real Flickr30k Entities fixtures."""
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import FIXTURES
from grounding.data.datasets import DatasetError, check_box_in_image
from grounding.data.flickr_entities import parse_sentence, phrase_type_dict, read_flickr30k_entities
from grounding.data.splits import load_split_by_name as load_split, split_names
from grounding.evaluation.runner import _check_image_path

ENT = FIXTURES / "flickr30k_entities"
needs_fixtures = pytest.mark.skipif(not ENT.is_dir(), reason=f"shared fixtures not found at {ENT}")


def _img(path, w=100, h=80):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def _flickr(root, rows, sub="flickr30k_c1", name="test", header="img_id,bbox,query,extra"):
    p = root / "ds_csv_ann" / sub / "csv_dir" / f"{name}.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(header + "\n" + "\n".join(rows) + "\n")
    return p


def test_flickr_layout_and_list_queries(tmp_path):
    _img(tmp_path / "flickr30k-images" / "1.jpg")
    _img(tmp_path / "flickr30k-images" / "2.jpg")
    _flickr(tmp_path, ['1,"[1, 2, 50, 60]","[\'a man\', \'the man\']",x', '2.jpg,"[0, 0, 100, 80]",a dog,y',
                       '1,"[10, 10, 20, 20]",a hat,z'])
    s = load_split("flickr_s1", tmp_path)
    assert len(s) == 3 and s.n_images == 2 and s.family == "flickr"
    assert s[0].phrase == "a man" and s[0].phrases == ["a man", "the man"] and s[0].gt_box == (1, 2, 50, 60)
    assert s[1].image_path.endswith("flickr30k-images/2.jpg")
    assert [x.csv_row for x in s] == [1, 2, 3] and [x.index for x in s] == [0, 1, 2]
    assert len(load_split("flickr_s1", tmp_path, limit=2)) == 2


def test_vg_layout(tmp_path):
    _img(tmp_path / "vg" / "VG_100K" / "5.jpg")
    p = tmp_path / "ds_csv_ann" / "vg_split" / "csv_dir" / "test_balanced_c2.csv"
    p.parent.mkdir(parents=True)
    p.write_text('image_fpath,bbox,phrase\nVG_100K/5.jpg,"[3, 4, 30, 40]",red car\n')
    s = load_split("vg_s0", tmp_path)
    assert s[0].phrase == "red car" and s[0].image_path.endswith("vg/VG_100K/5.jpg")


@pytest.mark.parametrize("bbox,msg", [
    ('"[1, 2, 3]"', "4 numbers"), ('"[5, 5, 5, 9]"', "x1 < x2"), ('"[1, 2, x, 4]"', "literal"),
    ('"[50, 50, 10, 10]"', "x,y,w,h"), ('"[0, 0, nan, 5]"', "literal"),
])
def test_bad_boxes_name_file_and_row(tmp_path, bbox, msg):
    _img(tmp_path / "flickr30k-images" / "1.jpg")
    csv = _flickr(tmp_path, ['1,"[1, 2, 50, 60]",ok,x', f"1,{bbox},bad,x"])
    with pytest.raises(DatasetError) as e:
        load_split("flickr_s1", tmp_path)
    assert str(csv) in str(e.value) and "data row 2" in str(e.value) and msg in str(e.value)
    s = load_split("flickr_s1", tmp_path, on_error="skip")
    assert len(s) == 2 and s[0].error is None and msg in s[1].error and s.n_errors == 1


@pytest.mark.parametrize("query", ['""', '"   "', "\"['', 'x']\""])
def test_empty_phrases_are_bad_rows(tmp_path, query):
    _img(tmp_path / "flickr30k-images" / "1.jpg")
    _flickr(tmp_path, [f'1,"[1, 2, 50, 60]",{query},x'])
    with pytest.raises(DatasetError, match="data row 1.*empty"):
        load_split("flickr_s1", tmp_path)
    assert load_split("flickr_s1", tmp_path, on_error="skip")[0].error


def test_missing_image_and_escaping_paths_and_boxes_outside(tmp_path):
    # loading never opens images (it streams); the runner checks them when it evaluates the row
    _flickr(tmp_path, ['404,"[1, 2, 50, 60]",a man,x'])
    s = load_split("flickr_s1", tmp_path)
    with pytest.raises(FileNotFoundError, match="image not found"):
        _check_image_path(s[0].image_path, tmp_path)
    (tmp_path / "flickr30k-images" / "404.jpg").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="not a file"):
        _check_image_path(s[0].image_path, tmp_path)
    _flickr(tmp_path, ['../../etc/passwd,"[1, 2, 50, 60]",a man,x'])
    with pytest.raises(DatasetError, match="escapes the data root"):
        load_split("flickr_s1", tmp_path)
    with pytest.raises(ValueError, match="outside the 100x80 image"):
        check_box_in_image((0, 0, 500, 60), (100, 80))
    check_box_in_image((0, 0, 101, 81), (100, 80))  # 1 px tolerance (1-based inclusive boxes)


def test_missing_csv_and_columns(tmp_path):
    with pytest.raises(DatasetError, match="ZSGNet"):
        load_split("flickr_s0", tmp_path)
    _flickr(tmp_path, ['1,"[1, 2, 50, 60]"'], header="img_id,bbox")
    with pytest.raises(DatasetError, match="missing column"):
        load_split("flickr_s1", tmp_path)
    with pytest.raises(DatasetError, match="unknown split"):
        load_split("coco", tmp_path)


def test_every_split_points_at_zsgnet_files():
    expected = {"flickr_all": "flickr30k/csv_dir/test.csv", "flickr_s0": "flickr30k_c0/csv_dir/test.csv",
                "flickr_s1": "flickr30k_c1/csv_dir/test.csv", "flickr_s1_val": "flickr30k_c1/csv_dir/val.csv",
                "vg_s0": "vg_split/csv_dir/test_balanced_c2.csv", "vg_s1": "vg_split/csv_dir/test_balanced_c3.csv",
                "vg_val": "vg_split/csv_dir/val_balanced.csv", "flickr_other": "flickr30k/csv_dir/test.csv"}
    from omegaconf import OmegaConf

    from grounding.config import conf_dir

    assert set(expected) <= set(split_names())
    for name, tail in expected.items():
        assert OmegaConf.load(conf_dir() / "split" / f"{name}.yaml").loader.csv == "ds_csv_ann/" + tail


def test_sentence_grammar():
    ph = parse_sentence("[/EN#255545/bodyparts/people a man 's arm] at [/EN#0/notvisual her] x")
    assert ph == [{"phrase_id": "255545", "phrase_type": ["bodyparts", "people"], "phrase": "a man 's arm"},
                  {"phrase_id": "0", "phrase_type": ["notvisual"], "phrase": "her"}]


@needs_fixtures
def test_entities_reader_matches_worked_example():
    df = read_flickr30k_entities(ENT / "Sentences", ENT / "Annotations", ["65567"])
    boxes = {r.phrase_id: list(r.bbox) for r in df.itertuples()}
    assert boxes == {"255542": [24, 63, 208, 500], "255543": [162, 96, 333, 497], "255544": [1, 62, 333, 499],
                     "255547": [24, 63, 333, 500], "255545": [133, 167, 210, 283], "255548": [1, 1, 375, 499],
                     "255550": [172, 168, 311, 500]}
    assert "255546" not in boxes and "255549" not in boxes  # nobndbox chains give no rows


@needs_fixtures
def test_phrase_types_deterministic_and_flickr_other(tmp_path):
    t = phrase_type_dict(ENT / "Sentences")
    assert t["a wedding"] == "other" and t["her"] == "notvisual" and t["A bearded man"] == "people"
    # the same files copied in the opposite order give the same dictionary
    d = tmp_path / "S"
    d.mkdir()
    for f in sorted((FIXTURES / "quoted" / "X1AOX1A_Datasets" / "Sentences").glob("*.txt"), reverse=True):
        shutil.copy(f, d / f.name)
    a = phrase_type_dict(d)
    d2 = tmp_path / "S2"
    d2.mkdir()
    for f in sorted(d.glob("*.txt")):
        shutil.copy(f, d2 / f.name)
    assert phrase_type_dict(d2) == a
    # the multi-type line of 65567 (X1AOX1A copy) types "a man 's arm" by its first type
    assert a["a man 's arm"] == "bodyparts"
    # flickr_other keeps only phrases typed "other"
    _img(tmp_path / "flickr30k-images" / "65567.jpg", 375, 500)
    _flickr(tmp_path, ['65567,"[1, 1, 300, 400]",a wedding,x', '65567,"[1, 1, 300, 400]",a girl,x',
                       '65567,"[1, 1, 300, 400]",never seen,x'], sub="flickr30k")
    s = load_split("flickr_other", tmp_path, sentences_dir=ENT / "Sentences")
    assert s.dropped == {"phrase type not in ['other']": 2}
    assert [x.phrase for x in s] == ["a wedding"] and s[0].index == 0
