"""Run CLIP Surgery's own code (xmed-lab/CLIP_Surgery) on the zoo's tiny CLIPs and store golden tokens/maps/boxes.

The authors' repository is NOT part of this one. Get a checkout and pass its folder:

    python scripts/zoo_parity/clip_surgery.py --repo-dir /path/to/CLIP_Surgery

Their ``clip`` package (same name as OpenAI's, which ``grounding`` imports) is loaded from the checkout
under the alias ``cs_clip``; nothing in it is patched. Their ``build_model("CS-ViT-B/…", state_dict)``
builds their ``CLIPSurgery`` model from the tiny random state dicts (their ``convert_weights`` is
commented out, so everything stays fp32), and their ``encode_image`` (the architecture surgery on the
last 6 blocks, dual path), ``tokenize``/``encode_text`` and ``clip_feature_surgery(image, text,
redundant_feats=empty)`` give the tokens and the cosine grid. The score map of the zoo contract
(bilinear upsampling → exp(cos/σ) → min–max) and the boxes are computed here, from that grid.
Writes ``tests/golden/zoo_clip_surgery.npz`` and ``.json``; ``tests/test_zoo_clip_surgery.py`` checks them.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from grounding.data.images import preprocess, resize_square, to_pil_rgb  # noqa: E402
from grounding.models.backbones import state_dict_digest  # noqa: E402
from grounding.models.random import tiny_clip  # noqa: E402
from grounding.stages.box_search import search_box  # noqa: E402

NAME = "clip_surgery"
MODELS = {"b32": dict(patch_size=32, seed=101), "b16": dict(patch_size=16, seed=102)}
THEIR_NAME = {"b32": "CS-ViT-B/32", "b16": "CS-ViT-B/16"}
IMAGES = ("astronaut", "camera")
PHRASES = ("a woman in a space suit", "the sky")
SIGMA, ALPHA, SIZE = 0.01, 0.8, 224


def tiny(model_key: str):
    return tiny_clip("vit", vision_layers=8, vision_width=128, embed_dim=64, **MODELS[model_key])


def case_input(image: str) -> torch.Tensor:
    import skimage.data

    return preprocess(resize_square(to_pil_rgb(getattr(skimage.data, image)()), SIZE), SIZE, "cpu")


def contract_map(cos_grid: np.ndarray) -> np.ndarray:
    """g×g cosines → bilinear 224×224 (align_corners=False) → exp(cos/σ) → min–max (zoo contract)."""
    t = torch.as_tensor(cos_grid, dtype=torch.float32)[None, None]
    up = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0].double()
    phi = torch.exp(up / SIGMA)
    return ((phi - phi.min()) / (phi.max() - phi.min() + 1e-8)).float().numpy()


def load_their_package(repo: Path):
    """Their ``clip/`` folder imported as the package ``cs_clip`` (relative imports resolve inside it)."""
    init = repo / "clip" / "__init__.py"
    spec = importlib.util.spec_from_file_location("cs_clip", init, submodule_search_locations=[str(init.parent)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["cs_clip"] = pkg
    spec.loader.exec_module(pkg)
    return pkg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True, help="checkout of xmed-lab/CLIP_Surgery")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    ap.add_argument("--commit", help="commit of the checkout, when --repo-dir is an export without .git")
    args = ap.parse_args()
    repo = Path(args.repo_dir).resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cs = load_their_package(repo)
    from cs_clip.build_model import build_model

    sha = args.commit
    if not sha:
        try:
            sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            sha = "unknown (not a git checkout; pass --commit)"

    arrays, cases, digests = {}, [], {}
    torch.set_grad_enabled(False)
    for mk in MODELS:
        ours = tiny(mk)
        sd = ours.state_dict()
        digests[mk] = state_dict_digest(sd)
        theirs = build_model(THEIR_NAME[mk], {k: v.clone() for k, v in sd.items()}).float().eval()
        empty = theirs.encode_text(cs.tokenize([""]))
        empty = empty / empty.norm(dim=-1, keepdim=True)
        for image in IMAGES:
            x = case_input(image)
            feats = theirs.encode_image(x)  # (1, 1 + g², E): their class token, then the new-path patches
            feats = feats / feats.norm(dim=-1, keepdim=True)
            patches = feats[:, 1:]
            g = int(round(patches.shape[1] ** 0.5))
            for phrase in PHRASES:
                text = theirs.encode_text(cs.tokenize([phrase]))
                text = text / text.norm(dim=-1, keepdim=True)
                sim = cs.clip_feature_surgery(patches, text, empty)  # patch · (text − empty)
                cos = sim[0, :, 0].reshape(g, g).numpy()
                m = contract_map(cos)
                i = len(cases)
                boxes = {meth: [int(v) for v in search_box(m, ALPHA, method=meth)]
                         for meth in ("hierarchical", "exact")}
                arrays[f"tokens_{i}"] = patches[0].numpy().astype(np.float32)
                arrays[f"map_{i}"] = m
                constant = bool(np.ptp(cos) == 0)
                cases.append(dict(model=mk, image=image, phrase=phrase, grid=g, box_hierarchical=boxes["hierarchical"],
                                  box_exact=boxes["exact"], constant_map=constant))
                print(f"case {i}: {mk} {image} {phrase!r} -> {boxes}", flush=True)
    meta = dict(method=NAME, repo="xmed-lab/CLIP_Surgery", commit=sha,
                their_entry="clip.build_model('CS-ViT-B/..') → CLIPSurgery.encode_image; clip.clip_feature_surgery",
                models={mk: dict(tiny_clip=dict(kind="vit", vision_layers=8, vision_width=128, embed_dim=64, **spec),
                                 digest=digests[mk]) for mk, spec in MODELS.items()},
                sigma=SIGMA, alpha=ALPHA, text_mode="minus_empty", cases=cases,
                command=f"python scripts/zoo_parity/{NAME}.py --repo-dir <checkout of xmed-lab/CLIP_Surgery>")
    np.savez_compressed(out / f"zoo_{NAME}.npz", **arrays)
    (out / f"zoo_{NAME}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
