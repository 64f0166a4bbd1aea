"""Golden score maps and boxes for method=naclip, produced by the AUTHORS' code (sinahmr/NACLIP).

The authors' repository is NOT part of this one. Get a checkout (``git clone https://github.com/sinahmr/NACLIP``)
and pass its folder:

    python scripts/zoo_parity/naclip.py --repo-dir /path/to/NACLIP [--commit SHA] [--out tests/golden]

It loads the repository's own ``clip/model.py`` by file path (as module ``naclip_clip_model``, so it does not
shadow OpenAI's ``clip`` package, which builds the tiny models), builds its ``CLIP`` with ``build_model`` from the
tiny random CLIPs' state dicts, and does what the ``NACLIP`` segmentor (``naclip.py``) does with its defaults:
``net.visual.set_params('reduced', 'naclip', 5.0)`` then ``net.encode_image(img, return_all=True)[:, 1:]``
(``forward_feature``), in fp32. The only patch: the module's ``convert_weights`` (fp16 cast) is made a no-op so
the tiny fp32 weights are kept. mmseg / mmengine / PAMR are not needed because the segmentor class (which only
wraps sliding windows, PAMR and the class softmax) is not used.

The score map follows the zoo contract (written here, independent of ``grounding``): L2-normalised patch tokens ·
L2-normalised ``encode_text(clip.tokenize(phrase))`` (OpenAI ``clip`` on the same tiny model, no template) on the
g×g grid → bilinear upsample to 224×224 (align_corners=False) → φ = exp(cos/σ) (shifted by its max when cos/σ > 80,
which min–max leaves unchanged) → (φ − min)/(max − min + 1e-8). Boxes: ``grounding.stages.box_search.search_box``
(hierarchical and exact) with α.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import clip  # noqa: E402  (OpenAI's package, for tokenize / the tiny models' text tower)
from grounding.data.images import preprocess, resize_square, to_pil_rgb  # noqa: E402
from grounding.models.backbones import state_dict_digest  # noqa: E402
from grounding.models.random import tiny_clip  # noqa: E402
from grounding.stages.box_search import search_box  # noqa: E402

NAME = "naclip"
MODELS = {
    "b32": dict(patch_size=32, seed=101, vision_layers=8, vision_width=128, embed_dim=64),
    "b16": dict(patch_size=16, seed=102, vision_layers=8, vision_width=128, embed_dim=64),
}
IMAGES = ("astronaut", "camera")
PHRASES = ("a woman in a space suit", "the sky")
SIGMA = 0.01
ALPHA = 0.8


def case_tensor(image: str) -> torch.Tensor:
    import skimage.data

    pil = to_pil_rgb(getattr(skimage.data, image)())
    return preprocess(resize_square(pil, 224), 224, "cpu")


def text_embedding(model, phrase: str) -> torch.Tensor:
    with torch.no_grad():
        t = model.encode_text(clip.tokenize([phrase])).float()[0]
    return t / t.norm()


def contract_map(tokens: torch.Tensor, text: torch.Tensor):
    """tokens (g², E) L2-normalised, text (E,) → (224×224 float32 map, constant?)."""
    g = int(round(tokens.shape[0] ** 0.5))
    cos = (tokens.double() @ text.double()).float().reshape(1, 1, g, g)
    up = F.interpolate(cos, size=(224, 224), mode="bilinear", align_corners=False)[0, 0].numpy()
    z = up.astype(np.float32) / np.float32(SIGMA)
    if float(z.max()) > 80.0:
        z = z - z.max()
    phi = np.exp(z).astype(np.float32)
    lo, hi = phi.min(), phi.max()
    return ((phi - lo) / (hi - lo + np.float32(1e-8))).astype(np.float32), bool(hi - lo < 1e-6 * max(hi, 1e-30))


GAUSSIAN_STD = 5.0  # NACLIP segmentor default


def load_authors(repo: Path):
    import importlib.util

    path = repo / "clip" / "model.py"
    spec = importlib.util.spec_from_file_location("naclip_clip_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.convert_weights = lambda model: None  # keep fp32 (the only patch)
    return mod


def repo_commit(repo: Path, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown (pass --commit)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True, help="checkout of sinahmr/NACLIP")
    ap.add_argument("--commit", default=None, help="commit sha of the checkout (read with git when omitted)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    args = ap.parse_args()
    repo = Path(args.repo_dir).resolve()
    nac = load_authors(repo)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    arrays, cases, digests = {}, [], {}
    for mname, spec in MODELS.items():
        ours = tiny_clip("vit", **spec)
        digests[mname] = state_dict_digest(ours)
        ref = nac.build_model({k: v.clone() for k, v in ours.state_dict().items()}).float().eval()
        ref.visual.set_params("reduced", "naclip", GAUSSIAN_STD)  # as NACLIP.__init__ with its defaults
        texts = {p: text_embedding(ours, p) for p in PHRASES}
        for image in IMAGES:
            x = case_tensor(image)
            with torch.no_grad():
                feats = ref.encode_image(x, return_all=True)[:, 1:]  # as NACLIP.forward_feature
            tok = (feats / feats.norm(dim=-1, keepdim=True))[0].float()
            arrays[f"tokens_{mname}_{image}"] = tok.numpy().astype(np.float32)
            for pi, phrase in enumerate(PHRASES):
                key = f"{mname}_{image}_{pi}"
                m, constant = contract_map(tok, texts[phrase])
                arrays[f"map_{key}"] = m
                arrays[f"box_hier_{key}"] = np.asarray(search_box(m, ALPHA, method="hierarchical"), dtype=np.int64)
                arrays[f"box_exact_{key}"] = np.asarray(search_box(m, ALPHA, method="exact"), dtype=np.int64)
                cases.append(dict(key=key, model=mname, image=image, phrase=phrase, constant_map=constant,
                                  box_hierarchical=arrays[f"box_hier_{key}"].tolist(),
                                  box_exact=arrays[f"box_exact_{key}"].tolist()))
                print(f"{key}: {phrase!r} hier={cases[-1]['box_hierarchical']} exact={cases[-1]['box_exact']}"
                      + (" (constant map)" if constant else ""), flush=True)
    np.savez_compressed(out / f"zoo_{NAME}.npz", **arrays)
    meta = dict(method=NAME, repo="sinahmr/NACLIP", commit=repo_commit(repo, args.commit),
                authors_call="clip/model.py: visual.set_params('reduced', 'naclip', 5.0); "
                             "CLIP.encode_image(x, return_all=True)[:, 1:], fp32",
                gaussian_std=GAUSSIAN_STD,
                models={k: dict(spec, digest=digests[k]) for k, spec in MODELS.items()},
                images=list(IMAGES), phrases=list(PHRASES), sigma=SIGMA, alpha=ALPHA, cases=cases,
                command=f"python scripts/zoo_parity/{NAME}.py --repo-dir <NACLIP checkout> --commit <sha>")
    (out / f"zoo_{NAME}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
