"""Run the paper's reference code (pals-ttic/adapting-CLIP) on tiny CLIPs and store golden maps/boxes.

The reference is NOT part of this repository. Get a checkout of it yourself and pass its folder:

    python scripts/reference_parity.py --reference-dir /path/to/adapting-CLIP --out tests/golden

It runs unmodified on CPU: this script only redirects its ``.cuda()`` calls to no-ops, restores
``np.bool`` (removed in NumPy 1.24) and makes ``clip.load`` / the weight download return the tiny
checkpoints built by :func:`grounding.models.random.tiny_clip` (saved as plain state-dict files). The golden
file records, per case: the reference's min–max normalised score map (float32), its cell box, and the
digest of the tiny checkpoint; ``tests/test_parity.py`` checks ``grounding`` against it.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from parity_cases import CASES, case_image, tiny_checkpoints  # noqa: E402


def _patch_reference_for_cpu(ckpts):
    import clip
    from clip.model import build_model

    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    if not hasattr(np, "bool"):
        np.bool = bool

    def fake_load(name, *a, **k):  # the reference's ViT path calls clip.load("ViT-B/16") etc.
        sd = torch.load(ckpts[name], map_location="cpu", weights_only=True)
        return build_model(sd).float().eval(), clip.clip._transform(224)

    clip.load = fake_load
    from spatial_clip.resnet import spatial_clip as ref_spatial_clip

    ref_spatial_clip._download = lambda url, root: str(ckpts["RN50"])  # the reference always loads RN50


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference-dir", required=True, help="checkout of pals-ttic/adapting-CLIP")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.reference_dir).resolve()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    ckpts, digests = tiny_checkpoints(tmp)
    _patch_reference_for_cpu(ckpts)
    from models.slic_vit import SLICViT
    from models.resnet_high_res import ResNetHighRes

    arrays, meta = {}, []
    for i, case in enumerate(CASES):
        cls = SLICViT if case["ref_model"].startswith("vit") else ResNetHighRes
        model = cls(model=case["ref_model"], **copy.deepcopy(case["ref_args"]))
        img = case_image(case["image"])
        heatmap = model.get_heatmap(img, case["phrase"])
        cell = model.box_from_heatmap(heatmap)[0].astype(int).tolist()
        hm = heatmap.astype(np.float64)
        norm = (hm - hm.min()) / (hm.max() - hm.min() + 1e-12)
        arrays[f"map_{i}"] = norm.astype(np.float32)
        meta.append(dict(case, cell_box=cell, checkpoint_digest=digests[case["checkpoint"]]))
        print(f"case {i}: {case['ref_model']} {case['image']} {case['phrase']!r} -> {cell}", flush=True)
    np.savez_compressed(out / "reference_parity.npz", **arrays)
    (out / "reference_parity.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {len(meta)} cases to {out}")


if __name__ == "__main__":
    main()
