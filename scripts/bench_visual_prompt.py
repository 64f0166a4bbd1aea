"""Per-expression time of the visual-prompt rankers against the authors' executors (run by hand, CPU).

    python scripts/bench_visual_prompt.py --reclip /path/to/reclip --fgvp /path/to/FGVP \
        --sam /path/to/segment-anything [--boxes 10 --expressions 7 --repeats 2 --width full|tiny --out FILE.md]

One RefCOCO-like image (skimage ``coffee``, 600×400), ``--boxes`` proposals and ``--expressions``
expressions: the authors' executor (ReCLIP's for ``reclip``, FGVP's for ``red_circle`` / ``fgvp_box``) is
called once per expression, as their ``main.py`` does without ``--cache_path``; ours computes the image side
once and ranks every expression against it. Per-expression time = total / expressions (our image side
included, amortised). A random CLIP of ViT-B/32's real size (``--width full``) or the tiny one, fp32.
Writes a markdown table (stdout and ``--out``); ratios are measured in one run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts" / "proposal_parity"))

from bench_common import device_label  # noqa: E402
from make_goldens import import_from, patch_clip_load  # noqa: E402
from parity_cases import case_image  # noqa: E402

PHRASES = ["the cup on the left", "a white saucer", "spoon", "coffee in a cup", "the table", "a cup",
           "the brown liquid", "the plate at the back", "a mug"]
METHODS = {"reclip": ("reclip", ["crop", "blur"]), "red_circle": ("fgvp", ["crop", "circle"]),
           "fgvp_box": ("fgvp", ["crop", "blur_box_mask"])}


def checkpoint(width: str, folder: Path) -> Path:
    from clip.model import CLIP

    from grounding.models.random import randomise, tiny_clip

    model = (randomise(CLIP(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12), seed=7) if width == "full"
             else tiny_clip("vit", patch_size=32, seed=1))
    path = folder / f"vit_b32_{width}.pt"
    torch.save(model.state_dict(), path)
    return path


def random_boxes(n: int, w: int, h: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x1, y1 = rng.uniform(0, w * 0.7, n), rng.uniform(0, h * 0.7, n)
    bw, bh = rng.uniform(20, w * 0.3, n), rng.uniform(20, h * 0.3, n)
    return [[float(a), float(b), float(min(a + c, w)), float(min(b + d, h))] for a, b, c, d in zip(x1, y1, bw, bh)]


def time_authors(mods, source, reps, ckpt, image, boxes, phrases) -> float:
    from make_goldens import build_executor

    interp = mods[source][1]
    case = dict(models="bench", representations=reps, aggregator="sum", subtract=False)
    executor = build_executor(source, mods, case, {"bench": ckpt})
    env = interp.Environment(image, [interp.Box(x=b[0], y=b[1], w=b[2] - b[0], h=b[3] - b[1]) for b in boxes],
                             executor)
    t = time.perf_counter()
    for p in phrases:
        env.filter(p.lower(), area_threshold=0.0, softmax=True)
    return time.perf_counter() - t


def time_ours(backbone, reps, image, boxes, phrases):
    """(total seconds, seconds of the expression side alone)."""
    from grounding.methods.visual_prompt import VisualPromptRanker

    ranker = VisualPromptRanker(backbone, representations=reps)
    t = time.perf_counter()
    side = ranker.image_side(np.asarray(image), boxes)
    t_side = time.perf_counter()
    for p in phrases:
        ranker.rank(side, p)
    end = time.perf_counter()
    return end - t, end - t_side


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("reclip", "fgvp", "sam"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--boxes", type=int, default=10)
    ap.add_argument("--expressions", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=2, help="alternated runs of each side; the best is kept")
    ap.add_argument("--width", choices=("full", "tiny"), default="full")
    ap.add_argument("--out", default="bench_visual_prompt.md")
    args = ap.parse_args(argv)
    from PIL import Image

    from grounding.models.backbones import load_backbone

    sys.path.insert(0, str(Path(args.sam).resolve()))
    patch_clip_load()
    import make_goldens

    make_goldens.MODEL_SETS["bench"] = ["bench"]
    mods = {"reclip": import_from(Path(args.reclip).resolve()),
            "fgvp": import_from(Path(args.fgvp).resolve() / "fgvp-reclip")}
    ckpt = checkpoint(args.width, Path(tempfile.mkdtemp()))
    backbone = load_backbone(ckpt, precision="fp32")
    image = Image.fromarray(case_image("coffee")).convert("RGB")
    boxes, phrases = random_boxes(args.boxes, *image.size), PHRASES[:args.expressions]
    rows = ["| method | representations | authors' executor (s / expression) | ours (s / expression) | speed-up "
            "| ours, expression side only (ms / expression) |", "|---|---|---|---|---|---|"]
    for name, (source, reps) in METHODS.items():
        # alternated, best of --repeats: a shared machine's load hits both sides alike
        theirs, ours, text_only = float("inf"), float("inf"), float("inf")
        for _ in range(args.repeats):
            theirs = min(theirs, time_authors(mods, source, reps, ckpt, image, boxes, phrases) / len(phrases))
            total, ranks = time_ours(backbone, reps, image, boxes, phrases)
            ours, text_only = min(ours, total / len(phrases)), min(text_only, ranks / len(phrases))
        rows.append(f"| {name} | {','.join(reps)} | {theirs:.3f} | {ours:.3f} | {theirs / ours:.1f}× | "
                    f"{1000 * text_only:.1f} |")
        print(rows[-1], flush=True)
    head = (f"{device_label('cpu')}, random ViT-B/32 ({args.width} size, fp32), 600×400 image, {args.boxes} "
            f"proposals, {len(phrases)} expressions, best of {args.repeats} alternated runs; ours includes the image side "
            f"once per image.\n\n")
    Path(args.out).write_text(head + "\n".join(rows) + "\n")
    print(head + "\n".join(rows))


if __name__ == "__main__":
    main()
