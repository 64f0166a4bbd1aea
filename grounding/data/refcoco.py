"""RefCOCO / RefCOCO+ / RefCOCOg referring-expression splits, from the refer toolkit's files.

Layout under ``data_root`` (configurable per split YAML), as lichengunc/refer distributes it::

    refer/{refcoco,refcoco+,refcocog}/instances.json      COCO-format images / annotations / categories
    refer/{refcoco,refcoco+}/refs(unc).p                   refs pickle, UNC partition (val, testA, testB)
    refer/refcocog/refs(umd).p                             refs pickle, UMD partition (val, test)
    coco/train2014/{file_name}                             images; file_name from instances.json

A ref is ``{ref_id, ann_id, image_id, category_id, split, sentences: [{sent_id, sent, raw,
tokens}], sent_ids, file_name}``. Rows are one per sentence: a ref with three sentences gives
three rows, each scored against the box of the ref's annotation (``bbox`` ``[x, y, w, h]`` →
``[x, y, x + w, y + h]``). The split letter selects refs as ``REFER.getRefIds(split=...)`` does:
``testA`` keeps refs whose split contains ``A`` (``testA``, ``testAB``...), ``test`` keeps every
split containing ``test``, ``train`` / ``val`` match exactly.

The refs pickle is untrusted input and is read with :func:`grounding.data.safe_pickle.safe_load`;
``instances.json`` is read with pycocotools' ``COCO``. Images are not opened here (the runner
checks them when it evaluates a row); the annotation-level errors — a ref whose annotation id or
image record is missing from instances.json, an empty sentence, a degenerate or out-of-image box,
a malformed ref — name the file and the ref / sentence id, and raise or (``on_error="skip"``)
give rows carrying ``error``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from grounding.data.datasets import BORDER_TOLERANCE, DatasetError, GroundingSplit, Sample
from grounding.data.safe_pickle import safe_load
from ..errors import check_on_error

log = logging.getLogger(__name__)

SPLIT_CHOICES = ("train", "val", "test", "testA", "testB", "testC", "testAB", "testBC", "testAC")
SOURCE_HINT = ("RefCOCO/RefCOCO+/RefCOCOg annotations come from the refer toolkit (github.com/lichengunc/refer, "
               "data/README.md: refcoco.zip, refcoco+.zip, refcocog.zip); images are COCO train2014")


def ref_in_split(ref_split: str, split: str) -> bool:
    """Whether a ref whose ``split`` field is ``ref_split`` belongs to ``split``.

    Source: lichengunc/refer ``REFER.getRefIds`` — testA/testB/testC match by letter (so testAB
    counts for testA and testB), testAB/testBC/testAC and train/val exactly, test by substring.
    """
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split
    if split == "test":
        return "test" in ref_split
    return ref_split == split


def coco_box_to_xyxy(bbox) -> Tuple[float, float, float, float]:
    """COCO ``[x, y, w, h]`` → ``(x1, y1, x2, y2)``; refuses non-finite values and ``w`` or ``h`` <= 0."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise ValueError(f"bbox {bbox!r} must be [x, y, w, h]")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
        raise ValueError(f"bbox {bbox!r} must hold 4 finite numbers")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise ValueError(f"degenerate bbox {list(bbox)} (w and h must be > 0)")
    return x, y, x + w, y + h


def _read_coco(path: Path):
    from pycocotools.coco import COCO

    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path} ({SOURCE_HINT})")
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter):  # COCO prints progress lines
            coco = COCO(str(path))
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as e:  # bad JSON / not COCO-shaped
        raise DatasetError(f"{path}: not a COCO instances file ({type(e).__name__}: {e})") from None
    log.debug("%s", chatter.getvalue().strip())
    return coco


def _image_path(template: str, abs_root: str, file_name) -> str:
    if not isinstance(file_name, str) or not file_name or "/" in file_name or "\\" in file_name \
            or file_name in (".", ".."):
        raise ValueError(f"image file_name {file_name!r} must be a plain file name")
    return template.format(data_root=abs_root, file_name=file_name)


def load_refcoco(*, data_root, name: str, dataset: str = "refcoco", split_by: str = "unc", split: str = "val",
                 instances: Optional[str] = None, refs: Optional[str] = None,
                 image_template: str = "{data_root}/coco/train2014/{file_name}", on_error: str = "raise",
                 limit: Optional[int] = None, family: str = "refcoco") -> GroundingSplit:
    """One row per sentence of the refs in ``split`` (see the module docstring).

    ``instances`` / ``refs`` are paths under ``data_root`` (absolute paths are used as given);
    they default to ``refer/{dataset}/instances.json`` and ``refer/{dataset}/refs({split_by}).p``.
    ``index`` is the row's position among all sentences of the split (before ``limit``), ``csv_row``
    that position 1-based; ``limit`` keeps the first N rows.
    """
    check_on_error(on_error)
    if split not in SPLIT_CHOICES:
        raise DatasetError(f"split {name}: unknown refer split {split!r}; known: {', '.join(SPLIT_CHOICES)}")
    root = Path(data_root)
    refs_path = root / (refs or f"refer/{dataset}/refs({split_by}).p")
    inst_path = root / (instances or f"refer/{dataset}/instances.json")
    if not refs_path.is_file():
        raise DatasetError(f"split {name}: refs file not found: {refs_path} ({SOURCE_HINT})")
    all_refs = safe_load(refs_path)
    if not isinstance(all_refs, list):
        raise DatasetError(f"{refs_path}: expected a list of refs, got {type(all_refs).__name__}")
    coco = _read_coco(inst_path)

    out = GroundingSplit(name=name, family=family, csv_path=str(refs_path),
                         source_files=[str(refs_path), str(inst_path)])
    n_refs, abs_root = 0, os.path.abspath(data_root)
    for k, ref in enumerate(all_refs):
        if not isinstance(ref, dict) or not isinstance(ref.get("split"), str):
            ref_id, rows = f"#{k}", [(None, None, "", None, "ref is not a dict with a 'split' string")]
        elif not ref_in_split(ref["split"], split):
            continue
        else:
            ref_id, rows = ref.get("ref_id", f"#{k}"), _ref_rows(ref, coco, image_template, abs_root, inst_path)
        n_refs += 1
        for image_path, box, text, sent_id, err in rows:
            i = out.n_rows_in_csv
            out.n_rows_in_csv += 1
            if limit is not None and len(out.samples) >= int(limit):
                continue
            if err is not None:
                where = f"ref {ref_id}" + (f", sentence {sent_id}" if sent_id is not None else "")
                msg = f"{refs_path}, {where}: {err}"
                if on_error == "raise":
                    raise DatasetError(msg)
                out.samples.append(Sample(i, image_path or "", box or (0.0, 0.0, 0.0, 0.0), text, [text], i + 1,
                                          error=msg))
            else:
                out.samples.append(Sample(i, image_path, box, text, [text], i + 1))
    if n_refs == 0:
        log.warning("split %s: no ref of %s is in split %r", name, refs_path, split)
    log.info("split %s: %d rows (%d refs, %d invalid) from %s", name, len(out), n_refs, out.n_errors, refs_path)
    return out


def _ref_rows(ref: Dict, coco, template: str, abs_root: str, inst_path) -> List[Tuple]:
    """(image_path, box, sentence, sent_id, error or None) for each sentence of ``ref``."""
    sents = ref.get("sentences")
    if not isinstance(sents, list) or not sents:
        return [(None, None, "", None, "ref has no 'sentences' list")]
    image_path, box, ref_err = None, None, None
    try:
        ann_id = ref.get("ann_id")
        if not isinstance(ann_id, int) or isinstance(ann_id, bool):
            raise ValueError(f"ref's ann_id {ann_id!r} is not an integer")
        if ann_id not in coco.anns:
            raise ValueError(f"annotation id {ann_id!r} is not in {inst_path}")
        ann = coco.anns[ann_id]
        image_id = ref.get("image_id", ann.get("image_id"))
        if ann.get("image_id") != image_id:
            raise ValueError(f"ref's image_id {image_id!r} differs from annotation {ann_id}'s "
                             f"image_id {ann.get('image_id')!r}")
        if image_id not in coco.imgs:
            raise ValueError(f"image id {image_id!r} is not in {inst_path}")
        img = coco.imgs[image_id]
        image_path = _image_path(template, abs_root, img.get("file_name"))
        box = coco_box_to_xyxy(ann.get("bbox"))
        w, h = img.get("width"), img.get("height")
        if isinstance(w, (int, float)) and isinstance(h, (int, float)):
            x1, y1, x2, y2 = box
            t = BORDER_TOLERANCE
            if x1 < -t or y1 < -t or x2 > w + t or y2 > h + t:
                raise ValueError(f"bbox {list(box)} lies outside the {w}x{h} image {img.get('file_name')}")
    except (ValueError, TypeError) as e:  # TypeError: an unhashable image id
        ref_err, box = str(e), None
    rows = []
    for j, s in enumerate(sents):
        sent_id = s.get("sent_id", f"#{j}") if isinstance(s, dict) else f"#{j}"
        text = s.get("sent") if isinstance(s, dict) else None
        phrase = text.strip() if isinstance(text, str) else ""
        if ref_err is not None:
            rows.append((image_path, box, phrase, sent_id, ref_err))
        elif not phrase:
            rows.append((image_path, box, phrase, sent_id, f"sentence is empty or missing ({text!r})"))
        else:
            rows.append((image_path, box, phrase, sent_id, None))
    return rows
