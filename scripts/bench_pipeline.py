"""Benchmark: end-to-end prepare (SLIC + region tokens) against a frozen copy of the original path, feature
reuse across phrases, and the cost of an α × σ sweep with the feature cache.

Prepare table (issue #17): s/image and peak memory of the phrase-independent ViT work for
  * ``today``: serial SLIC and the original region tokens (frozen below: one token per region, dense
    regions × patches masked attention);
  * ``1 distinct``: one token per distinct patch membership (still dense attention);
  * ``2 segments``: attention over each region's own patches (one token per region);
  * ``1+2``: both; ``1+2 +SLIC threads``: and SLIC scales in threads — the package's default;
  * ``bf16`` (opt-in precision, CPU or GPU), and on CUDA ``batched`` (all images' region tokens in one forward).
Variants run interleaved image by image in one process (ratios are robust to a shared machine); peak
memory is ru_maxrss of a fresh subprocess per variant on CPU, torch.cuda.max_memory_allocated on GPU.
Maps and boxes of every variant are compared with today's on every image and phrase.

One invocation, one machine, same images and phrases for every mode:
  * ``recompute``: the reference's way — SLIC and the whole CLIP forward again for every phrase;
  * ``reuse``:     regions and dense features once per image, reused for its ~5 phrases;
  * ``sweep``:     a 5 × 5 (α, σ) sweep with the on-disk cache, against one evaluation.

    python scripts/bench_pipeline.py                 # tiny ViT and a real-size random-weight ViT-B/16
    python scripts/bench_pipeline.py --quick         # CI (< 15 s): tiny model, few scales, no subprocesses
    python scripts/bench_pipeline.py --device cuda   # GPU (says "no GPU" and runs on CPU when there is none)
    python scripts/bench_pipeline.py --only-prepare  # the prepare table only
Writes a Markdown table to stdout and to --out (default outputs/bench/pipeline.md) plus a CSV.
"""
from __future__ import annotations

import argparse
import copy
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from grounding.models.backbones import Backbone  # noqa: E402
from grounding.stages.cache import FeatureCache  # noqa: E402
from grounding.api import Localizer  # noqa: E402
from grounding.data.images import preprocess, resize_square  # noqa: E402
from grounding.evaluation.evaluator import box_iou  # noqa: E402
from grounding.methods import ours_vit  # noqa: E402
from grounding.methods.hparams import paper_hparams  # noqa: E402
from grounding.models.backbones import cast_to_precision  # noqa: E402
from grounding.models.random import random_clip, tiny_clip  # noqa: E402
from grounding.models.text import tokenize  # noqa: E402
from grounding.stages.box_search import search_box  # noqa: E402
from grounding.stages.regions import slic_regions  # noqa: E402
from grounding.stages.score_map import aggregate_regions, cosine_scores, minmax_normalise, phi  # noqa: E402

PHRASES = ["a person", "the red car", "a dog on the grass", "the sky", "a wooden table", "two children", "a hat"]


# ---------------------------------------------------------------- frozen copy of the original path
def today_patch_membership(regions, grid):
    lab = torch.from_numpy(regions.flat_labels())
    sampled = F.interpolate(lab[:, None].float(), size=(grid, grid), mode="nearest")[:, 0].long()
    sampled = sampled.reshape(sampled.shape[0], -1)
    member = torch.zeros(regions.n_regions, grid * grid, dtype=torch.bool)
    for s in range(sampled.shape[0]):
        member[sampled[s], torch.arange(grid * grid)] = True
    return member


def today_attention(attn, x_patch, x_region, member):
    d = x_patch.shape[-1]
    h = attn.num_heads
    hd = d // h
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(x_region, w[:d], b[:d]).reshape(-1, h, hd).transpose(0, 1) * hd ** -0.5
    k_r = F.linear(x_region, w[d:2 * d], b[d:2 * d]).reshape(-1, h, hd).transpose(0, 1)
    v_r = F.linear(x_region, w[2 * d:], b[2 * d:]).reshape(-1, h, hd).transpose(0, 1)
    k_p = F.linear(x_patch, w[d:2 * d], b[d:2 * d]).reshape(-1, h, hd).transpose(0, 1)
    v_p = F.linear(x_patch, w[2 * d:], b[2 * d:]).reshape(-1, h, hd).transpose(0, 1)
    s_p = torch.matmul(q, k_p.transpose(1, 2)).masked_fill(~member[None], float("-inf"))
    s_r = (q * k_r).sum(-1, keepdim=True)
    p = torch.softmax(torch.cat([s_p, s_r], -1).float(), -1).to(q.dtype)
    out = (torch.matmul(p[..., :-1], v_p) + p[..., -1:] * v_r).transpose(0, 1).reshape(-1, d)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


@torch.no_grad()
def today_region_embeddings(visual, image, regions, upsample=2, region_chunk=4096):
    """grounding.methods.ours_vit.vit_region_embeddings as of commit 2d4353f (before issue #17)."""
    dtype = visual.conv1.weight.dtype
    stride, pad = ours_vit.stem_geometry(visual, upsample)
    x = F.conv2d(image.to(dtype), visual.conv1.weight, stride=stride, padding=pad)
    grid = x.shape[-1]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.to(dtype).reshape(1, 1, -1), x], 1)
    x = x + ours_vit.upsample_positional_embedding(visual.positional_embedding, grid).to(dtype)
    x = visual.ln_pre(x)[0]
    member = today_patch_membership(regions, grid).to(x.device)
    ln_patches, tokens = [], x
    for block in visual.transformer.resblocks:
        ln_patches.append(block.ln_1(tokens[1:]))
        tokens = block(tokens[:, None])[:, 0]
    outs = []
    for start in range(0, member.shape[0], region_chunk):
        m = member[start:start + region_chunk]
        r = x[:1].expand(m.shape[0], -1).clone()
        for block, ln_patch in zip(visual.transformer.resblocks, ln_patches):
            r = r + today_attention(block.attn, ln_patch, block.ln_1(r), m)
            r = r + block.mlp(block.ln_2(r))
        r = visual.ln_post(r)
        outs.append(r @ visual.proj if visual.proj is not None else r)
    return torch.cat(outs, 0)


# ---------------------------------------------------------------- prepare table
def _slic(im, segs, threads):
    return slic_regions(im, segs, 50, 0, workers=None if threads else 1)


def _ours(**kw):
    return lambda vis, x, r, up: ours_vit.vit_region_embeddings(vis, x, r, upsample=up, **kw)


def prepare_variants(device):
    """name → (SLIC in threads?, embeddings fn(visual, x, regions, upsample), bf16?)"""
    return {
        "today": (False, today_region_embeddings, False),
        "1 distinct": (False, _ours(dense=True), False),
        "2 segments": (False, _ours(dedup=False), False),
        "1+2": (False, _ours(), False),
        "1+2 +SLIC threads": (True, _ours(), False),
        "1+2 +SLIC threads bf16": (True, _ours(), True),
    }


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def maps_and_boxes(model, regions, emb, params, phrases, device):
    """The pipeline's map (mean φ over regions, min–max) and hierarchical box for each phrase."""
    out = []
    for ph in phrases:
        with torch.no_grad():
            t = model.encode_text(tokenize(ph).to(device)).float()[0]
        cos = cosine_scores(emb.float(), t / t.norm(), dim=-1).cpu().numpy()
        m = minmax_normalise(aggregate_regions(regions, phi(cos, params["temperature"]), "mean"))
        out.append((m, tuple(int(c) for c in search_box(m, params["alpha"], method="hierarchical"))))
    return out


def _status_mib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1]) / 1024
    return float("nan")


def memory_probe(arch, variant, upsample, segs, device):
    """Run in a fresh process: build the model, prepare one image with ``variant``; print the peak RSS (MiB)
    of the prepare step and the RSS before it. The kernel's peak counter is reset after the model is built
    (``/proc/self/clear_refs``), so the peak is the prepare step's, not the model construction's."""
    import resource

    model = build_model(arch).to(device)
    threads, fn, low = prepare_variants(device)[variant]
    if low:
        model = cast_to_precision(model, torch.bfloat16)
    im = workload(1, 1)[0][0]
    im = resize_square(Image.fromarray(im), 224)
    x = preprocess(im, 224, device, model.visual.conv1.weight.dtype)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (Linux)
        before, peak = _status_mib("VmRSS"), lambda: _status_mib("VmHWM")
    except OSError:  # not Linux: process-lifetime peak
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731
    fn(model.visual, x, _slic(im, segs, threads), upsample)
    print(f"MEMPROBE {peak():.1f} {before:.1f}")


def build_model(arch):
    if arch == "tiny":
        return tiny_clip("vit", patch_size=32, seed=0)
    return random_clip(arch, seed=0)


def prepare_table(archs, n_images, segs, upsample, device, phrases, probes=True, only=None):
    imgs = [resize_square(Image.fromarray(im), 224) for im in workload(n_images, 1)[0]]
    rows, agree = [], []
    for arch in archs:
        model = build_model(arch).to(device)
        low = cast_to_precision(copy.deepcopy(model), torch.bfloat16)
        params = paper_hparams("vit_b16" if arch == "ViT-B/16" else "vit_b32", "ours", "flickr")
        variants = {k: v for k, v in prepare_variants(device).items() if only is None or k in only or k == "today"}
        times = {k: [] for k in variants}
        results = {k: [] for k in variants}
        warm = imgs[0]
        for name, (threads, fn, is_low) in variants.items():  # warm-up, excluded
            m = low if is_low else model
            x = preprocess(warm, 224, device, m.visual.conv1.weight.dtype)
            fn(m.visual, x, _slic(warm, segs[:1], threads), upsample)
        peak, extra = {}, {}
        for im in imgs:
            for name, (threads, fn, is_low) in variants.items():
                m = low if is_low else model
                if str(device).startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                _sync(device)
                t = time.perf_counter()
                regions = _slic(im, segs, threads)
                emb = fn(m.visual, preprocess(im, 224, device, m.visual.conv1.weight.dtype), regions, upsample)
                _sync(device)
                times[name].append(time.perf_counter() - t)
                if str(device).startswith("cuda"):
                    peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated() / 2 ** 20)
                results[name].append((regions, emb))
        if str(device).startswith("cuda"):  # several images' region tokens in one forward
            times["1+2 batched"] = []
            torch.cuda.reset_peak_memory_stats()
            _sync(device)
            t = time.perf_counter()
            regs = [_slic(im, segs, True) for im in imgs]
            xs = [preprocess(im, 224, device, model.visual.conv1.weight.dtype) for im in imgs]
            embs = ours_vit.vit_region_embeddings_batch(model.visual, xs, regs, upsample=upsample)
            _sync(device)
            times["1+2 batched"] = [(time.perf_counter() - t) / len(imgs)] * len(imgs)
            peak["1+2 batched"] = torch.cuda.max_memory_allocated() / 2 ** 20
            results["1+2 batched"] = list(zip(regs, embs))
        ref = [maps_and_boxes(model, r, e, params, phrases, device) for r, e in results["today"]]
        n_regions = np.mean([r.n_regions for r, _ in results["today"]])
        grid = _grid(model.visual, upsample)
        n_distinct = np.mean([len(ours_vit.distinct_memberships(ours_vit.patch_membership(r, grid, "cpu").numpy())[0])
                              for r, _ in results["today"]])
        base = float(np.sum(times["today"]))
        for name in times:
            if not probes:
                mem = peak.get(name, float("nan"))
            elif name in peak:
                mem = peak[name]
            else:
                mem, before = _probe(arch, name, upsample, segs, device)
                extra[name] = mem - before
            txt = low if variants.get(name, (0, 0, False))[2] else model
            got = [maps_and_boxes(txt, r, e, params, phrases, device) for r, e in results[name]]
            dmap = max(float(np.abs(a[0] - b[0]).max()) for ga, gb in zip(ref, got) for a, b in zip(ga, gb))
            same = sum(a[1] == b[1] for ga, gb in zip(ref, got) for a, b in zip(ga, gb))
            ious = [float(box_iou(np.add(a[1], [0, 0, 1, 1]), np.add(b[1], [0, 0, 1, 1])))  # inclusive cells
                    for ga, gb in zip(ref, got) for a, b in zip(ga, gb)]
            rows.append({"model": arch, "variant": name, "s/image": float(np.mean(times[name])),
                         "speed-up vs today": base / float(np.sum(times[name])),
                         "peak MiB": mem, "peak − RSS before MiB": extra.get(name, float("nan")), "max |Δmap|": dmap,
                         "boxes = today": f"{same}/{len(ious)}", "min IoU": min(ious)})
        agree.append(f"{arch}: {n_regions:.0f} regions/image, {n_distinct:.0f} distinct patch memberships")
        del model, low
    return pd.DataFrame(rows), agree


def _grid(visual, upsample):
    stride, pad = ours_vit.stem_geometry(visual, upsample)
    return (224 + 2 * pad - visual.conv1.kernel_size[0]) // stride + 1


def _probe(arch, variant, upsample, segs, device):
    cmd = [sys.executable, __file__, "--memprobe", arch, variant, str(upsample), ",".join(map(str, segs)),
           "--device", str(device)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("MEMPROBE")]
    if r.returncode or not line:
        print(r.stderr[-2000:], file=sys.stderr)
        return float("nan"), float("nan")
    return float(line[0].split()[1]), float(line[0].split()[2])


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
    ap.add_argument("--prep-images", type=int, default=3, help="images of the prepare table (real-size models)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only-prepare", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--archs", default="ViT-B/32,ViT-B/16", help="real-size random-weight models, comma-separated")
    ap.add_argument("--variants", help="prepare variants to run besides today, comma-separated (default: all)")
    ap.add_argument("--no-probes", action="store_true", help="skip the fresh-process peak-memory probes")
    ap.add_argument("--memprobe", nargs=4, metavar=("ARCH", "VARIANT", "UPSAMPLE", "SEGMENTS"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "pipeline.md"))
    a = ap.parse_args()
    if a.memprobe:
        arch, variant, up, segs = a.memprobe
        memory_probe(arch, variant, int(up), [int(x) for x in segs.split(",")], a.device)
        return
    note = ""
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        note = "no GPU on this machine (torch.cuda.is_available() is False): measured on cpu instead.\n\n"
        print(note)
        a.device = "cpu"
    dev = (torch.cuda.get_device_name(0) if a.device.startswith("cuda")
           else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    upsample = 2
    if a.quick:
        archs, segs, n_prep, phrases = ["tiny"], [100, 200], 1, PHRASES[:1]
    else:
        archs, segs, n_prep, phrases = a.archs.split(","), list(range(100, 601, 50)), a.prep_images, PHRASES[:3]
    only = a.variants.split(",") if a.variants else None
    prep, notes = prepare_table(archs, n_prep, segs, upsample, a.device, phrases,
                                probes=not (a.quick or a.no_probes), only=only)
    mem_how = "not measured (--quick or --no-probes)"
    if a.device.startswith("cuda"):
        mem_how = "torch.cuda.max_memory_allocated"
    elif not (a.quick or a.no_probes):
        mem_how = "peak RSS (VmHWM) of the prepare step in a fresh process, model included"
    text = (note + f"Prepare (SLIC + region tokens) on {dev}, torch {torch.__version__}: {len(segs)} SLIC scales "
            f"({segs[0]}..{segs[-1]}), upsample {upsample}, {n_prep} image(s), {len(phrases)} phrases each; "
            f"variants interleaved per image; peak memory: {mem_how}. {'; '.join(notes)}.\n\n"
            + prep.round(4).to_markdown(index=False) + "\n\n")
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    prep.to_csv(out.with_name(out.stem + "_prepare.csv"), index=False)
    if a.only_prepare:
        out.write_text(text)
        return
    n_images = 1 if a.quick else a.images
    n_phrases = 2 if a.quick else a.phrases
    overrides = dict(n_segments=[100, 200]) if a.quick else {}
    models = {"tiny ViT-B/32 (random)": tiny_clip("vit", patch_size=32, seed=0)}
    if not a.quick:
        models["ViT-B/16 size (random)"] = random_clip("ViT-B/16")
    imgs, rows = workload(n_images, n_phrases)
    results = []
    tmp = Path(tempfile.mkdtemp())
    paths = []
    for i, im in enumerate(imgs):
        p = tmp / f"img{i}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    alphas, temps = ([0.6, 0.9], [0.01]) if a.quick else ([0.6, 0.7, 0.75, 0.8, 0.9], [0.005, 0.01, 0.02, 0.03, 0.05])
    for name, model in models.items():
        bb = Backbone(name=name, model=model.to(a.device), device=torch.device(a.device), dtype=torch.float32)
        loc = Localizer(bb, "ours", device=a.device, family="flickr", box_search="hierarchical", **overrides)
        loc(imgs[0], rows[0][1])  # warm-up, excluded
        t_re = run_recompute(loc, imgs, rows)
        t_ru = run_reuse(loc, imgs, rows)
        cached = Localizer(bb, "ours", device=a.device, family="flickr", box_search="hierarchical",
                           cache=FeatureCache(tmp / f"cache_{len(results)}"), **overrides)
        one, sweep = run_sweep(cached, paths, rows, alphas, temps)
        results.append({"model": name, "images": n_images, "rows": len(rows),
                        "recompute rows/s": len(rows) / t_re, "reuse rows/s": len(rows) / t_ru,
                        "reuse speed-up": t_re / t_ru, "one eval s": one,
                        f"{len(alphas)}x{len(temps)} sweep s": sweep, "sweep / one eval": sweep / one})
    df = pd.DataFrame(results).round(3)
    text += (f"Feature reuse and sweep on {dev}; {n_phrases} phrases per image.\n\n"
             + df.to_markdown(index=False) + "\n")
    print(text)
    out.write_text(text)
    df.to_csv(out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
