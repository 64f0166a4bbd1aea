"""Benchmark: feature reuse across phrases, and the cost of an α × σ sweep with the feature cache.

One invocation, one machine, same images and phrases for every mode:
  * ``recompute``: the reference's way — SLIC and the whole CLIP forward again for every phrase;
  * ``reuse``:     regions and dense features once per image, reused for its ~5 phrases;
  * ``sweep``:     a 5 × 5 (α, σ) sweep with the on-disk cache, against one evaluation.

    python scripts/bench_pipeline.py                 # tiny ViT and a real-size random-weight ViT-B/16
    python scripts/bench_pipeline.py --quick         # CI: fewer images, tiny model only
Writes a Markdown table to stdout and to --out (default outputs/bench/pipeline.md) plus a CSV.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grounding.models.backbones import Backbone  # noqa: E402
from grounding.stages.cache import FeatureCache  # noqa: E402
from grounding.api import Localizer  # noqa: E402
from grounding.models.random import tiny_clip  # noqa: E402

PHRASES = ["a person", "the red car", "a dog on the grass", "the sky", "a wooden table", "two children", "a hat"]


def vit_b16_random(seed=0):
    """Real-size ViT-B/16 CLIP (86M visual params) with random weights."""
    from clip.model import CLIP

    torch.manual_seed(seed)
    return CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12).float().eval()


def workload(n_images, phrases_per_image, seed=0):
    import skimage.data as d

    base = [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), d.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    imgs = []
    for i in range(n_images):
        im = base[i % len(base)]
        if i >= len(base):  # vary the content so SLIC is not repeated on identical pixels
            im = np.roll(im, int(rng.integers(1, im.shape[1])), axis=1)
        imgs.append(np.ascontiguousarray(im))
    rows = [(i, PHRASES[(i + k) % len(PHRASES)]) for i in range(n_images) for k in range(phrases_per_image)]
    return imgs, rows


def run_recompute(loc, imgs, rows):
    t = time.perf_counter()
    for i, ph in rows:
        loc(imgs[i], ph)
    return time.perf_counter() - t


def run_reuse(loc, imgs, rows):
    t = time.perf_counter()
    by_image = {}
    for i, ph in rows:
        by_image.setdefault(i, []).append(ph)
    for i, phs in by_image.items():
        prep = loc.prepare(imgs[i])
        for ph in phs:
            loc.localize_prepared(prep, ph)
    return time.perf_counter() - t


def run_sweep(loc, paths, rows, alphas, temps):
    """One evaluation with an empty cache, then the remaining sweep points reading it."""
    by_image = {}
    for i, ph in rows:
        by_image.setdefault(i, []).append(ph)
    t0 = time.perf_counter()
    for i, phs in by_image.items():
        prep = loc.prepare(paths[i])
        for ph in phs:
            loc.localize_prepared(prep, ph, alpha=alphas[0], temperature=temps[0])
    one = time.perf_counter() - t0
    for a in alphas:
        for tmp in temps:
            if (a, tmp) == (alphas[0], temps[0]):
                continue
            for i, phs in by_image.items():
                prep = loc.prepare(paths[i])
                for ph in phs:
                    loc.localize_prepared(prep, ph, alpha=a, temperature=tmp)
    return one, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--phrases", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "pipeline.md"))
    a = ap.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("no GPU on this machine: running on cpu instead")
        a.device = "cpu"
    n_images = 3 if a.quick else a.images
    models = {"tiny ViT-B/32 (random)": tiny_clip("vit", patch_size=32, seed=0)}
    if not a.quick:
        models["ViT-B/16 size (random)"] = vit_b16_random()
    imgs, rows = workload(n_images, a.phrases)
    results = []
    tmp = Path(tempfile.mkdtemp())
    paths = []
    from PIL import Image

    for i, im in enumerate(imgs):
        p = tmp / f"img{i}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    for name, model in models.items():
        bb = Backbone(name=name, model=model.to(a.device), device=torch.device(a.device), dtype=torch.float32)
        loc = Localizer(bb, "ours", device=a.device, family="flickr", box_search="hierarchical")
        loc(imgs[0], rows[0][1])  # warm-up, excluded
        t_re = run_recompute(loc, imgs, rows)
        t_ru = run_reuse(loc, imgs, rows)
        cached = Localizer(bb, "ours", device=a.device, family="flickr", box_search="hierarchical",
                           cache=FeatureCache(tmp / f"cache_{len(results)}"))
        one, sweep = run_sweep(cached, paths, rows, [0.6, 0.7, 0.75, 0.8, 0.9], [0.005, 0.01, 0.02, 0.03, 0.05])
        results.append({"model": name, "images": n_images, "rows": len(rows),
                        "recompute rows/s": len(rows) / t_re, "reuse rows/s": len(rows) / t_ru,
                        "reuse speed-up": t_re / t_ru, "one eval s": one, "5x5 sweep s": sweep,
                        "sweep / one eval": sweep / one})
    df = pd.DataFrame(results).round(3)
    dev = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    text = (f"Pipeline benchmark on {dev}, torch {torch.__version__}; {a.phrases} phrases per image.\n\n"
            + df.to_markdown(index=False) + "\n")
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    df.to_csv(out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
