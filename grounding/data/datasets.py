"""What every loader returns: :class:`Sample` rows in a :class:`GroundingSplit`, the shared parsers of
boxes and phrases, and :class:`DatasetError` (messages name the file and row).

Loaders, one per annotation format: :mod:`grounding.data.zsg` (ZSGNet's CSVs and the demo),
:mod:`grounding.data.refcoco` (RefCOCO family), :mod:`grounding.data.flickr_entities` (raw Flickr30k
Entities). Which split uses which is said by the split registry (:mod:`grounding.data.splits`).
"""
from __future__ import annotations

import ast
import logging
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple
from ..errors import GroundingError

log = logging.getLogger(__name__)


class DatasetError(GroundingError, ValueError):
    """A split cannot be read; the message names the file (and row) and what is wrong."""


BORDER_TOLERANCE = 1.0  # px: Flickr30k Entities boxes are 1-based inclusive, so x2 may equal the width


@dataclass(slots=True)  # a million rows: no per-row __dict__
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


def check_box_in_image(box, image_size) -> None:
    """A ground-truth box must lie inside its image (within 1 px: Flickr30k Entities boxes are 1-based
    inclusive). Checked when the row is evaluated, once the image header is read."""
    x1, y1, x2, y2 = box
    w, h = image_size
    t = BORDER_TOLERANCE
    if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
        raise ValueError(f"bbox {list(box)} lies outside the {w}x{h} image")
