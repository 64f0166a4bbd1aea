"""GPU benchmark: ms/image and peak memory of the dense-feature stage for real-size random-weight models.

  * ViT-L/14 size, method ours, 2× upsample, all SLIC scales 100…600 (≈3,800 region tokens);
  * RN50x4 size, method ours (dilated trunk) and DenseCLIP.

    python scripts/bench_gpu.py                  # needs CUDA; says so plainly and exits 0 when there is none
    python scripts/bench_gpu.py --precision fp32 --images 20
    python scripts/bench_gpu.py --device cpu --quick   # the same measurement on CPU (slow; small settings)
    python scripts/bench_gpu.py --arch open_clip:ViT-H-14 --arch open_clip:ViT-bigG-14   # open_clip towers
    python scripts/bench_gpu.py --arch hf:DIR                  # a local transformers CLIP folder (its weights)
``--arch`` (repeatable) picks the models: vit_l14, rn50x4 (OpenAI-size random CLIPs) or open_clip:ARCH (an open_clip
model name or model-config JSON, built with random weights by open_clip's create_model — nothing is downloaded).
Writes a Markdown table to stdout and to --out (default outputs/bench/gpu.md).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from bench_common import device_label, missing_gpu  # noqa: E402
from grounding.data.images import preprocess  # noqa: E402
from grounding.methods import ours_vit, resnet_dense  # noqa: E402
from grounding.models.backbones import cast_to_precision  # noqa: E402
from grounding.models.random import random_clip  # noqa: E402
from grounding.stages.regions import slic_regions  # noqa: E402

ARCH = {"vit_l14": "ViT-L/14", "rn50x4": "RN50x4"}


def build(arch, device, dtype):
    """(label, model, kind): an OpenAI-size random CLIP cast as clip.load does, or a random-weight open_clip model."""
    if arch.startswith("hf:"):  # a local transformers CLIP/SigLIP folder, its own weights
        from grounding.models.backbones import load_backbone

        bb = load_backbone(arch, device=device, precision=_PRECISION[dtype])
        return arch, bb.model, bb.kind
    if arch.startswith("open_clip:"):
        from grounding.models.open_clip_backbone import load_open_clip

        torch.manual_seed(0)
        bb = load_open_clip(arch[len("open_clip:"):], None, device=device, precision=_PRECISION[dtype],
                            random_weights=True)
        return arch, bb.model, bb.kind
    model = cast_to_precision(random_clip(arch).eval().requires_grad_(False).to(device), dtype)  # as clip.load
    return arch, model, "resnet" if arch.startswith("rn") else "vit"


_PRECISION = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def bench(label, model, kind, method, device, dtype, n_images, n_segments):
    size = 224  # the reference resizes every image to 224×224
    rng = np.random.default_rng(0)
    import skimage.data
    from PIL import Image

    base = Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.BICUBIC)
    imgs = [np.roll(np.asarray(base), int(rng.integers(0, size)), axis=1) for _ in range(n_images + 1)]
    dilated = resnet_dense.dilate_resnet_trunk(model.visual) if (kind == "resnet" and method == "ours") else None
    times, regions_n = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i, im in enumerate(imgs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        x = preprocess(im, size, device, dtype)
        if kind == "vit":
            regions = slic_regions(im, n_segments, 50, 0)
            regions_n.append(regions.n_regions)
            ours_vit.vit_region_embeddings(model.visual, x, regions, upsample=2)
        else:
            resnet_dense.resnet_dense_embeddings(model.visual, x, high_res=method == "ours", dilated_visual=dilated)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # first image is warm-up
            times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device.type == "cuda" else float("nan")
    return {"model": label, "method": method, "dtype": str(dtype).replace("torch.", ""),
            "ms/image": 1000 * float(np.mean(times)), "std ms": 1000 * float(np.std(times)),
            "regions/image": float(np.mean(regions_n)) if regions_n else None, "peak MiB": peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp16", choices=["fp16", "bf16", "fp32"])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--arch", action="append", default=None,
                    help="vit_l14 | rn50x4 | open_clip:ARCH | hf:DIR (repeatable; default: vit_l14 and rn50x4)")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "gpu.md"))
    a = ap.parse_args()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if missing_gpu(a.device, out):
        return 0
    device = torch.device(a.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[a.precision]
    if device.type == "cpu":
        dtype = torch.float32
    n = 1 if a.quick else a.images
    segs = [100, 200] if a.quick else list(range(100, 601, 50))
    rows = []
    for arch in a.arch or ["vit_l14", "rn50x4"]:
        label, model, kind = build(arch, device, dtype)
        for method in (["ours"] if kind == "vit" else ["ours", "denseclip"]):
            rows.append(bench(label, model, kind, method, device, dtype, n, segs))
        del model
    name = device_label(device)
    text = (f"Dense-feature stage on {name}, torch {torch.__version__}, {n} images after one warm-up"
            f"{' (quick: SLIC scales 100,200 only)' if a.quick else ''}.\n\n"
            + pd.DataFrame(rows).round(1).to_markdown(index=False) + "\n")
    print(text)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
