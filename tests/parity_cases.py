"""Cases shared by scripts/reference_parity.py (which runs the reference) and tests/test_parity.py.

Tiny checkpoints stand in for OpenAI's files: the reference loads them through its normal
``build_model`` path (weights rounded through fp16, as real checkpoints are stored), and so does
``grounding.load_backbone(path)``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from grounding.models.backbones import state_dict_digest
from grounding.models.random import tiny_clip

# name the reference asks for → how the tiny stand-in is built
TINY = {
    "ViT-B/32": dict(kind="vit", patch_size=32, seed=1),
    "ViT-B/16": dict(kind="vit", patch_size=16, seed=2),
    "RN50": dict(kind="resnet", seed=3),
    "ViT-L/14": dict(kind="vit", patch_size=14, seed=4, vision_width=128),
}
FLICKR_VIT32 = dict(alpha=0.9, aggregation="mean", n_segments=list(range(100, 401, 50)), temperature=0.009,
                    upsample=2, start_block=0, compactness=50, sigma=0)
VG_VIT16 = dict(alpha=0.85, aggregation="mean", n_segments=list(range(100, 601, 50)), temperature=0.01,
                upsample=2, start_block=0, compactness=50, sigma=0)
FLICKR_VIT14 = dict(alpha=0.75, aggregation="mean", n_segments=list(range(100, 601, 50)), temperature=0.02,
                    upsample=2, start_block=0, compactness=50, sigma=0)
VIT32_UP1 = dict(FLICKR_VIT32, upsample=1, n_segments=[100, 200])
RN_OURS = dict(alpha=0.7, temperature=0.03)
RN_DENSE = dict(high_res=False, alpha=0.7, temperature=0.03)

CASES = [
    dict(ref_model="vit32", checkpoint="ViT-B/32", method="ours", ref_args=FLICKR_VIT32, image="astronaut", phrase="a woman in a space suit"),
    dict(ref_model="vit32", checkpoint="ViT-B/32", method="ours", ref_args=FLICKR_VIT32, image="chelsea", phrase="a cat"),
    dict(ref_model="vit16", checkpoint="ViT-B/16", method="ours", ref_args=VG_VIT16, image="coffee", phrase="a cup of coffee"),
    dict(ref_model="vit16", checkpoint="ViT-B/16", method="ours", ref_args=VG_VIT16, image="rocket", phrase="the rocket"),
    dict(ref_model="RN50", checkpoint="RN50", method="ours", ref_args=RN_OURS, image="chelsea", phrase="the cat's face"),
    dict(ref_model="RN50", checkpoint="RN50", method="ours", ref_args=RN_OURS, image="rocket", phrase="smoke"),
    dict(ref_model="RN50x4", checkpoint="RN50", method="denseclip", ref_args=RN_DENSE, image="coffee", phrase="a spoon"),
    dict(ref_model="RN50x4", checkpoint="RN50", method="denseclip", ref_args=RN_DENSE, image="astronaut", phrase="a flag"),
    # added 2026-11-25: upsample 1 (positional embeddings stored in fp16 there too), a grayscale image, patch 14
    dict(ref_model="vit32", checkpoint="ViT-B/32", method="ours", ref_args=VIT32_UP1, image="camera", phrase="a photographer"),
    dict(ref_model="vit32", checkpoint="ViT-B/32", method="ours", ref_args=VIT32_UP1, image="coffee", phrase="a saucer"),
    dict(ref_model="vit14", checkpoint="ViT-L/14", method="ours", ref_args=FLICKR_VIT14, image="rocket", phrase="a launch tower"),
]


def case_image(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def tiny_checkpoints(folder: Path):
    """Save every tiny stand-in as a plain state-dict file; return ({name: path}, {name: digest})."""
    folder = Path(folder)
    paths, digests = {}, {}
    for name, spec in TINY.items():
        model = tiny_clip(**spec)
        p = folder / (name.replace("/", "-") + ".pt")
        torch.save(model.state_dict(), p)
        paths[name], digests[name] = p, state_dict_digest(model)
    return paths, digests


def our_params(case) -> dict:
    """The case's reference arguments in this harness's hyperparameter names."""
    a = dict(case["ref_args"])
    a.pop("start_block", None)
    a["box_search"] = "hierarchical"
    if case["method"] == "ours" and case["ref_model"].startswith("RN"):
        a["high_res"] = True
    if case["method"] == "denseclip":
        a.pop("high_res", None)
    return a
