"""Scaling: time per image of the ViT path versus the number of SLIC scales and the upsample factor.

    python scripts/bench_scaling.py            # real-size random-weight ViT-B/32 and ViT-B/16
    python scripts/bench_scaling.py --quick    # tiny ViT (CI)
    python scripts/bench_scaling.py --arch open_clip:ViT-H-14   # open_clip towers (random weights, repeatable)
    python scripts/bench_scaling.py --arch hf:DIR               # a local transformers CLIP folder
Writes outputs/bench/scaling.{md,csv,png}: SLIC time, region-token time and regions per image.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]

from grounding.data.images import preprocess  # noqa: E402
from grounding.methods import ours_vit  # noqa: E402
from grounding.stages.regions import slic_regions  # noqa: E402
from grounding.models.random import random_clip, tiny_clip  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "scaling.md"))
    ap.add_argument("--arch", action="append", default=None,
                    help="open_clip:ARCH (an open_clip ViT name or model-config JSON; random weights from open_clip's "
                         "create_model, nothing downloaded) or hf:DIR (a local transformers CLIP folder); repeatable; "
                         "replaces the default models")
    a = ap.parse_args()
    from PIL import Image
    import skimage.data

    torch.manual_seed(0)
    if a.quick:
        models = {"tiny ViT/32": tiny_clip("vit", patch_size=32)}
        scales, ups, n_img = [1, 3], [1, 2], 1
    else:
        models = {"ViT-B/32 size": random_clip("ViT-B/32"), "ViT-B/16 size": random_clip("ViT-B/16")}
        scales, ups, n_img = [1, 3, 6, 11], [1, 2, 4], a.images
    if a.arch:
        from grounding.models.open_clip_backbone import load_open_clip

        models = {}
        for arch in a.arch:
            if not arch.startswith(("open_clip:", "hf:")):
                raise SystemExit(f"--arch {arch}: expected open_clip:ARCH or hf:DIR")
            if arch.startswith("hf:"):  # a local transformers CLIP folder (its own weights)
                from grounding.models.backbones import load_backbone

                bb = load_backbone(arch)
            else:
                bb = load_open_clip(arch[len("open_clip:"):], None, random_weights=True)
            if bb.kind != "vit":
                raise SystemExit(f"--arch {arch}: the scaling benchmark times ViT region tokens; {arch} is a {bb.kind}")
            models[arch] = bb.model
    base = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((224, 224), Image.BICUBIC))
    imgs = [np.roll(base, 37 * i, axis=1) for i in range(n_img)]
    rows = []
    for name, model in models.items():
        for k in scales:
            segs = list(range(100, 100 + 50 * k, 50))
            t = time.perf_counter()
            regions = [slic_regions(im, segs, 50, 0) for im in imgs]
            t_slic = (time.perf_counter() - t) / n_img
            for up in ups:
                x = [preprocess(im, 224, "cpu") for im in imgs]
                ours_vit.vit_region_embeddings(model.visual, x[0], regions[0], upsample=up)  # warm-up
                t = time.perf_counter()
                for xi, r in zip(x, regions):
                    ours_vit.vit_region_embeddings(model.visual, xi, r, upsample=up)
                rows.append({"model": name, "scales": k, "n_segments": f"100..{segs[-1]}", "upsample": up,
                             "regions/image": np.mean([r.n_regions for r in regions]),
                             "SLIC s/image": t_slic, "region tokens s/image": (time.perf_counter() - t) / n_img})
    df = pd.DataFrame(rows).round(3)
    dev = f"CPU {platform.machine()} ({torch.get_num_threads()} threads), torch {torch.__version__}"
    text = f"Scaling on {dev}; {n_img} image(s) per point.\n\n" + df.to_markdown(index=False) + "\n"
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    df.to_csv(out.with_suffix(".csv"), index=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), squeeze=False)
    for ax, (name, g) in zip(axes[0], df.groupby("model", sort=False)):
        for up, gu in g.groupby("upsample"):
            ax.plot(gu["regions/image"], gu["region tokens s/image"] + gu["SLIC s/image"], "o-", label=f"upsample {up}")
        ax.set_xlabel("regions per image (SLIC scales 100, 150, …)")
        ax.set_ylabel("s / image (SLIC + region tokens)")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
