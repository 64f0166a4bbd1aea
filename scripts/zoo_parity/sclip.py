"""Golden score maps and boxes for method=sclip, produced by the AUTHORS' code (wangf3014/SCLIP).

The authors' repository is NOT part of this one. Get a checkout (``git clone https://github.com/wangf3014/SCLIP``)
and pass its folder:

    python scripts/zoo_parity/sclip.py --repo-dir /path/to/SCLIP --commit SHA [--out tests/golden]

It loads the repository's own ``clip/model.py`` by path (as a private module name, so that it does not shadow
OpenAI's ``clip`` package used for tokenising), builds the tiny random CLIPs with its ``build_model`` and runs
``CLIP.encode_image(img, return_all=True, csa=True)``, L2-normalises and drops the class token — exactly
``CLIPForSegmentation.forward_feature`` of ``clip_segmentor.py`` — in fp32 on CPU. The only patch:
``convert_weights`` (the fp16 cast inside ``build_model``) is a no-op, so the fp32 weights are not rounded to fp16
(the contract is fp32). The segmentor class itself (prompt templates, sliding window, class softmax, PAMR; it needs
mmseg 1.x / mmengine) is not used.

The score map and boxes follow the zoo contract, written once in ``scripts/zoo_parity/common.py`` (independent
of ``grounding``'s pipeline): L2-normalised patch tokens · L2-normalised OpenAI ``clip`` text embedding (no template).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

import common
from common import unit as _unit

NAME = "sclip"


def load_authors(repo: Path):
    """The checkout's clip/model.py as module ``sclip_clip_model``, with its fp16 cast disabled."""
    path = repo / "clip" / "model.py"
    spec = importlib.util.spec_from_file_location("sclip_clip_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod.VisionTransformer, "custom_attn"):
        raise SystemExit(f"{path} has no VisionTransformer.custom_attn: not an SCLIP checkout?")
    mod.convert_weights = lambda model: None  # keep fp32 (the only patch)
    return mod


def main():
    args = common.parser(__doc__, "checkout of wangf3014/SCLIP").parse_args()
    repo = Path(args.repo_dir).resolve()
    sclip_model = load_authors(repo)
    out = common.out_dir(args)

    def build(ours):
        ref = sclip_model.build_model({k: v.clone() for k, v in ours.state_dict().items()}).float().eval()
        assert all(p.dtype == torch.float32 for p in ref.parameters())
        return ref

    arrays, cases, digests = common.run_keyed(  # tokens as CLIPForSegmentation.forward_feature
        build, lambda ref, x: _unit(ref.encode_image(x, return_all=True, csa=True))[0, 1:].float())
    meta = common.keyed_meta(
        NAME, "wangf3014/SCLIP", common.repo_commit(repo, args.commit),
        ("clip/model.py build_model (convert_weights disabled) → "
         "CLIP.encode_image(x, return_all=True, csa=True), L2-normalised, class token dropped, fp32"),
        digests, cases, f"python scripts/zoo_parity/{NAME}.py --repo-dir <SCLIP checkout> --commit <sha>")
    common.write_golden(out, NAME, arrays, meta)


if __name__ == "__main__":
    main()
