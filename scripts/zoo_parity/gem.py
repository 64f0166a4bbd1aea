"""Run GEM's own code (WalBouss/GEM) on the zoo's tiny CLIPs and store golden tokens/maps/boxes.

The authors' repository is NOT part of this one. GEM pins ``open_clip_torch<=2.23.0`` (its forward feeds
sequence-first tokens to the tower, as open_clip 2.x towers expect) and imports ``einops``; install both
beside, not into, the project's environment, then pass both folders:

    pip install --target /tmp/gem_deps --no-deps "open_clip_torch==2.23.0" einops
    python scripts/zoo_parity/gem.py --repo-dir /path/to/GEM --deps-dir /tmp/gem_deps

Their model is built through their entry point ``gem.create_gem_model(name, pretrained="openai")`` with its
defaults (depth 7, one self-self iteration, adaptive temperature); the only patch is that
``open_clip.create_model`` returns the tiny model instead of downloading weights. That model is open_clip's
``build_model_from_openai_state_dict`` (QuickGELU) of the tiny OpenAI-layout state dict, reloaded in fp32
after the fp16 cast that function applies, so its weights are bit-identical to ours; the script checks and
records that its plain ``encode_image``/``encode_text`` equal OpenAI ``clip``'s. GEM's patched
``visual.forward`` gives the tokens (GEM path); text is ``encode_text(tokenize(phrase))`` without GEM's
"a photo of a {}." prompt (zoo contract). The contract's score map (bilinear → exp(cos/σ) → min–max) and
the boxes are computed in ``common.py``. Writes ``tests/golden/zoo_gem.npz`` and ``.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

import common
from common import ALPHA, IMAGES, MODELS, PHRASES, SIGMA, clip
from common import unit as _unit

NAME = "gem"
THEIR_NAME = {"b32": "ViT-B/32", "b16": "ViT-B/16"}


def open_clip_twin(sd):
    """open_clip's CLIP from our OpenAI-layout state dict, fp32 and bit-identical (the builder casts to fp16;
    reloading the fp32 tensors after ``.float()`` undoes the rounding)."""
    from open_clip.model import build_model_from_openai_state_dict

    model = build_model_from_openai_state_dict({k: v.clone() for k, v in sd.items()}, quick_gelu=True).float()
    model.load_state_dict(sd)
    return model.eval()


def main():
    ap = common.parser(__doc__, "checkout of WalBouss/GEM")
    ap.add_argument("--deps-dir", help="folder with open_clip_torch<=2.23.0 and einops (pip install --target)")
    args = ap.parse_args()
    repo = Path(args.repo_dir).resolve()
    if args.deps_dir:
        sys.path.insert(0, str(Path(args.deps_dir).resolve()))
    sys.path.insert(0, str(repo))
    import open_clip
    from open_clip.version import __version__ as oc_version

    if tuple(int(p) for p in oc_version.split(".")[:2]) > (2, 23):
        sys.exit(f"GEM needs open_clip_torch<=2.23.0 (its requirements.txt); found {oc_version} at "
                 f"{open_clip.__file__}. Install 2.23.0 with pip install --target DIR --no-deps "
                 f"and pass --deps-dir DIR.")
    import gem as their_gem

    out = common.out_dir(args)
    sha = common.repo_commit(repo, args.commit, unknown="unknown (not a git checkout; pass --commit)")

    arrays, cases, digests, checks = {}, [], {}, {}
    torch.set_grad_enabled(False)
    for mk in MODELS:
        ours = common.tiny(mk)
        sd = ours.state_dict()
        digests[mk] = common.state_dict_digest(sd)
        twin = open_clip_twin(sd)
        for k, v in sd.items():
            assert torch.equal(twin.state_dict()[k], v), f"open_clip conversion changed {k}"
        # numerics of the conversion: plain CLIP on both sides, before GEM patches the tower
        x0 = common.case_tensor(IMAGES[0])
        tok = clip.tokenize(list(PHRASES))
        assert torch.equal(open_clip.tokenize(list(PHRASES)).long(), tok.long()), "tokenizers differ"
        checks[mk] = dict(encode_image_max_abs_diff=float((twin.encode_image(x0) - ours.encode_image(x0)).abs().max()),
                          encode_text_max_abs_diff=float((twin.encode_text(tok) - ours.encode_text(tok)).abs().max()))
        print(mk, "open_clip twin vs OpenAI clip:", checks[mk], flush=True)

        open_clip.create_model = lambda *a, _m=twin, **k: _m  # stands in for the weight download, nothing else
        gem_model = their_gem.create_gem_model(THEIR_NAME[mk], pretrained="openai")
        gem_model.eval()
        for image in IMAGES:
            x = common.case_tensor(image)
            feat_gem, feat_ori = gem_model.model.visual(x)  # GEM's modified_vit_forward: (GEM path, original path)
            checks[mk][f"original_path_cls_vs_clip_{image}"] = float(
                (feat_ori[:, 0] - ours.encode_image(x)).abs().max())
            patches = _unit(feat_gem)[:, 1:]
            g = int(round(patches.shape[1] ** 0.5))
            for phrase in PHRASES:
                text = _unit(twin.encode_text(open_clip.tokenize([phrase])))
                cos = (patches[0] @ text[0]).reshape(g, g).numpy()
                common.add_indexed_case(arrays, cases, mk, image, phrase, patches[0].numpy(), cos)
    meta = dict(method=NAME, repo="WalBouss/GEM", commit=sha, open_clip_version=oc_version,
                their_entry="gem.create_gem_model(name, pretrained='openai') defaults (depth 7, ss_attn_iter 1, "
                            "ss_attn_temp None) → model.visual(x)[0]",
                knobs=dict(depth=7, iterations=1, inv_temperature="auto"),
                models=common.models_meta(digests, nested=True),
                conversion_checks=checks, sigma=SIGMA, alpha=ALPHA, text_mode="plain", cases=cases,
                command=f"python scripts/zoo_parity/{NAME}.py --repo-dir <checkout of WalBouss/GEM> "
                        f"--deps-dir <pip --target folder with open_clip_torch==2.23.0 and einops>")
    common.write_golden(out, NAME, arrays, meta)


if __name__ == "__main__":
    main()
