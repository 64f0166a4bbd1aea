"""The data doctor: is a data root complete, and is each split the published test set?

:func:`check_split` checks one registered split under ``data_root`` — the files its YAML names exist and
parse (by the split's own loader), its row count after the loader's filtering equals ``expected_rows``, every
image a row references exists (one ``stat`` per distinct image) and a sample of them decodes; RefCOCO:
every ref's ``ann_id`` is in ``instances.json`` and the refs pickle is of the YAML's partition; Flickr30k
Entities: every listed image has its Sentences and Annotations file. :func:`layout` is the tree of files
the registry expects. No model and no torch: ``grounding-data`` (:mod:`grounding.cli.data`) is the entry point.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from omegaconf import OmegaConf

from .datasets import DatasetError
from .splits import load_split, split_info, split_names

FILE_KEYS = ("csv", "refs", "instances", "image_list")  # loader keys naming a file under data_root
ENTITIES_KEYS = ("image_list", "sentences_dir", "annotations_dir")
DIR_KEYS = {"sentences_dir": "{img_id}.txt", "annotations_dir": "{img_id}.xml"}  # folders, and what they hold
ANNOTATION_SOURCES = {
    "zsg": "ZSGNet's annotation CSVs: github.com/TheShadow29/zsgnet-pytorch, DATA_README.md and data/download_ann.sh",
    "demo": "the bundled demo: `python -m grounding.eval split=demo` (re)generates it under data_root",
    "refcoco": "the refer toolkit: github.com/lichengunc/refer, data/README.md (refcoco.zip, refcoco+.zip, "
               "refcocog.zip)",
    "flickr_entities": "github.com/BryanPlummer/flickr30k_entities (test.txt, val.txt; annotations.zip)",
}
IMAGE_SOURCES = {
    "flickr30k-images": "the Flickr30k images (Young et al. 2014; request form at "
                        "shannon.cs.illinois.edu/DenotationGraph)",
    "vg": "the Visual Genome images (visualgenome.org: VG_100K, VG_100K_2)",
    "coco": "the MS-COCO train2014 images (cocodataset.org)",
    "demo-images": ANNOTATION_SOURCES["demo"],
}
PARTITION_LABELS = {"unc": "train, val, testA, testB", "umd": "train, val, test"}
DECODE_SAMPLE = 8


@dataclass
class SplitCheck:
    """One split's verdict: ``status`` is ``ok``, ``missing`` or ``incomplete``; ``problems`` say what."""
    split: str
    status: str = "ok"
    problems: List[str] = field(default_factory=list)
    rows: Optional[int] = None
    expected_rows: Optional[int] = None
    expected_rows_source: Optional[str] = None
    images: Optional[int] = None
    missing_images: int = 0

    def line(self) -> str:
        if self.status == "ok":
            pub = (f"= published {self.expected_rows}" if self.expected_rows is not None
                   else "no published size to compare")
            return f"{self.split}: ok ({self.rows} rows {pub}; {self.images} images)"
        return f"{self.split}: {self.status} — " + "; ".join(self.problems)

    def to_dict(self) -> Dict:
        return asdict(self)


def split_config(name: str):
    """A registered split's YAML (without its Hydra defaults list)."""
    split_info(name)  # unknown name: an error listing the known ones
    from ..paths import conf_dir

    y = OmegaConf.load(conf_dir() / "split" / f"{name}.yaml")
    if "defaults" in y:
        del y["defaults"]
    return y


def default_data_root() -> str:
    """``data_root`` of conf/config.yaml (``data``)."""
    from ..paths import conf_dir

    return str(OmegaConf.load(conf_dir() / "config.yaml").get("data_root", "data"))


def _kind(cfg) -> str:
    return str(cfg.loader._target_).split(".")[-2]  # grounding.data.<module>.<function>


def _image_root(template: str) -> str:
    """``{data_root}/coco/train2014/{file_name}`` → ``coco/train2014``."""
    rel = template.replace("{data_root}/", "", 1)
    return os.path.dirname(rel.split("{", 1)[0].rstrip("/") + "/x")


def _required(cfg, root: Path) -> List[tuple]:
    """(path, what it is, where it comes from) of every file and folder the split needs."""
    ld, kind = cfg.loader, _kind(cfg)

    def src(k):  # Flickr30k Entities' files come from its repository, whichever loader reads them
        return ANNOTATION_SOURCES["flickr_entities" if k in ENTITIES_KEYS else kind]

    out = [(root / str(ld[k]), "file", src(k)) for k in FILE_KEYS if ld.get(k)]
    out += [(root / str(ld[k]), "folder", src(k)) for k in DIR_KEYS if ld.get(k)]
    img = _image_root(str(ld.image_template))
    out.append((root / img, "folder", IMAGE_SOURCES.get(img.split("/")[0], "the images")))
    return out


def check_split(cfg, data_root, decode_sample: int = DECODE_SAMPLE) -> SplitCheck:
    """Check one split (its YAML config ``cfg``) under ``data_root``; never raises for bad data."""
    root = Path(data_root)
    res = SplitCheck(str(cfg.name), expected_rows=cfg.get("expected_rows"),
                     expected_rows_source=cfg.get("expected_rows_source"))
    absent = [(p, what, src) for p, what, src in _required(cfg, root)
              if not (p.is_dir() if what == "folder" else p.is_file())]
    if absent:
        res.status = "missing"
        by_source: Dict[str, List[str]] = {}
        for p, what, src in absent:
            by_source.setdefault(src, []).append(f"{p}{'/' if what == 'folder' else ''}")
        res.problems = [f"not found: {', '.join(ps)} (from {src})" for src, ps in by_source.items()]
        return res
    kind = _kind(cfg)
    if kind == "refcoco":
        res.problems += check_refs(cfg, root)
    elif kind == "flickr_entities":
        res.problems += check_flickr_pairs(cfg, root)
    try:
        split = load_split(cfg, root, family=split_info(res.split).family, on_error="skip")
    except (DatasetError, OSError, ValueError) as e:
        res.problems.append(f"cannot be read: {' '.join(str(e).split())}")
        res.status = "incomplete"
        return res
    res.rows = len(split)
    if split.n_errors:
        first = next(s.error for s in split.samples if s.error)
        res.problems.append(f"{split.n_errors} of {len(split)} rows unusable (first: {first})")
    res.problems += check_images(split, res, decode_sample)
    if res.expected_rows is not None and res.rows != int(res.expected_rows):
        res.problems.append(f"{res.rows} rows, but the published test set has {res.expected_rows} "
                            f"({res.expected_rows_source or 'split YAML'})")
    res.status = "incomplete" if res.problems else "ok"
    return res


def check_images(split, res: SplitCheck, decode_sample: int) -> List[str]:
    """Every distinct image path of the split's rows exists as a non-empty file (one ``stat`` each); an
    evenly spaced sample of them decodes."""
    paths = list(dict.fromkeys(s.image_path for s in split.samples if s.image_path))
    res.images = len(paths)
    present, missing = [], []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            missing.append(p)
            continue
        (present if st.st_size > 0 and not os.path.isdir(p) else missing).append(p)
    res.missing_images = len(missing)
    problems = []
    if missing:
        rows = {p: 0 for p in missing}
        for s in split.samples:
            if s.image_path in rows:
                rows[s.image_path] += 1
        problems.append(f"{len(missing)} of {len(paths)} images missing or empty ({sum(rows.values())} rows), "
                        f"e.g. {missing[0]}")
    problems += _decode_sample(present, decode_sample)
    return problems


def _decode_sample(paths: List[str], k: int) -> List[str]:
    from PIL import Image

    if not paths or k <= 0:
        return []
    step = max(1, len(paths) // k)
    bad = []
    for p in paths[::step][:k]:
        try:
            with Image.open(p) as im:
                im.load()
        except Exception as e:  # noqa: BLE001 — any decoder failure is the finding
            bad.append(f"{p} ({type(e).__name__}: {e})")
    return [f"{len(bad)} of {min(k, len(paths[::step]))} sampled images do not decode, e.g. {bad[0]}"] if bad else []


def check_refs(cfg, root: Path) -> List[str]:
    """RefCOCO: every ref's ``ann_id`` is an annotation of ``instances.json``, and the refs pickle holds
    the partition the YAML names (``unc``: val/testA/testB; ``umd``: val/test)."""
    from .safe_pickle import safe_load

    ld = cfg.loader
    refs_path, inst_path = root / str(ld.refs), root / str(ld.instances)
    try:
        refs = safe_load(refs_path)
        with open(inst_path, encoding="utf-8") as f:
            ann_ids = {a.get("id") for a in json.load(f).get("annotations", []) if isinstance(a, dict)}
    except (DatasetError, OSError, ValueError, AttributeError) as e:
        return [f"cannot be read: {' '.join(str(e).split())}"]
    if not isinstance(refs, list):
        return [f"{refs_path}: expected a list of refs, got {type(refs).__name__}"]
    refs = [r for r in refs if isinstance(r, dict)]
    out = []
    lost = [r for r in refs if r.get("ann_id") not in ann_ids]
    if lost:
        out.append(f"{len(lost)} of {len(refs)} refs' ann_id not in {inst_path} (e.g. ref {lost[0].get('ref_id')}, "
                   f"ann_id {lost[0].get('ann_id')}): refs and instances.json come from different downloads")
    labels = {str(r.get("split")) for r in refs}
    want = str(ld.get("split_by", "unc"))
    lettered = any(lb.startswith("test") and len(lb) > 4 for lb in labels)
    ok = lettered if want == "unc" else ("test" in labels and not lettered) if want == "umd" else True
    if not ok:
        out.append(f"{refs_path} holds split labels {{{', '.join(sorted(labels))}}}, not the {want} partition "
                   f"({PARTITION_LABELS.get(want, want)}): get refs({want}).p of {ld.get('dataset')} "
                   f"({ANNOTATION_SOURCES['refcoco']})")
    return out


def check_flickr_pairs(cfg, root: Path) -> List[str]:
    """Flickr30k Entities: each image of the list has ``Sentences/<id>.txt`` and ``Annotations/<id>.xml``."""
    from .flickr_entities import read_image_list

    ld = cfg.loader
    try:
        ids = read_image_list(root / str(ld.image_list))
    except DatasetError as e:
        return [f"cannot be read: {e}"]
    out = []
    for key, pattern in DIR_KEYS.items():
        d = root / str(ld[key])
        have = set(os.listdir(d))
        lack = [i for i in ids if pattern.format(img_id=i) not in have]
        if lack:
            out.append(f"{len(lack)} of {len(ids)} listed images lack {d.name}/{pattern} (e.g. {lack[0]}): "
                       f"Sentences/Annotations pairs incomplete — re-extract annotations.zip")
    return out


def check(names: Optional[List[str]] = None, data_root="data", decode_sample: int = DECODE_SAMPLE) -> List[SplitCheck]:
    """:func:`check_split` for the named splits (all registered splits when none are named)."""
    return [check_split(split_config(n), data_root, decode_sample) for n in (names or split_names())]


def summary(results: List[SplitCheck], data_root) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "missing", "incomplete")}
    verdict = "all ok" if counts["ok"] == len(results) else "NOT ok"
    return (f"{len(results)} splits under {os.path.abspath(str(data_root))}: {counts['ok']} ok, "
            f"{counts['missing']} missing, {counts['incomplete']} incomplete — {verdict}")


# ------------------------------------------------------------------------------------------ layout
def _entries(name: str) -> List[tuple]:
    """(path under data_root, ends with a folder?) of every file a split reads."""
    ld = split_config(name).loader
    out = [(str(ld[k]), False) for k in FILE_KEYS if ld.get(k)]
    out += [(f"{ld[k]}/{pat}", False) for k, pat in DIR_KEYS.items() if ld.get(k)]
    out.append((str(ld.image_template).replace("{data_root}/", "", 1), False))
    return out


def layout(names: Optional[List[str]] = None, data_root: str = "<data_root>") -> str:
    """The tree of files the registered splits (or those named) expect under ``data_root``, each leaf with
    the splits that read it."""
    tree: Dict = {}
    for n in names or split_names():
        for path, _ in _entries(n):
            node = tree
            for part in path.split("/"):
                node = node.setdefault(part, {})
            node.setdefault("\0splits", []).append(n)
    lines = [f"{data_root}/"]
    _render(tree, "", lines)
    width = max(len(t) for t, _ in lines[1:]) + 3 if len(lines) > 1 else 0
    return "\n".join([lines[0]] + [f"{t:<{width}}{c}".rstrip() for t, c in lines[1:]])


def _render(node: Dict, prefix: str, lines: List) -> None:
    kids = sorted(k for k in node if k != "\0splits")
    for i, k in enumerate(kids):
        last = i == len(kids) - 1
        child = node[k]
        is_dir = any(c != "\0splits" for c in child)
        splits = child.get("\0splits", [])
        note = (" ".join(splits) if len(splits) <= 3 else f"{len(splits)} splits") if splits else ""
        lines.append((f"{prefix}{'└── ' if last else '├── '}{k}{'/' if is_dir else ''}", note))
        _render(child, prefix + ("    " if last else "│   "), lines)
