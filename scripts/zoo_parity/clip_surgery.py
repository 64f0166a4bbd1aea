"""Run CLIP Surgery's own code (xmed-lab/CLIP_Surgery) on the zoo's tiny CLIPs and store golden tokens/maps/boxes.

The authors' repository is NOT part of this one. Get a checkout and pass its folder:

    python scripts/zoo_parity/clip_surgery.py --repo-dir /path/to/CLIP_Surgery

Their ``clip`` package (same name as OpenAI's, which ``grounding`` imports) is loaded from the checkout
under the alias ``cs_clip``; nothing in it is patched. Their ``build_model("CS-ViT-B/…", state_dict)``
builds their ``CLIPSurgery`` model from the tiny random state dicts (their ``convert_weights`` is
commented out, so everything stays fp32), and their ``encode_image`` (the architecture surgery on the
last 6 blocks, dual path), ``tokenize``/``encode_text`` and ``clip_feature_surgery(image, text,
redundant_feats=empty)`` give the tokens and the cosine grid. The score map of the zoo contract
(bilinear upsampling → exp(cos/σ) → min–max) and the boxes are computed from that grid (``common.py``).
Writes ``tests/golden/zoo_clip_surgery.npz`` and ``.json``; ``tests/test_zoo_tokens.py`` and
``tests/test_zoo_parity.py`` check them.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

import common
from common import ALPHA, IMAGES, MODELS, PHRASES, SIGMA

NAME = "clip_surgery"
THEIR_NAME = {"b32": "CS-ViT-B/32", "b16": "CS-ViT-B/16"}


def load_their_package(repo: Path):
    """Their ``clip/`` folder imported as the package ``cs_clip`` (relative imports resolve inside it)."""
    init = repo / "clip" / "__init__.py"
    spec = importlib.util.spec_from_file_location("cs_clip", init, submodule_search_locations=[str(init.parent)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["cs_clip"] = pkg
    spec.loader.exec_module(pkg)
    return pkg


def main():
    args = common.parser(__doc__, "checkout of xmed-lab/CLIP_Surgery").parse_args()
    repo = Path(args.repo_dir).resolve()
    out = common.out_dir(args)
    cs = load_their_package(repo)
    from cs_clip.build_model import build_model

    sha = common.repo_commit(repo, args.commit, unknown="unknown (not a git checkout; pass --commit)")
    arrays, cases, digests = {}, [], {}
    torch.set_grad_enabled(False)
    for mk in MODELS:
        ours = common.tiny(mk)
        sd = ours.state_dict()
        digests[mk] = common.state_dict_digest(sd)
        theirs = build_model(THEIR_NAME[mk], {k: v.clone() for k, v in sd.items()}).float().eval()
        empty = theirs.encode_text(cs.tokenize([""]))
        empty = empty / empty.norm(dim=-1, keepdim=True)
        for image in IMAGES:
            x = common.case_tensor(image)
            feats = theirs.encode_image(x)  # (1, 1 + g², E): their class token, then the new-path patches
            feats = feats / feats.norm(dim=-1, keepdim=True)
            patches = feats[:, 1:]
            g = int(round(patches.shape[1] ** 0.5))
            for phrase in PHRASES:
                text = theirs.encode_text(cs.tokenize([phrase]))
                text = text / text.norm(dim=-1, keepdim=True)
                sim = cs.clip_feature_surgery(patches, text, empty)  # patch · (text − empty)
                cos = sim[0, :, 0].reshape(g, g).numpy()
                common.add_indexed_case(arrays, cases, mk, image, phrase, patches[0].numpy(), cos)
    meta = dict(method=NAME, repo="xmed-lab/CLIP_Surgery", commit=sha,
                their_entry="clip.build_model('CS-ViT-B/..') → CLIPSurgery.encode_image; clip.clip_feature_surgery",
                models=common.models_meta(digests, nested=True),
                sigma=SIGMA, alpha=ALPHA, text_mode="minus_empty", cases=cases,
                command=f"python scripts/zoo_parity/{NAME}.py --repo-dir <checkout of xmed-lab/CLIP_Surgery>")
    common.write_golden(out, NAME, arrays, meta)


if __name__ == "__main__":
    main()
