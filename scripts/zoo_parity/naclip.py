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

The score map and boxes follow the zoo contract, written once in ``scripts/zoo_parity/common.py`` (independent
of ``grounding``'s pipeline): L2-normalised patch tokens · L2-normalised OpenAI ``clip`` text embedding (no template).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import common
from common import unit as _unit

NAME = "naclip"
GAUSSIAN_STD = 5.0  # NACLIP segmentor default


def load_authors(repo: Path):
    path = repo / "clip" / "model.py"
    spec = importlib.util.spec_from_file_location("naclip_clip_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.convert_weights = lambda model: None  # keep fp32 (the only patch)
    return mod


def main():
    args = common.parser(__doc__, "checkout of sinahmr/NACLIP").parse_args()
    repo = Path(args.repo_dir).resolve()
    nac = load_authors(repo)
    out = common.out_dir(args)

    def build(ours):
        ref = nac.build_model({k: v.clone() for k, v in ours.state_dict().items()}).float().eval()
        ref.visual.set_params("reduced", "naclip", GAUSSIAN_STD)  # as NACLIP.__init__ with its defaults
        return ref

    arrays, cases, digests = common.run_keyed(
        build, lambda ref, x: _unit(ref.encode_image(x, return_all=True)[:, 1:])[0].float())  # NACLIP.forward_feature
    meta = common.keyed_meta(
        NAME, "sinahmr/NACLIP", common.repo_commit(repo, args.commit),
        ("clip/model.py: visual.set_params('reduced', 'naclip', 5.0); "
         "CLIP.encode_image(x, return_all=True)[:, 1:], fp32"),
        digests, cases, f"python scripts/zoo_parity/{NAME}.py --repo-dir <NACLIP checkout> --commit <sha>",
        gaussian_std=GAUSSIAN_STD)
    common.write_golden(out, NAME, arrays, meta)


if __name__ == "__main__":
    main()
