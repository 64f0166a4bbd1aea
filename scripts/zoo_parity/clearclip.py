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

The score map and boxes follow the zoo contract, written once in ``scripts/zoo_parity/common.py`` (independent
of ``grounding``'s pipeline): L2-normalised patch tokens · L2-normalised OpenAI ``clip`` text embedding (no template).
"""
from __future__ import annotations

import sys
from pathlib import Path

import common
from common import unit as _unit

NAME = "clearclip"


def load_authors(repo: Path):
    sys.path.insert(0, str(repo))
    import open_clip
    import open_clip.model as oc_model

    if not Path(open_clip.__file__).resolve().is_relative_to(repo):
        raise SystemExit(f"imported {open_clip.__file__}, not the checkout's vendored open_clip; "
                         f"run without the pip open_clip imported first")
    oc_model.convert_weights_to_fp16 = lambda model: None  # keep fp32 (the only patch)
    return oc_model


def main():
    args = common.parser(__doc__, "checkout of mc-lan/ClearCLIP").parse_args()
    repo = Path(args.repo_dir).resolve()
    oc_model = load_authors(repo)
    out = common.out_dir(args)
    arrays, cases, digests = common.run_keyed(
        lambda ours: oc_model.build_model_from_openai_state_dict(
            {k: v.clone() for k, v in ours.state_dict().items()}, quick_gelu=True, cast_dtype=None).float().eval(),
        lambda ref, x: _unit(ref.encode_image(x, "ClearCLIP", True))[0].float())  # clearclip_segmentor.forward_feature
    meta = common.keyed_meta(
        NAME, "mc-lan/ClearCLIP", common.repo_commit(repo, args.commit),
        "open_clip CLIP.encode_image(x, 'ClearCLIP', ignore_residual=True), fp32", digests, cases,
        f"python scripts/zoo_parity/{NAME}.py --repo-dir <ClearCLIP checkout> --commit <sha>")
    common.write_golden(out, NAME, arrays, meta)


if __name__ == "__main__":
    main()
