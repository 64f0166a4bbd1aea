"""Golden score maps and boxes for method=maskclip, produced by the AUTHORS' code (chongzhou96/MaskCLIP).

The authors' repository is NOT part of this one. Get a checkout (``git clone https://github.com/chongzhou96/MaskCLIP``)
and the pure-Python mmcv 1.x it is written for (mmseg there accepts mmcv 1.3.13 … 1.5.0), e.g. in a side folder:

    MMCV_WITH_OPS=0 pip install --no-deps --target /tmp/mmcv1 "mmcv==1.4.8" addict yapf platformdirs
    python scripts/zoo_parity/maskclip.py --repo-dir /path/to/MaskCLIP --site /tmp/mmcv1 --commit SHA \\
        [--out tests/golden]

What runs is the repository's own code, on the tiny random CLIPs' weights, in fp32 on CPU:
  * ``tools/maskclip_utils/convert_clip_weights.py`` (run as a script, with ``clip.load`` returning the tiny model)
    converts the CLIP weights to its mmseg layout (``<model>_clip_weights.pth``: backbone state dict + ``proj``);
  * the backbone ``mmseg.models.backbones.vit.VisionTransformer`` is built from the repository's
    ``configs/_base_/models/maskclip_vit16.py`` (``return_qkv=True``: its last layer's value path) with the tiny
    model's sizes, and loads the converted weights strictly;
  * the head ``mmseg.models.decode_heads.maskclip_head.MaskClipHead`` (``vit=True``) loads ``proj`` and the phrases'
    text embeddings from files, and its forward gives the g×g cosine grid (``cls_seg``); the L2-normalised patch
    tokens are read at its ``proj`` output.
Patches, none touching the math: (1) ``mmcv.ops`` (compiled ops, absent from the pure-Python build; imported at
module level by unrelated mmseg losses/heads) is a stub; (2) ``torch.load`` maps to CPU (the head loads with
``map_location='cuda'``); (3) the config is set to CLIP's own activation and LayerNorm — CLIP's ``QuickGELU``
registered as an mmcv activation, LayerNorm eps 1e-5 — as the issue defines method=maskclip (the released config
uses mmcv's GELU and eps 1e-6; see ``grounding/methods/maskclip.py``).

The score map follows the zoo contract (written here, independent of ``grounding``): L2-normalised patch tokens ·
L2-normalised ``encode_text(clip.tokenize(phrase))`` (OpenAI ``clip`` on the same tiny model, no template) on the
g×g grid → bilinear upsample to 224×224 (align_corners=False) → φ = exp(cos/σ) (shifted by its max when
cos/σ > 80, which min–max leaves unchanged) → (φ − min)/(max − min + 1e-8). Boxes:
``grounding.stages.box_search.search_box`` (hierarchical and exact) with α.
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
import types
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

NAME = "maskclip"
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
    return contract_map_from_cos(cos)


def contract_map_from_cos(cos: torch.Tensor):
    """cos (1, 1, g, g) → (224×224 float32 map, constant?)."""
    up = F.interpolate(cos.float(), size=(224, 224), mode="bilinear", align_corners=False)[0, 0].numpy()
    z = up.astype(np.float32) / np.float32(SIGMA)
    if float(z.max()) > 80.0:
        z = z - z.max()
    phi = np.exp(z).astype(np.float32)
    lo, hi = phi.min(), phi.max()
    return ((phi - lo) / (hi - lo + np.float32(1e-8))).astype(np.float32), bool(hi - lo < 1e-6 * max(hi, 1e-30))


def patch_environment(repo: Path, site):
    """Import-time / device patches only (see the module docstring)."""
    if site:
        sys.path.insert(0, str(Path(site).resolve()))
    sys.path.insert(0, str(repo))
    ops = types.ModuleType("mmcv.ops")
    ops.__file__ = "<stub: mmcv.ops (compiled ops) is not used by MaskCLIP's ViT path>"

    def _missing(name):
        if name.startswith("__"):
            raise AttributeError(name)

        def stub(*a, **k):
            raise RuntimeError(f"mmcv.ops.{name} is a stub in this golden script")
        return stub

    ops.__getattr__ = _missing
    sys.modules["mmcv.ops"] = ops
    real_load = torch.load

    def cpu_load(f, *a, map_location=None, **k):
        k.setdefault("weights_only", False)
        return real_load(f, *a, map_location="cpu", **k)

    torch.load = cpu_load
    import mmseg  # noqa: F401
    from mmcv.cnn.bricks.registry import ACTIVATION_LAYERS
    from clip.model import QuickGELU

    if "QuickGELU" not in ACTIVATION_LAYERS.module_dict:
        ACTIVATION_LAYERS.register_module(name="QuickGELU", module=QuickGELU)
    import mmseg.models
    if not Path(mmseg.__file__).resolve().is_relative_to(repo):
        raise SystemExit(f"imported {mmseg.__file__}, not the checkout's mmseg")


def convert_weights(repo: Path, model, tag: str, workdir: Path) -> Path:
    """Run the authors' convert_clip_weights.py on ``model`` (via a patched ``clip.load``)."""
    (workdir / "pretrain").mkdir(parents=True, exist_ok=True)
    real_load, argv, cwd = clip.load, sys.argv, os.getcwd()
    clip.load = lambda name, device="cpu", **k: (model, None)
    try:
        os.chdir(workdir)
        sys.argv = ["convert_clip_weights.py", "--model", tag]
        runpy.run_path(str(repo / "tools" / "maskclip_utils" / "convert_clip_weights.py"), run_name="__main__")
    finally:
        clip.load, sys.argv = real_load, argv
        os.chdir(cwd)
    return workdir / "pretrain" / f"{tag}_clip_weights.pth"


def build_authors(repo: Path, spec: dict, weights: Path, text_path: Path, n_text: int):
    from mmcv import Config
    from mmseg.models import build_backbone, build_head

    cfg = Config.fromfile(str(repo / "configs" / "_base_" / "models" / "maskclip_vit16.py")).model
    width = spec["vision_width"]
    cfg.backbone.update(patch_size=spec["patch_size"], embed_dims=width, num_layers=spec["vision_layers"],
                        num_heads=width // 64, norm_cfg=dict(type="LN", eps=1e-5), act_cfg=dict(type="QuickGELU"))
    cfg.decode_head.update(in_channels=width, text_channels=spec["embed_dim"], num_classes=n_text,
                           text_categories=n_text, text_embeddings_path=str(text_path),
                           visual_projs_path=str(weights))
    backbone = build_backbone(cfg.backbone)
    backbone.load_state_dict(torch.load(weights)["clip"], strict=True)
    head = build_head(cfg.decode_head)
    for m in (backbone, head):
        m.float()
        m.eval()  # (mmseg's train() overrides return None, so no chaining)
    return backbone, head


def repo_commit(repo: Path, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True).strip()
    except Exception:
        return "unknown (pass --commit)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True, help="checkout of chongzhou96/MaskCLIP")
    ap.add_argument("--site", default=None, help="folder holding mmcv 1.x (pure Python), prepended to sys.path")
    ap.add_argument("--commit", default=None, help="commit sha of the checkout (read with git when omitted)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    args = ap.parse_args()
    repo = Path(args.repo_dir).resolve()
    patch_environment(repo, args.site)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())

    arrays, cases, digests = {}, [], {}
    for mname, spec in MODELS.items():
        ours = tiny_clip("vit", **spec)
        digests[mname] = state_dict_digest(ours)
        texts = torch.stack([text_embedding(ours, p) for p in PHRASES])
        text_path = tmp / f"{mname}_text.pth"
        torch.save(texts, text_path)
        weights = convert_weights(repo, ours, {32: "ViT32", 16: "ViT16"}[spec["patch_size"]], tmp / mname)
        backbone, head = build_authors(repo, spec, weights, text_path, len(PHRASES))
        feats = []
        hook = head.proj.register_forward_hook(lambda mod, inp, o: feats.append(o))
        for image in IMAGES:
            feats.clear()
            with torch.no_grad():
                cos = head(backbone(case_tensor(image)))  # (1, phrases, g, g): cls_seg's cosine grid
            f = feats[0][0]  # (E, g, g) = proj(v)
            tok = (f / f.norm(dim=0, keepdim=True)).flatten(1).t().contiguous()  # (g², E), row-major
            arrays[f"tokens_{mname}_{image}"] = tok.numpy().astype(np.float32)
            for pi, phrase in enumerate(PHRASES):
                key = f"{mname}_{image}_{pi}"
                m, constant = contract_map_from_cos(cos[:, pi:pi + 1])
                m2, _ = contract_map(tok, texts[pi])
                assert np.abs(m - m2).max() < 1e-4, "head cosine and token cosine disagree"
                arrays[f"map_{key}"] = m
                arrays[f"box_hier_{key}"] = np.asarray(search_box(m, ALPHA, method="hierarchical"), dtype=np.int64)
                arrays[f"box_exact_{key}"] = np.asarray(search_box(m, ALPHA, method="exact"), dtype=np.int64)
                cases.append(dict(key=key, model=mname, image=image, phrase=phrase, constant_map=constant,
                                  box_hierarchical=arrays[f"box_hier_{key}"].tolist(),
                                  box_exact=arrays[f"box_exact_{key}"].tolist()))
                print(f"{key}: {phrase!r} hier={cases[-1]['box_hierarchical']} exact={cases[-1]['box_exact']}"
                      + (" (constant map)" if constant else ""), flush=True)
        hook.remove()
    np.savez_compressed(out / f"zoo_{NAME}.npz", **arrays)
    meta = dict(method=NAME, repo="chongzhou96/MaskCLIP", commit=repo_commit(repo, args.commit),
                authors_call=("tools/maskclip_utils/convert_clip_weights.py; mmseg VisionTransformer "
                              "(configs/_base_/models/maskclip_vit16.py, return_qkv=True, QuickGELU, LN eps 1e-5) "
                              "→ MaskClipHead(vit=True).forward (cls_seg cosine grid; tokens = proj(v)), fp32"),
                mmcv="1.4.8 (pure Python, MMCV_WITH_OPS=0; mmcv.ops stubbed)",
                models={k: dict(spec, digest=digests[k]) for k, spec in MODELS.items()},
                images=list(IMAGES), phrases=list(PHRASES), sigma=SIGMA, alpha=ALPHA, cases=cases,
                command=(f"python scripts/zoo_parity/{NAME}.py --repo-dir <MaskCLIP checkout> --site <mmcv 1.x folder> "
                         f"--commit <sha>"))
    (out / f"zoo_{NAME}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
