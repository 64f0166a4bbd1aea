"""Raw Flickr30k Entities: sentence grammar, phrase types, and the phrase-localization splits.

Layout under ``data_root`` (configurable per split YAML), as BryanPlummer/flickr30k_entities
distributes it (``test.txt`` / ``val.txt`` in the repository, the rest in ``annotations.zip``)::

    flickr30k_entities/{test,val}.txt          one image id per line
    flickr30k_entities/Sentences/<id>.txt      5 captions, phrases as [/EN#<chain>/<type1>/<type2>... words]
    flickr30k_entities/Annotations/<id>.xml    boxes: <object><name>chain</name>...<bndbox>..</bndbox></object>
    flickr30k-images/<id>.jpg                  the Flickr30k images

Protocol (one row per phrase occurrence; sentences, then phrases, in file order, images in list order):

* **Box of a phrase = union of its chain's boxes.** Every ``<object>`` with a ``<bndbox>`` adds its
  box to each chain named in its ``<name>`` tags; a phrase is scored against the union (smallest
  enclosing box) of all boxes of its chain — ZSGNet's ``data/prepare_flickr30k.py``
  (``union_of_rects``), and Plummer et al. (ICCV 2015 / IJCV 2017): "for phrases associated with
  multiple ground truth boxes, we represent the phrase by the union of its boxes". Coordinates are
  the XML's raw integers (1-based, inclusive), as ZSGNet's CSVs hold them.
* **Dropped, and counted in** ``GroundingSplit.dropped``:
  ``notvisual`` — chain id 0 (``[/EN#0/notvisual ...]``: the phrase names nothing in the image);
  ``scene`` — the chain has no box and its XML object is marked ``<scene>1</scene>`` (the phrase
  is the whole scene; no box is drawn); ``no_box`` — the chain has no box otherwise (``<nobndbox>1``
  or no object at all). This is what ZSGNet keeps (chains with at least one box). A phrase *typed*
  ``scene`` whose chain does have a drawn box (e.g. "a building" in image 65567) is kept, as
  ZSGNet and the standard protocol keep it.
* ``phrase_type`` of a row is the phrase's first type (``/bodyparts/people`` → ``bodyparts``).
* Rows are phrase *occurrences*, as Plummer et al. count test phrases; ZSGNet's CSVs instead hold
  one row per chain with all its phrases as a query list (the same boxes). ``UNRELATED_CAPTIONS``
  is not consulted (neither ZSGNet nor the box-based protocol uses it).

Images are not opened here (the runner checks them). Annotation-level errors — a missing or
unparsable Sentences/Annotations file, a degenerate box, a box outside the XML's image size —
name the file, sentence and chain, and raise or (``on_error="skip"``) give rows carrying ``error``.
"""
from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from grounding.data.datasets import BORDER_TOLERANCE, DatasetError, GroundingSplit, Sample
from ..errors import check_on_error

DROP_REASONS = ("notvisual", "scene", "no_box")
SOURCE_HINT = ("Flickr30k Entities comes from github.com/BryanPlummer/flickr30k_entities (test.txt, val.txt, "
               "annotations.zip with Sentences/ and Annotations/); images from the Flickr30k release")

_PHRASE = re.compile(r"\[/EN#(\d+)((?:/[^\s\]]+)*)\s+([^\]]*)\]")


def parse_sentence(line: str) -> List[Dict]:
    """Phrases of one Flickr30k Entities sentence: ``[/EN#<chain>/<type1>/<type2>... words]``."""
    out = []
    for m in _PHRASE.finditer(line):
        types = [t for t in m.group(2).split("/") if t]
        out.append({"phrase_id": m.group(1), "phrase_type": types, "phrase": m.group(3).strip()})
    return out


def read_sentences(path) -> List[List[Dict]]:
    with open(path, encoding="utf-8") as f:
        return [parse_sentence(line) for line in f if line.strip()]


def phrase_type_dict(sentences_dir) -> Dict[str, str]:
    """Phrase text → first phrase type, over every ``Sentences/*.txt``.

    The reference builds the same map while listing the folder in ``os.listdir`` order, later files
    overwriting earlier ones, so its result depends on the file system. Here files are read in
    numeric order of their image id (then by name), lines and phrases in file order, and the last
    occurrence wins: the same overwrite rule in a fixed order.
    """
    d = Path(sentences_dir)
    if not d.is_dir():
        raise DatasetError(f"Flickr30k Entities Sentences folder not found: {d} (needed for flickr_other; "
                           f"set sentences_dir=)")
    files = sorted(d.glob("*.txt"), key=lambda p: (int(p.stem) if p.stem.isdigit() else math.inf, p.name))
    out: Dict[str, str] = {}
    for p in files:
        for sent in read_sentences(p):
            for ph in sent:
                if ph["phrase_type"]:
                    out[ph["phrase"]] = ph["phrase_type"][0]
    return out


def union_box(boxes: Sequence[Sequence[float]]) -> List[float]:
    """Smallest box enclosing all ``boxes`` (x1, y1, x2, y2).

    Source: ZSGNet ``data/ds_prep_utils.py::union_of_rects`` (used by ``prepare_flickr30k.py`` for a
    chain with several boxes); Plummer et al. IJCV 2017 §5 score such phrases against the union.
    """
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


@dataclass
class ImageAnnotation:
    """One ``Annotations/<id>.xml``: per-chain union boxes, chains marked scene, image size."""
    boxes: Dict[str, List[int]] = field(default_factory=dict)
    scene: Set[str] = field(default_factory=set)
    size: Optional[Tuple[int, int]] = None  # (width, height) when the XML gives it


def read_annotation(path) -> ImageAnnotation:
    """Parse an Annotations XML; ValueError (naming what is wrong) on a malformed file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    ann = ImageAnnotation()
    size = root.find("size")
    if size is not None:
        try:
            ann.size = (int(size.findtext("width")), int(size.findtext("height")))
        except (TypeError, ValueError):
            ann.size = None
    per_chain: Dict[str, List[List[int]]] = {}
    for k, obj in enumerate(root.iter("object")):
        names = [n.text.strip() for n in obj.findall("name") if n.text and n.text.strip()]
        bb = obj.find("bndbox")
        if bb is not None:
            try:
                b = [int(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                raise ValueError(f"object {k + 1} (chain {', '.join(names)}) has a non-integer or missing "
                                 f"bndbox coordinate") from None
            for cid in names:
                per_chain.setdefault(cid, []).append(b)
        if (obj.findtext("scene") or "0").strip() not in ("", "0"):
            ann.scene.update(names)
    ann.boxes = {cid: union_box(bs) for cid, bs in per_chain.items()}
    return ann


@dataclass
class PhraseRow:
    """One phrase occurrence: ``box`` set when kept, ``drop`` when the protocol leaves it out,
    ``error`` when its annotation is unusable."""
    img_id: str
    sentence_index: int  # 0-based over the file's non-empty lines
    phrase: str
    phrase_id: str
    types: List[str]
    box: Optional[List[int]] = None
    drop: Optional[str] = None
    error: Optional[str] = None


def iter_phrases(sentences_dir, annotations_dir, image_ids) -> Iterator[PhraseRow]:
    """Every phrase occurrence of ``image_ids`` with its union box, drop reason or error.

    An image whose Sentences file is missing or unreadable gives one error row (its phrases are unknown).
    """
    for img_id in image_ids:
        img_id = str(img_id).strip()
        txt = Path(sentences_dir) / f"{img_id}.txt"
        xml = Path(annotations_dir) / f"{img_id}.xml"
        try:
            sentences = read_sentences(txt)
        except FileNotFoundError:
            yield PhraseRow(img_id, -1, "", "", [], error=f"Sentences file not found: {txt}")
            continue
        except (OSError, UnicodeDecodeError) as e:
            yield PhraseRow(img_id, -1, "", "", [], error=f"{txt}: cannot read Sentences file ({e})")
            continue
        ann, ann_error = None, None
        for si, sent in enumerate(sentences):
            for ph in sent:
                row = PhraseRow(img_id, si, ph["phrase"], ph["phrase_id"], list(ph["phrase_type"]))
                where = f"{txt}, sentence {si + 1}, phrase {ph['phrase']!r} (chain {ph['phrase_id']})"
                if ph["phrase_id"] == "0":
                    row.drop = "notvisual"
                    yield row
                    continue
                if ann is None and ann_error is None:
                    try:
                        ann = read_annotation(xml)
                    except FileNotFoundError:
                        ann_error = f"annotation file not found: {xml}"
                    except (OSError, ValueError) as e:
                        ann_error = f"{xml}: {e}"
                if ann_error is not None:
                    row.error = f"{where}: {ann_error}"
                elif ph["phrase_id"] not in ann.boxes:
                    row.drop = "scene" if ph["phrase_id"] in ann.scene else "no_box"
                elif not ph["phrase"]:
                    row.error = f"{where}: phrase is empty"
                else:
                    row.box = ann.boxes[ph["phrase_id"]]
                    x1, y1, x2, y2 = row.box
                    t = BORDER_TOLERANCE
                    if not (x2 > x1 and y2 > y1):
                        row.error = f"{where}: degenerate box {row.box} in {xml}"
                    elif ann.size and (x1 < -t or y1 < -t or x2 > ann.size[0] + t or y2 > ann.size[1] + t):
                        row.error = f"{where}: box {row.box} lies outside the {ann.size[0]}x{ann.size[1]} image ({xml})"
                yield row


def read_flickr30k_entities(sentences_dir, annotations_dir, image_ids):
    """Raw Flickr30k Entities → DataFrame, one row per kept phrase with its chain's union box
    (the protocol of the module docstring); an unusable annotation raises :class:`DatasetError`."""
    import pandas as pd

    rows = []
    for r in iter_phrases(sentences_dir, annotations_dir, image_ids):
        if r.error:
            raise DatasetError(r.error)
        if r.drop:
            continue
        rows.append({"img_id": r.img_id, "sentence_index": r.sentence_index, "phrase": r.phrase,
                     "phrase_id": r.phrase_id, "phrase_type": r.types[0] if r.types else "",
                     "all_types": list(r.types), "bbox": r.box})
    return pd.DataFrame(rows, columns=["img_id", "sentence_index", "phrase", "phrase_id", "phrase_type",
                                       "all_types", "bbox"])


def read_image_list(path: Path) -> List[str]:
    if not path.is_file():
        raise DatasetError(f"image list not found: {path} ({SOURCE_HINT})")
    ids = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            img_id = line.strip()
            if not img_id:
                continue
            if os.path.basename(img_id) != img_id or img_id.startswith("."):
                raise DatasetError(f"{path}, line {n}: image id {img_id!r} must be a plain name")
            ids.append(img_id)
    return ids


def load_flickr30k_entities(*, data_root, name: str, image_list: str = "flickr30k_entities/test.txt",
                            sentences_dir: str = "flickr30k_entities/Sentences",
                            annotations_dir: str = "flickr30k_entities/Annotations",
                            image_template: str = "{data_root}/flickr30k-images/{img_id}.jpg",
                            on_error: str = "raise", limit: Optional[int] = None,
                            family: str = "flickr") -> GroundingSplit:
    """Phrase-localization rows of the images in ``image_list`` (protocol: module docstring).

    Paths are under ``data_root`` (absolute paths are used as given). ``index`` is the position of
    the phrase occurrence among all phrases of the listed images, dropped ones included (so it is
    stable); ``n_rows_in_csv`` counts them all and ``dropped`` says how many were left out and why.
    ``limit`` keeps the first N rows (the counts still cover the whole split).
    """
    check_on_error(on_error)
    root = Path(data_root)
    list_path, sdir, adir = root / image_list, root / sentences_dir, root / annotations_dir
    for d in (sdir, adir):
        if not d.is_dir():
            raise DatasetError(f"split {name}: folder not found: {d} ({SOURCE_HINT})")
    ids = read_image_list(list_path)
    out = GroundingSplit(name=name, family=family, csv_path=str(list_path), source_files=[str(list_path)],
                         dropped={r: 0 for r in DROP_REASONS})
    seen = set()
    abs_root = os.path.abspath(data_root)
    for r in iter_phrases(sdir, adir, ids):
        if r.img_id not in seen:
            seen.add(r.img_id)
            out.source_files += [str(sdir / f"{r.img_id}.txt"), str(adir / f"{r.img_id}.xml")]
        i = out.n_rows_in_csv
        out.n_rows_in_csv += 1
        if r.drop:
            out.dropped[r.drop] += 1
            continue
        if limit is not None and len(out.samples) >= int(limit):
            continue
        image_path = image_template.format(data_root=abs_root, img_id=r.img_id)
        ptype = r.types[0] if r.types else None
        if r.error:
            if on_error == "raise":
                raise DatasetError(r.error)
            out.samples.append(Sample(i, image_path, (0.0, 0.0, 0.0, 0.0), r.phrase, [r.phrase], i + 1,
                                      error=r.error, phrase_type=ptype))
        else:
            box = tuple(float(v) for v in r.box)
            out.samples.append(Sample(i, image_path, box, r.phrase, [r.phrase], i + 1, phrase_type=ptype))
    return out
