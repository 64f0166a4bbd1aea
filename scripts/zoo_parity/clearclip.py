"""Golden score maps and boxes for method=clearclip, produced by the AUTHORS' code (mc-lan/ClearCLIP).

The authors' repository is NOT part of this one. Get a checkout (``git clone https://github.com/mc-lan/ClearCLIP``)
and pass its folder:

    python scripts/zoo_parity/clearclip.py --repo-dir /path/to/ClearCLIP [--commit SHA] [--out tests/golden]

It imports the repository's own vendored ``open_clip`` package (``open_clip/model.py``, ``open_clip/transformer.py``)
and runs ``CLIP.encode_image(img, model_type='ClearCLIP', ignore_residual=True)`` — exactly the call of
``clearclip_segmentor.py`` (``forward_feature``) with the demo's settings — on the tiny random CLIPs' weights, in fp32.
The only patch: ``open_clip.model.convert_weights_to_fp16`` is made a no-op so that
``build_model_from_openai_state_dict(sd, cast_dtype=None)`` keeps the fp32 weights (the segmentor would run fp16;
the contract is fp32). Nothing else of the repository is touched; mmseg / mmengine are not needed because the
segmentor class (which only wraps sliding windows and class softmax) is not used.

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

NAME = "clearclip"
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


def load_authors(repo: Path):
    sys.path.insert(0, str(repo))
    import open_clip
    import open_clip.model as oc_model

    if not Path(open_clip.__file__).resolve().is_relative_to(repo):
        raise SystemExit(f"imported {open_clip.__file__}, not the checkout's vendored open_clip; "
                         f"run without the pip open_clip imported first")
    oc_model.convert_weights_to_fp16 = lambda model: None  # keep fp32 (the only patch)
    return oc_model


def repo_commit(repo: Path, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown (pass --commit)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True, help="checkout of mc-lan/ClearCLIP")
    ap.add_argument("--commit", default=None, help="commit sha of the checkout (read with git when omitted)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    args = ap.parse_args()
    repo = Path(args.repo_dir).resolve()
    oc_model = load_authors(repo)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    arrays, cases, digests = {}, [], {}
    for mname, spec in MODELS.items():
        ours = tiny_clip("vit", **spec)
        digests[mname] = state_dict_digest(ours)
        ref = oc_model.build_model_from_openai_state_dict(
            {k: v.clone() for k, v in ours.state_dict().items()}, quick_gelu=True, cast_dtype=None).float().eval()
        texts = {p: text_embedding(ours, p) for p in PHRASES}
        for image in IMAGES:
            x = case_tensor(image)
            with torch.no_grad():
                feats = ref.encode_image(x, "ClearCLIP", True)  # as clearclip_segmentor.forward_feature
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
    meta = dict(method=NAME, repo="mc-lan/ClearCLIP", commit=repo_commit(repo, args.commit),
                authors_call="open_clip CLIP.encode_image(x, 'ClearCLIP', ignore_residual=True), fp32",
                models={k: dict(spec, digest=digests[k]) for k, spec in MODELS.items()},
                images=list(IMAGES), phrases=list(PHRASES), sigma=SIGMA, alpha=ALPHA, cases=cases,
                command=f"python scripts/zoo_parity/{NAME}.py --repo-dir <ClearCLIP checkout> --commit <sha>")
    (out / f"zoo_{NAME}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
