"""The paper's hyperparameters (the reference code's eval.py), per backbone × dataset family — as data.

Every run with no overrides uses these values, so it reproduces the paper's protocol. They reach a run
in two ways that read this one table: the Hydra configs (``hparams/<method>/<backbone>_<family>``
entries registered from here, so ``--cfg job`` and ``.hydra/config.yaml`` show the numbers) and the
Python API (:class:`grounding.Localizer`). Torch-free, so configs validate without loading a model.

Backbones the paper did not evaluate borrow the values of the closest one it did; dataset families
the paper did not evaluate (``refcoco``) borrow Flickr's; the training-free family of methods
(``dense_untuned``) borrows ours-ViT's α and σ and is marked "not tuned".
"""
from __future__ import annotations

import re
from typing import Any, Dict

VIT_COMMON = dict(aggregation="mean", upsample=2, compactness=50.0, sigma=0.0, box_search="hierarchical",
                  stem_padding="reference")
RESNET_COMMON = dict(high_res=True, box_search="hierarchical")
SEGMENTS_600 = list(range(100, 601, 50))
SEGMENTS_400 = list(range(100, 401, 50))

# (backbone, dataset family) → hyperparameters of method "ours".
PAPER: Dict[tuple, Dict[str, Any]] = {
    ("vit_l14", "flickr"): dict(VIT_COMMON, alpha=0.75, temperature=0.02, n_segments=SEGMENTS_600),
    ("vit_l14", "vg"): dict(VIT_COMMON, alpha=0.8, temperature=0.01, n_segments=SEGMENTS_600),
    ("vit_b16", "flickr"): dict(VIT_COMMON, alpha=0.8, temperature=0.01, n_segments=SEGMENTS_600),
    ("vit_b16", "vg"): dict(VIT_COMMON, alpha=0.85, temperature=0.01, n_segments=SEGMENTS_600),
    ("vit_b32", "flickr"): dict(VIT_COMMON, alpha=0.9, temperature=0.009, n_segments=SEGMENTS_400),
    ("vit_b32", "vg"): dict(VIT_COMMON, alpha=0.9, temperature=0.008, n_segments=SEGMENTS_400),
    ("rn50x4", "flickr"): dict(RESNET_COMMON, alpha=0.7, temperature=0.03),
    ("rn50x4", "vg"): dict(RESNET_COMMON, alpha=0.7, temperature=0.01),
    ("rn50", "flickr"): dict(RESNET_COMMON, alpha=0.7, temperature=0.03),
    ("rn50", "vg"): dict(RESNET_COMMON, alpha=0.8, temperature=0.01),
    # The analytic toy CLIP (grounding.models.toy) — not a paper backbone; values chosen for its cosine range.
    ("toy", "flickr"): dict(VIT_COMMON, alpha=0.5, temperature=0.05, n_segments=[50, 100, 150]),
}
# DenseCLIP baseline (RN50x4 in the paper): the strided map.
DENSECLIP: Dict[str, Dict[str, Any]] = {
    "flickr": dict(high_res=False, alpha=0.7, temperature=0.03, box_search="hierarchical"),
    "vg": dict(high_res=False, alpha=0.8, temperature=0.03, box_search="hierarchical"),
}
# Backbones the paper did not evaluate → the backbone whose values they borrow.
BORROWED = {"vit_l14_336": "vit_l14", "vit_b14": "vit_l14", "vit_h14": "vit_l14", "vit_g14": "vit_l14",
            "vit_bigg14": "vit_l14", "vit_l16": "vit_b16", "vit_l32": "vit_b32",
            "rn101": "rn50", "rn50x16": "rn50x4", "rn50x64": "rn50x4"}
# Dataset families the paper did not evaluate → the family whose values they borrow.
FAMILY_BORROWED = {"demo": "flickr", "refcoco": "flickr"}
# The dataset families with values: those the paper evaluated and those that borrow (conf/family/ holds their
# config entries; tests/test_config.py checks every one of them is here).
FAMILIES = tuple(sorted({f for _, f in PAPER} | set(FAMILY_BORROWED)))
TABLES = ("ours", "denseclip", "dense_untuned")
BACKBONES = ("vit_l14", "vit_l14_336", "vit_b16", "vit_b32", "rn50", "rn101", "rn50x4", "rn50x16", "rn50x64", "toy")


def backbone_kind(backbone_key: str) -> str:
    """``vit`` or ``resnet`` from a backbone key (every library gives OpenAI-style keys: rn* → resnet, else vit)."""
    return "resnet" if str(backbone_key).startswith("rn") else "vit"


def _borrowed_key(backbone_key: str) -> str:
    """The paper backbone whose values ``backbone_key`` uses: itself, its BORROWED entry, or — for an input
    size the table does not list (e.g. ``vit_h14_378``, ``vit_b16_240``) — that of the key without
    the ``_<size>`` suffix."""
    k = str(backbone_key)
    if any(k == b for b, _ in PAPER) or k in BORROWED:
        return BORROWED.get(k, k)
    base = re.sub(r"_\d+$", "", k)
    return BORROWED.get(base, base)


def _lookup(backbone_key: str, family: str) -> Dict[str, Any]:
    if family not in FAMILIES:
        raise ValueError(f"unknown dataset family {family!r}; expected one of {', '.join(FAMILIES)}")
    b = _borrowed_key(backbone_key)
    for fam in (family, FAMILY_BORROWED.get(family, family), "flickr"):
        if (b, fam) in PAPER:
            return dict(PAPER[(b, fam)])
    raise ValueError(f"no paper hyperparameters for backbone {backbone_key!r}")


# Values tuned on a val split for the training-free family (scripts/tune.py prints lines to paste here):
# (method, backbone, family) → {"alpha": …, "temperature": …}. Empty: every such method is "not tuned".
TUNED: Dict[tuple, Dict[str, Any]] = {}


def paper_hparams(backbone_key: str, table: str = "ours", family: str = "flickr",
                  method: str = "") -> Dict[str, Any]:
    """The defaults of hyperparameter ``table`` for ``backbone_key`` × dataset ``family``.

    ``ours``: the reference's eval.py values. ``denseclip``: the DenseCLIP baseline (ResNet only).
    ``dense_untuned``: α, σ and box search of ours-ViT for the backbone, for methods the paper did not tune.
    """
    if table == "denseclip":
        if backbone_kind(backbone_key) != "resnet":
            raise ValueError("method 'denseclip' needs a ResNet backbone")
        fam = "vg" if family == "vg" else "flickr"
        if family not in FAMILIES:
            raise ValueError(f"unknown dataset family {family!r}; expected one of {', '.join(FAMILIES)}")
        return dict(DENSECLIP[fam])
    if table == "dense_untuned":
        if backbone_kind(backbone_key) != "vit":
            raise ValueError("the training-free ViT methods need a ViT backbone")
        hp = _lookup(backbone_key, family)
        out = {k: hp[k] for k in ("alpha", "temperature", "box_search")}
        out.update(TUNED.get((method, backbone_key, family), {}))
        return out
    if table != "ours":
        raise ValueError(f"unknown hyperparameter table {table!r}; expected one of {', '.join(TABLES)}")
    return _lookup(backbone_key, family)
