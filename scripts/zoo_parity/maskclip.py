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

The score map and boxes follow the zoo contract, written once in ``scripts/zoo_parity/common.py`` (independent
of ``grounding``'s pipeline): L2-normalised patch tokens · L2-normalised OpenAI ``clip`` text embedding (no template).
"""
from __future__ import annotations

import os
import runpy
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

import common
from common import IMAGES, MODELS, PHRASES, clip

NAME = "maskclip"


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


def main():
    ap = common.parser(__doc__, "checkout of chongzhou96/MaskCLIP")
    ap.add_argument("--site", default=None, help="folder holding mmcv 1.x (pure Python), prepended to sys.path")
    args = ap.parse_args()
    repo = Path(args.repo_dir).resolve()
    patch_environment(repo, args.site)
    out = common.out_dir(args)
    tmp = Path(tempfile.mkdtemp())

    arrays, cases, digests = {}, [], {}
    for mname, spec in MODELS.items():
        ours = common.tiny(mname)
        digests[mname] = common.state_dict_digest(ours)
        texts = torch.stack([common.text_embedding(ours, p) for p in PHRASES])
        text_path = tmp / f"{mname}_text.pth"
        torch.save(texts, text_path)
        weights = convert_weights(repo, ours, {32: "ViT32", 16: "ViT16"}[spec["patch_size"]], tmp / mname)
        backbone, head = build_authors(repo, spec, weights, text_path, len(PHRASES))
        feats = []
        hook = head.proj.register_forward_hook(lambda mod, inp, o: feats.append(o))
        for image in IMAGES:
            feats.clear()
            with torch.no_grad():
                cos = head(backbone(common.case_tensor(image)))  # (1, phrases, g, g): cls_seg's cosine grid
            f = feats[0][0]  # (E, g, g) = proj(v)
            tok = (f / f.norm(dim=0, keepdim=True)).flatten(1).t().contiguous()  # (g², E), row-major
            arrays[f"tokens_{mname}_{image}"] = tok.numpy().astype(np.float32)
            for pi in range(len(PHRASES)):
                m, constant = common.contract_map_from_cos(cos[:, pi:pi + 1])
                m2, _ = common.contract_map(tok, texts[pi])
                assert np.abs(m - m2).max() < 1e-4, "head cosine and token cosine disagree"
                common.add_keyed_case(arrays, cases, mname, image, pi, m, constant)
        hook.remove()
    meta = common.keyed_meta(
        NAME, "chongzhou96/MaskCLIP", common.repo_commit(repo, args.commit),
        ("tools/maskclip_utils/convert_clip_weights.py; mmseg VisionTransformer "
         "(configs/_base_/models/maskclip_vit16.py, return_qkv=True, QuickGELU, LN eps 1e-5) "
         "→ MaskClipHead(vit=True).forward (cls_seg cosine grid; tokens = proj(v)), fp32"),
        digests, cases,
        f"python scripts/zoo_parity/{NAME}.py --repo-dir <MaskCLIP checkout> --site <mmcv 1.x folder> --commit <sha>",
        mmcv="1.4.8 (pure Python, MMCV_WITH_OPS=0; mmcv.ops stubbed)")
    common.write_golden(out, NAME, arrays, meta)


if __name__ == "__main__":
    main()
