"""Cases shared by scripts/proposal_parity/make_goldens.py (which runs allenai/reclip's and ylingfeng/FGVP's
executors) and tests/test_visual_prompt.py (which runs grounding.methods.visual_prompt on the same inputs).

The tiny checkpoints are tests/parity_cases.py's (ViT-B/32-, ViT-B/16- and RN-like random CLIPs saved as
plain state dicts): the authors' code loads them with ``clip.load(path)``, this harness with
``load_backbone(path)``. Boxes are (x1, y1, x2, y2) pixel corners with dyadic fractions, so that
``x1 + (x2 − x1)`` (the authors' ``Box.right``) is exact; they include half-pixel corners (Pillow's
half-to-even rounding), boxes touching the image border and boxes a couple of pixels wide.
"""
from __future__ import annotations

from typing import Dict, List

IMAGES = ("chelsea", "camera", "coffee")  # camera: grayscale
BOXES: Dict[str, List[List[float]]] = {
    # chelsea 300x451 (HxW)
    "chelsea": [[0.0, 0.0, 451.0, 300.0], [110.5, 40.25, 300.75, 250.5], [0.0, 150.5, 120.25, 300.0],
                [200.5, 10.5, 202.75, 12.25], [330.125, 0.0, 451.0, 88.875]],
    # camera 512x512 (grayscale)
    "camera": [[100.5, 30.5, 300.5, 400.0], [0.0, 0.0, 511.5, 512.0], [250.25, 250.75, 253.0, 252.5],
               [400.0, 300.5, 512.0, 512.0], [11.5, 352.5, 100.75, 470.125]],
    # coffee 400x600
    "coffee": [[50.5, 20.5, 450.5, 380.75], [0.0, 0.0, 600.0, 400.0], [480.75, 300.25, 600.0, 400.0],
               [300.5, 100.5, 301.75, 103.5], [120.0, 60.0, 360.0, 200.0]],
}
PHRASES = ("The cat's EAR on the left", "a Cup of coffee")
BANK = ("a man with a camera", "the white saucer", "Left spoon", "the tabby cat", "sky", "a red object")
MODEL_SETS = {"b32": ["ViT-B/32"], "b16": ["ViT-B/16"], "rn": ["RN50"], "ens": ["RN50", "ViT-B/32"]}
REP_SETS = [["crop"], ["blur"], ["circle"], ["blur_box_mask"], ["crop", "blur"], ["crop", "circle"],
            ["crop", "blur_box_mask"], ["crop", "blur", "circle", "blur_box_mask"]]


def cases() -> List[dict]:
    """Every case: image × model set × representation set × phrase (sum; single representations with the
    ViT-B/32 model and the ensemble, combinations with every model set), plus max-aggregator and subtraction
    cases (those of [crop, blur_box_mask] last); ``source`` is the repository whose executor makes the golden."""
    out = []
    for image in IMAGES:
        for models in MODEL_SETS:
            for reps in (REP_SETS if models in ("b32", "ens") else REP_SETS[4:]):
                sources = ["reclip", "fgvp"] if set(reps) <= {"crop", "blur"} else ["fgvp"]
                for source in sources:
                    for phrase in PHRASES:
                        out.append(dict(image=image, models=models, representations=reps, aggregator="sum",
                                        subtract=False, source=source, phrase=phrase))
        for reps in (["crop", "blur"], ["crop", "circle"], ["crop", "blur", "circle", "blur_box_mask"]):
            out += extra_cases(image, reps)
    for image in IMAGES:  # FGVP's own preset (fgvp_box), appended last so the goldens' indices above stay put
        out += extra_cases(image, ["crop", "blur_box_mask"])
    return out


def extra_cases(image: str, reps: List[str]) -> List[dict]:
    """The max-aggregator and subtraction cases of one representation set on one image."""
    out = [dict(image=image, models="ens", representations=reps, aggregator="max", subtract=False, source="fgvp",
                phrase=PHRASES[0])]
    for aggregator in ("sum", "max"):
        out.append(dict(image=image, models="ens", representations=reps, aggregator=aggregator, subtract=True,
                        source="fgvp", phrase=PHRASES[1]))
    return out


def given_proposals(method: str) -> dict:
    """``proposals=`` for a cross-library parity call: labelled boxes (inside a 160×120 image) for proposal
    rankers without a source of their own (dense_rank, det_label, reclip, …); det_label ranks by the labels,
    the others ignore them. Other methods get nothing."""
    from types import SimpleNamespace

    from grounding.methods.base import method_class
    from grounding.methods.proposal import ProposalMethod

    cls = method_class(method)
    if not getattr(cls, "needs_proposals", False) or \
            getattr(cls, "default_proposals", None) is not ProposalMethod.default_proposals:
        return {}
    boxes = [[10, 10, 80, 90], [60, 20, 150, 110], [0, 0, 160, 120], [30, 40, 100, 100]]
    return {"proposals": SimpleNamespace(boxes=boxes, scores=[0.9, 0.8, 0.7, 0.6],
                                         labels=["person", "dog", "person", "cat"])}


def localize_both(ref, other, method: str, image, phrase: str = "a woman's face"):
    """The cross-library parity call: ``method`` on two backbones holding the same weights → (ref's result,
    other's). Crop & Rank ranks 4 proposals, ours runs one SLIC scale, proposal rankers without a source get
    :func:`given_proposals`; the shallow towers' "using all blocks" warnings are muted."""
    import warnings

    from grounding import Localizer

    params = {"num_proposals": 4} if method == "crop_rank" else {}
    if method in ("ours", "ours_vit"):
        params["n_segments"] = [30]
    given = given_proposals(method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return (Localizer(ref, method, **params)(image, phrase, **given),
                Localizer(other, method, **params)(image, phrase, **given))


def assert_same_map(a, b, atol: float = 1e-4) -> None:
    """Two results' score maps agree (shape, values within ``atol``, the searched cell box)."""
    import numpy as np

    assert b.score_map.shape == a.score_map.shape
    np.testing.assert_allclose(b.score_map, a.score_map, atol=atol)
    assert b.cell_box == a.cell_box


def run_app(args, run, how: str, timeout: int = 300) -> None:
    """``python -m grounding.eval ARGS`` into ``run``: as a subprocess (``how="subprocess"``) or in process."""
    import subprocess
    import sys
    from pathlib import Path

    from grounding.config import compose
    from grounding.evaluation.evaluate import evaluate_config

    if how == "subprocess":
        r = subprocess.run([sys.executable, "-m", "grounding.eval", *args, f"hydra.run.dir={run}"],
                           capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])
        assert r.returncode == 0, r.stderr[-2000:]
    else:
        evaluate_config(compose("config", list(args)), run)
