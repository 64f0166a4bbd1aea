"""Datasets: ZSGNet's zero-shot grounding splits (Flickr30k S0/S1/All/Other, Visual Genome S0/S1).

CSV layout under ``data_root`` (as ZSGNet distributes it)::

    ds_csv_ann/{flickr30k,flickr30k_c0,flickr30k_c1}/csv_dir/{val,test}.csv      img_id,bbox,query
    ds_csv_ann/vg_split/csv_dir/{val_balanced,test_balanced_c2,test_balanced_c3}.csv   image_fpath,bbox,phrase
    ds_csv_ann/demo/csv_dir/test.csv                                            (bundled demo, Flickr layout)

Rows are validated on load; an invalid row is an error naming the CSV file and its 1-based data
row, or (``on_error="skip"``) a kept row carrying ``error`` that the runner records as a miss.
"""
from __future__ import annotations

import ast
import csv
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A split cannot be read; the message names the file (and row) and what is wrong."""


@dataclass(frozen=True)
class SplitSpec:
    family: str  # flickr | vg | demo
    csv: str  # path under data_root
    phrase_types: Tuple[str, ...] = ()


SPLITS: Dict[str, SplitSpec] = {
    "flickr_all": SplitSpec("flickr", "ds_csv_ann/flickr30k/csv_dir/test.csv"),
    "flickr_other": SplitSpec("flickr", "ds_csv_ann/flickr30k/csv_dir/test.csv", ("other",)),
    "flickr_s0": SplitSpec("flickr", "ds_csv_ann/flickr30k_c0/csv_dir/test.csv"),
    "flickr_s1": SplitSpec("flickr", "ds_csv_ann/flickr30k_c1/csv_dir/test.csv"),
    "flickr_val": SplitSpec("flickr", "ds_csv_ann/flickr30k/csv_dir/val.csv"),
    "flickr_s0_val": SplitSpec("flickr", "ds_csv_ann/flickr30k_c0/csv_dir/val.csv"),
    "flickr_s1_val": SplitSpec("flickr", "ds_csv_ann/flickr30k_c1/csv_dir/val.csv"),
    "vg_s0": SplitSpec("vg", "ds_csv_ann/vg_split/csv_dir/test_balanced_c2.csv"),
    "vg_s1": SplitSpec("vg", "ds_csv_ann/vg_split/csv_dir/test_balanced_c3.csv"),
    "vg_val": SplitSpec("vg", "ds_csv_ann/vg_split/csv_dir/val_balanced.csv"),
    "demo": SplitSpec("demo", "ds_csv_ann/demo/csv_dir/test.csv"),
}
IMAGE_TEMPLATES = {"flickr": "{data_root}/flickr30k-images/{img_id}.jpg", "vg": "{data_root}/vg/{image_fpath}",
                   "demo": "{data_root}/demo-images/{img_id}.png"}
COLUMNS = {"flickr": ("img_id", "bbox", "query"), "demo": ("img_id", "bbox", "query"),
           "vg": ("image_fpath", "bbox", "phrase")}
BORDER_TOLERANCE = 1.0  # px: Flickr30k Entities boxes are 1-based inclusive, so x2 may equal the width


@dataclass
class Sample:
    index: int  # position in the CSV's data rows (0-based), stable across limit/shard/filters
    image_path: str
    gt_box: Tuple[float, float, float, float]
    phrase: str  # the phrase evaluated (the first query when the CSV holds a list, as the reference)
    phrases: List[str]
    csv_row: int  # 1-based data row in the CSV (header excluded)
    error: Optional[str] = None
    phrase_type: Optional[str] = None  # where the annotation gives it (Flickr30k Entities: the first type)


@dataclass
class GroundingSplit(Sequence):
    name: str
    family: str
    csv_path: str
    samples: List[Sample] = field(default_factory=list)
    n_rows_in_csv: int = 0
    source_files: List[str] = field(default_factory=list)  # annotation files the rows come from (identity)
    dropped: Dict[str, int] = field(default_factory=dict)  # rows left out by the split's protocol, by reason

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]

    @property
    def n_images(self) -> int:
        return len({s.image_path for s in self.samples})

    @property
    def n_errors(self) -> int:
        return sum(s.error is not None for s in self.samples)


def parse_bbox(text: str) -> Tuple[float, float, float, float]:
    try:
        v = ast.literal_eval(str(text).strip())
    except (ValueError, SyntaxError):
        raise ValueError(f"bbox {text!r} is not a Python literal list")
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        raise ValueError(f"bbox {text!r} must hold 4 numbers [x1, y1, x2, y2]")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
        raise ValueError(f"bbox {text!r} must hold 4 finite numbers")
    x1, y1, x2, y2 = (float(x) for x in v)
    if not (x2 > x1 and y2 > y1):
        hint = " (it looks like x,y,w,h)" if x2 > 0 and y2 > 0 and (x2 <= x1 or y2 <= y1) else ""
        raise ValueError(f"bbox {text!r} needs x1 < x2 and y1 < y2{hint}")
    return x1, y1, x2, y2


def parse_queries(text: str) -> List[str]:
    q = str(text).strip()
    if q.startswith("["):
        try:
            v = ast.literal_eval(q)
        except (ValueError, SyntaxError):
            raise ValueError(f"query {q[:60]!r} looks like a list but is not a Python literal")
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
            raise ValueError(f"query list {q[:60]!r} must be a non-empty list of strings")
        return [str(x) for x in v]
    return [q]


def _resolve_image(template: str, data_root: str, row: Dict[str, str], family: str) -> str:
    root = os.path.abspath(data_root)
    if family == "vg":
        rel = row["image_fpath"].strip()
        path = template.format(data_root=root, image_fpath=rel)
    else:
        img_id = row["img_id"].strip()
        if img_id.endswith((".jpg", ".png")) and template.endswith(os.path.splitext(img_id)[1]):
            img_id = os.path.splitext(img_id)[0]
        path = template.format(data_root=root, img_id=img_id)
    real = os.path.realpath(path)
    base = os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise ValueError(f"image path {path!r} escapes the data root {root!r}")
    return path


def load_split(name: str, data_root="data", *, image_template: Optional[str] = None,
               sentences_dir: Optional[str] = None, limit: Optional[int] = None, validate_images: bool = True,
               on_error: str = "raise") -> GroundingSplit:
    """Read and validate a split. ``limit`` keeps the first N evaluated rows."""
    if name not in SPLITS:
        raise DatasetError(f"unknown split {name!r}; known: {', '.join(SPLITS)}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    spec = SPLITS[name]
    csv_path = Path(data_root) / spec.csv
    if not csv_path.is_file():
        extra = (" (ZSGNet's annotation CSVs are distributed by the ZSGNet authors; see "
                 "TheShadow29/zsgnet-pytorch DATA_README)" if spec.family != "demo" else "")
        raise DatasetError(f"split {name}: annotation file not found: {csv_path}{extra}")
    template = image_template or IMAGE_TEMPLATES[spec.family]
    types = None
    if spec.phrase_types:
        sdir = Path(sentences_dir) if sentences_dir else Path(data_root) / "flickr30k_entities" / "Sentences"
        from grounding.data.flickr_entities import phrase_type_dict

        types = phrase_type_dict(sdir)
    cols = COLUMNS[spec.family]
    out = GroundingSplit(name=name, family=spec.family, csv_path=str(csv_path))
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in cols if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{csv_path}: missing column(s) {missing}; found {reader.fieldnames}")
        for i, row in enumerate(reader):
            out.n_rows_in_csv += 1
            if limit is not None and len(out.samples) >= int(limit):
                continue
            sample = _make_sample(i, row, spec, data_root, template, csv_path, validate_images, on_error, cols)
            if sample is None:
                continue
            if types is not None and types.get(sample.phrase) not in spec.phrase_types:
                continue  # Flickr-Other: phrases typed "other" (unknown phrases dropped, as the reference)
            out.samples.append(sample)
    log.info("split %s: %d rows, %d images (%d invalid) from %s", name, len(out), out.n_images, out.n_errors, csv_path)
    return out


def _make_sample(i, row, spec, data_root, template, csv_path, validate_images, on_error, cols) -> Optional[Sample]:
    where = f"{csv_path}, data row {i + 1}"
    image_path, box, phrases = "", (0.0, 0.0, 0.0, 0.0), [""]
    try:
        image_path = _resolve_image(template, data_root, row, spec.family)
        phrases = parse_queries(row[cols[2]])
        box = parse_bbox(row["bbox"])
        if not phrases[0].strip():
            raise ValueError("phrase is empty")
        if validate_images:
            if not os.path.isfile(image_path):
                raise ValueError(f"image not found: {image_path}")
            with Image.open(image_path) as im:  # header only
                w, h = im.size
            x1, y1, x2, y2 = box
            t = BORDER_TOLERANCE
            if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
                raise ValueError(f"bbox {list(box)} lies outside the {w}x{h} image")
    except ValueError as e:
        if on_error == "raise":
            raise DatasetError(f"{where}: {e}") from None
        return Sample(i, image_path, box, phrases[0] if phrases else "", phrases, i + 1, error=f"{where}: {e}")
    except OSError as e:  # unreadable image header
        if on_error == "raise":
            raise DatasetError(f"{where}: cannot read image {image_path}: {e}") from None
        return Sample(i, image_path, box, phrases[0], phrases, i + 1, error=f"{where}: {e}")
    return Sample(i, image_path, box, phrases[0], phrases, i + 1)


# ------------------------------------------------------------------------ Flickr30k Entities
# The sentence grammar, phrase types and raw reader live in grounding.data.flickr_entities (which
# imports this module); their old names here resolve lazily, so neither import order cycles.
_FLICKR_ENTITIES_NAMES = ("parse_sentence", "read_sentences", "phrase_type_dict", "read_flickr30k_entities")


def __getattr__(name):
    if name in _FLICKR_ENTITIES_NAMES:
        from grounding.data import flickr_entities

        return getattr(flickr_entities, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
