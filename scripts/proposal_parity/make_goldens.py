"""Goldens for the visual-prompt rankers, made by the authors' own executors (not part of the package).

    python scripts/proposal_parity/make_goldens.py --reclip /path/to/reclip --fgvp /path/to/FGVP \
        --sam /path/to/segment-anything [--out tests/golden]

runs allenai/reclip's ``ClipExecutor`` + ``Environment.filter`` (``executor.py``, ``interpreter.py``; crop, blur)
and ylingfeng/FGVP's (``fgvp-reclip/``: crop, blur, ``fine-grained`` circle / blur_box_mask, score
subtraction) on tests/proposal_cases.py's cases with the tiny checkpoints of tests/parity_cases.py (fp32, CPU),
and writes ``tests/golden/visual_prompt.{json,npz}`` (scores = the executor's summed logits, probs = the
softmax of ``Environment.filter``). Their files are imported from the checkouts as they are; only modules the
isolated-scoring path never calls (spaCy, ALBEF, ruamel, SAM's model builder) are stubbed here at run time.
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from parity_cases import case_image, tiny_checkpoints  # noqa: E402
from proposal_cases import BANK, BOXES, MODEL_SETS, cases  # noqa: E402

THEIR_MODULES = ("executor", "interpreter", "transforms", "fine_grained_visual_prompt", "show", "albef",
                 "pytorch_grad_cam", "methods")


def stub_unused_modules():
    """Modules imported at the top of executor.py that the isolated-scoring path never uses."""
    for name in ("spacy", "ruamel", "ruamel.yaml", "albef", "albef.model", "albef.utils", "albef.vit"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["albef.model"].ALBEF = None
    sys.modules["albef.vit"].interpolate_pos_embed = None
    sys.modules["ruamel"].yaml = sys.modules["ruamel.yaml"]


def patch_clip_load():
    """clip.load's own non-JIT path (build_model, .float() on CPU, _transform(R)) for a state-dict file: the
    installed clip.load re-reads the file after its JIT attempt, which fails on plain state dicts."""
    import clip
    import torch
    from clip.model import build_model

    def load(name, device="cpu", jit=False, download_root=None):
        model = build_model(torch.load(name, map_location="cpu", weights_only=True)).to(device)
        if str(device) == "cpu":
            model.float()
        return model, clip.clip._transform(model.visual.input_resolution)

    clip.load = load


def import_from(folder: Path):
    """(executor, interpreter) modules of one checkout, freshly imported."""
    for name in list(sys.modules):
        if name.split(".")[0] in THEIR_MODULES:
            del sys.modules[name]
    stub_unused_modules()
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("executor"), importlib.import_module("interpreter")
    finally:
        sys.path.remove(str(folder))


def fgvp_args(reps, subtract):
    """FGVP main.py's defaults for the cmds/ configurations (SAM off: ``--sam_prompt none``)."""
    prompts = [r for r in reps if r in ("circle", "blur_box_mask")]
    return argparse.Namespace(
        visual_prompt=prompts, recompute_box=False, sam_model="vit_h", sam_pretrained=None, sam_image_size=1024,
        sam_prompt="none", clip_image_size=384, clip_processing="resize", clip_crop_pct=1.0, color_line="red",
        thickness=2, color_mask="green", alpha=0.5, contour_scale=1.0, score_subtracting=subtract,
        text_prompt="a photo of <caption>", sam_multimask_output=False, min_mask_region_area=400)


class _NoSam:
    mask_threshold = 0.0

    def to(self, device):
        return self


def build_executor(source, mods, case, ckpts):
    executor_mod = mods[source][0]
    names = ",".join(str(ckpts[m]) for m in MODEL_SETS[case["models"]])
    reps = case["representations"]
    method = ",".join([r for r in ("crop", "blur") if r in reps]
                      + (["fine-grained"] if {"circle", "blur_box_mask"} & set(reps) else []))
    kw = dict(clip_model=names, box_representation_method=method, method_aggregator=case["aggregator"],
              device="cpu", square_size=True, blur_std_dev=100)
    if source == "reclip":
        return executor_mod.ClipExecutor(**kw)
    executor_mod.sam_model_registry = {"vit_h": lambda checkpoint=None: _NoSam()}
    executor_mod.SamAutomaticMaskGenerator = lambda *a, **k: None
    return executor_mod.ClipExecutor(fgvp_args(reps, case["subtract"]), **kw)


def run_case(mods, case, ckpts, image_cache):
    """The authors' scores (executor output) and probs (Environment.filter with softmax) for one case."""
    from PIL import Image

    interp = mods[case["source"]][1]
    executor = build_executor(case["source"], mods, case, ckpts)
    seen = {}

    def capture(*a, **k):
        out = executor(*a, **k)
        seen["scores"] = (out[0] if isinstance(out, tuple) else out).float().numpy().copy()
        return out

    capture.device = "cpu"
    if case["image"] not in image_cache:
        image_cache[case["image"]] = Image.fromarray(case_image(case["image"])).convert("RGB")
    image = image_cache[case["image"]]
    boxes = [interp.Box(x=b[0], y=b[1], w=b[2] - b[0], h=b[3] - b[1]) for b in BOXES[case["image"]]]
    env = interp.Environment(image, boxes, capture)
    kw = {}
    if case["subtract"]:
        kw["caption_bank"] = [f"a photo of {e.lower()}" for e in BANK]  # FGVP main.py L188-194
    probs = env.filter(case["phrase"].lower(), area_threshold=0.0, softmax=True, **kw)  # Baseline.execute
    return seen["scores"], np.asarray(probs, dtype=np.float32)


def versions() -> dict:
    import cv2
    import PIL
    import torch
    import torchvision

    return dict(pillow=PIL.__version__, torch=torch.__version__, torchvision=torchvision.__version__,
                opencv=cv2.__version__, numpy=np.__version__)


def commit_of(folder: Path, given):
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", str(folder), "rev-parse", "HEAD"], text=True).strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown (pass the --*-commit options)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reclip", required=True, help="allenai/reclip checkout")
    ap.add_argument("--fgvp", required=True, help="ylingfeng/FGVP checkout (its fgvp-reclip/ folder is used)")
    ap.add_argument("--sam", required=True, help="facebookresearch/segment-anything checkout (FGVP imports it)")
    for name in ("reclip", "fgvp", "sam"):
        ap.add_argument(f"--{name}-commit", default=None)
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(args.sam).resolve()))
    patch_clip_load()
    mods = {"reclip": import_from(Path(args.reclip).resolve())}
    mods["fgvp"] = import_from(Path(args.fgvp).resolve() / "fgvp-reclip")
    ckpts, digests = tiny_checkpoints(Path(tempfile.mkdtemp()))
    rows, arrays, image_cache = [], {}, {}
    for i, case in enumerate(cases()):
        scores, probs = run_case(mods, case, ckpts, image_cache)
        arrays[f"scores_{i}"], arrays[f"probs_{i}"] = scores, probs
        rows.append(dict(case, boxes=BOXES[case["image"]], argmax=int(np.argmax(probs))))
        print(i, case["source"], case["image"], case["models"], case["representations"], case["aggregator"],
              case["subtract"], np.round(scores, 3).tolist(), flush=True)
    commits = {n: commit_of(Path(getattr(args, n)), getattr(args, f"{n}_commit")) for n in ("reclip", "fgvp", "sam")}
    meta = dict(repos={"reclip": "allenai/reclip", "fgvp": "ylingfeng/FGVP", "sam": "facebookresearch/segment-anything"},
                commits=commits, versions=versions(), checkpoints=digests, bank=list(BANK), cases=rows,
                command="python scripts/proposal_parity/make_goldens.py --reclip R --fgvp F --sam S")
    out = Path(args.out)
    np.savez_compressed(out / "visual_prompt.npz", **arrays)
    (out / "visual_prompt.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(rows)} cases to {out}/visual_prompt.{{json,npz}}")


if __name__ == "__main__":
    main()
