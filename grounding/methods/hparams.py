"""The paper's hyperparameters (the reference code's eval.py), per backbone family × dataset family.

Every run with no overrides uses these values, so it reproduces the paper's protocol. Backbones the
paper did not evaluate borrow the values of the closest one it did (marked ``borrowed``).
"""
from __future__ import annotations

from typing import Any, Dict

VIT_COMMON = dict(aggregation="mean", upsample=2, compactness=50, sigma=0, box_search="hierarchical",
                  stem_padding="reference")
RESNET_COMMON = dict(high_res=True, box_search="hierarchical")
SEGMENTS_600 = list(range(100, 601, 50))
SEGMENTS_400 = list(range(100, 401, 50))

# (backbone family, dataset family) → hyperparameters of method "ours" (and "denseclip" below).
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
}
# DenseCLIP baseline (RN50x4 in the paper): strided map.
DENSECLIP: Dict[str, Dict[str, Any]] = {
    "flickr": dict(high_res=False, alpha=0.7, temperature=0.03, box_search="hierarchical"),
    "vg": dict(high_res=False, alpha=0.8, temperature=0.03, box_search="hierarchical"),
}
# Backbone families the paper did not evaluate → the family whose values they borrow.
BORROWED = {"vit_l14_336": "vit_l14", "vit_b14": "vit_l14", "vit_l16": "vit_b16", "vit_l32": "vit_b32",
            "rn101": "rn50", "rn50x16": "rn50x4", "rn50x64": "rn50x4", "toy": "toy"}
# The analytic toy CLIP (grounding.models.toy) — not a paper backbone; values chosen for its cosine range.
PAPER[("toy", "flickr")] = dict(VIT_COMMON, alpha=0.5, temperature=0.05, n_segments=[50, 100, 150])
PAPER[("toy", "vg")] = PAPER[("toy", "flickr")]
PAPER[("toy", "demo")] = PAPER[("toy", "flickr")]

PARAM_NAMES = ("alpha", "temperature", "n_segments", "compactness", "sigma", "upsample", "aggregation",
               "high_res", "box_search", "stem_padding")


def dataset_family(split_or_family: str) -> str:
    s = (split_or_family or "flickr").lower()
    for fam in ("flickr", "vg", "demo"):
        if s.startswith(fam):
            return fam
    raise ValueError(f"unknown dataset family for {split_or_family!r} (expected flickr*, vg* or demo*)")


def paper_hparams(backbone_family: str, method: str = "ours", family: str = "flickr") -> Dict[str, Any]:
    """The reference's hyperparameters for ``method`` on ``backbone_family`` × dataset ``family``."""
    fam = dataset_family(family)
    bfam = BORROWED.get(backbone_family, backbone_family)
    if method == "denseclip":
        if not bfam.startswith("rn"):
            raise ValueError("method 'denseclip' needs a ResNet backbone")
        return dict(DENSECLIP["vg" if fam == "vg" else "flickr"])
    if method != "ours":
        raise ValueError(f"unknown method {method!r}; expected 'ours' or 'denseclip'")
    if fam == "demo" and (bfam, fam) not in PAPER:
        fam = "flickr"
    key = (bfam, fam)
    if key not in PAPER:
        raise ValueError(f"no paper hyperparameters for backbone family {backbone_family!r}")
    return dict(PAPER[key])
