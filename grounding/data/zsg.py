"""ZSGNet's zero-shot grounding CSVs (Flickr30k S0/S1/All/Other, Visual Genome S0/S1) and the demo split.

Layout under ``data_root`` (as ZSGNet distributes it; each split's YAML names its file)::

    ds_csv_ann/{flickr30k,flickr30k_c0,flickr30k_c1}/csv_dir/{val,test}.csv      img_id,bbox,query
    ds_csv_ann/vg_split/csv_dir/{val_balanced,test_balanced_c2,test_balanced_c3}.csv   image_fpath,bbox,phrase

Loading streams the CSV and never opens an image (a million rows load in seconds); whether an image
exists, decodes and contains its box is checked when its row is evaluated. An invalid row is an error
naming the CSV file and its 1-based data row, or (``on_error="skip"``) a kept row carrying ``error``
that the runner records as a miss.
"""
from __future__ import annotations

import csv
import gc
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from .datasets import DatasetError, GroundingSplit, Sample, parse_bbox, parse_queries
from ..errors import check_on_error

log = logging.getLogger(__name__)
MAX_FIELD = 1 << 20  # characters; a longer field is reported, not parsed


def _box(text: str):
    if text[:1] == "[" and text[-1:] == "]":  # fast path for the common "[x1, y1, x2, y2]"
        parts = text[1:-1].split(",")
        if len(parts) == 4:
            try:
                x1, y1, x2, y2 = map(float, parts)
            except ValueError:
                pass
            else:  # NaN fails every comparison, so it takes the slow path (and its error message)
                if -_INF < x1 < x2 < _INF and -_INF < y1 < y2 < _INF:
                    return x1, y1, x2, y2
    return parse_bbox(text)  # anything else, and every error message


_INF = float("inf")


def image_path_for(template: str, data_root: str, image_ref: str) -> str:
    """``template`` filled with the row's image reference; refuses paths that leave ``data_root``
    lexically (``..``); symbolic links are checked when the image is opened."""
    root = os.path.abspath(data_root)
    ref = image_ref.strip()
    if not ref:
        raise ValueError("image reference is empty")
    path = os.path.normpath(template.format(data_root=root, img_id=_strip_ext(ref, template), image_fpath=ref))
    if not (path == root or path.startswith(root.rstrip(os.sep) + os.sep)):
        raise ValueError(f"image path {path!r} escapes the data root {root!r}")
    return path


def _strip_ext(img_id: str, template: str) -> str:
    stem, ext = os.path.splitext(img_id)
    return stem if ext in (".jpg", ".png") and template.endswith(ext) else img_id


def load_zsg_csv(*, data_root, name: str, csv: str, columns: Sequence[str], image_template: str,
                 family: str = "flickr", phrase_types: Optional[Sequence[str]] = None, sentences_dir=None,
                 on_error: str = "raise", limit: Optional[int] = None, **_) -> GroundingSplit:
    """Read a ZSGNet CSV (``columns`` = image, bbox, phrase column names). ``limit`` keeps the first N
    rows. ``phrase_types`` keeps phrases of those Flickr30k Entities types (flickr_other)."""
    check_on_error(on_error)
    csv_path = Path(data_root) / csv
    if not csv_path.is_file():
        where = "the bundled demo" if name == "demo" else (
            "ZSGNet's annotation CSVs (TheShadow29/zsgnet-pytorch, DATA_README)")
        raise DatasetError(f"split {name}: annotation file not found: {csv_path} — get {where} and put it "
                           f"there, or set data_root=")
    out = GroundingSplit(name=name, family=family, csv_path=str(csv_path), source_files=[str(csv_path)])
    types = None
    if phrase_types:
        from .flickr_entities import phrase_type_dict

        sdir = Path(data_root) / (sentences_dir or "flickr30k_entities/Sentences")
        types = phrase_type_dict(sdir)
        out.source_files.append(str(sdir))
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a million acyclic Samples: the cyclic collector would rescan the growing list again and again
    try:
        out.samples = list(_rows(csv_path, list(columns), data_root, image_template, on_error, limit, types,
                                 set(phrase_types or ()), out))
    finally:
        if gc_was_enabled:
            gc.enable()
    log.info("split %s: %d rows, %d images (%d invalid) from %s", name, len(out), out.n_images, out.n_errors, csv_path)
    return out


def _rows(csv_path: Path, cols: List[str], data_root, template, on_error, limit, types, keep_types, out):
    """Stream the CSV's rows as Samples: no image is opened, the per-row work is a few string operations
    (image paths are computed once per image reference), and the location of a row (file, data row,
    line) is only formatted for an error."""
    root = os.path.abspath(data_root)
    paths = {}  # image reference -> path (rows of one image share it)
    csv.field_size_limit(min(sys.maxsize, (1 << 31) - 1))  # over-long fields are reported below, per row
    with open(csv_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:  # a BOM is accepted
        reader = csv.reader(f)
        header, pos = _read_header(reader, csv_path, cols)
        n_taken = n_in_csv = 0
        lim = int(limit) if limit is not None else float("inf")
        i = -1
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as e:  # e.g. a field over the csv module's own limit: the file cannot go on
                raise DatasetError(f"{csv_path}, data row {i + 2} (line {reader.line_num}): {e}") from None
            if fields is None:
                break
            i += 1
            if not fields:
                continue  # blank line
            n_in_csv += 1
            if n_taken >= lim:
                continue
            image_path, box, phrases, problem = _parse_row(fields, header, pos, paths, template, root)
            if problem is not None:
                where = f"{csv_path}, data row {i + 1} (line {reader.line_num})"
                if on_error == "raise":
                    raise DatasetError(f"{where}: {problem}") from None
                n_taken += 1
                yield Sample(i, image_path, box, phrases[0] if phrases else "", phrases, i + 1,
                             error=f"{where}: {problem}")
                continue
            t = None
            if types is not None:
                t = types.get(phrases[0])
                if t not in keep_types:
                    reason = f"phrase type not in {sorted(keep_types)}"
                    out.dropped[reason] = out.dropped.get(reason, 0) + 1
                    continue  # Flickr-Other: phrases typed "other" (unknown phrases dropped, as the reference)
            n_taken += 1
            yield Sample(i, image_path, box, phrases[0], phrases, i + 1, phrase_type=t)
        out.n_rows_in_csv += n_in_csv


def _read_header(reader, csv_path: Path, cols: List[str]):
    """The header row and the positions of the (image, bbox, phrase) columns, or a one-line DatasetError."""
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise DatasetError(f"{csv_path}, line {reader.line_num}: {e}") from None
    if header is None:
        raise DatasetError(f"{csv_path}: empty file (expected a header {','.join(cols)})")
    missing = [c for c in cols if c not in header]
    if missing:
        raise DatasetError(f"{csv_path}: missing column(s) {missing}; found {header}")
    return header, [header.index(c) for c in cols]


def _parse_row(fields, header, pos, paths, template, root):
    """(image path, box, phrases, problem) of one data row; ``problem`` is None for a good row, else what is
    wrong, with the values read before it (a skipped row still names its image)."""
    image_path, box, phrases = "", (0.0, 0.0, 0.0, 0.0), [""]
    try:
        if len(fields) != len(header):
            raise ValueError(f"has {len(fields)} fields, expected {len(header)} ({','.join(header)})")
        if max(map(len, fields)) > MAX_FIELD:
            long = [header[k] for k, v in enumerate(fields) if len(v) > MAX_FIELD]
            raise ValueError(f"field {long[0]!r} is longer than {MAX_FIELD} characters")
        if not all(map(str.isascii, fields)):
            bad = [header[k] for k, v in enumerate(fields) if _has_undecodable(v)]
            if bad:
                raise ValueError(f"field {bad[0]!r} is not valid UTF-8")
        ref = fields[pos[0]]
        image_path = paths.get(ref)
        if image_path is None:
            image_path = paths[ref] = image_path_for(template, root, ref)
        q = fields[pos[2]].strip()
        phrases = [q] if q[:1] != "[" else parse_queries(q)
        box = _box(fields[pos[1]])
        if not phrases[0].strip():
            raise ValueError("phrase is empty")
    except ValueError as e:
        return image_path, box, phrases, str(e)
    return image_path, box, phrases, None


def _has_undecodable(s: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in s) if not s.isascii() else False
