"""The training-free family end to end through the method registry, against the authors' goldens.

Each tests/golden/zoo_<method>.npz was written by scripts/zoo_parity/<method>.py running the authors'
repository on the same tiny CLIPs; here the *registered* method (``grounding.Localizer(…, method=NAME)``:
input tensor, patch tokens, text, upsampling, φ, min–max, box search) must reproduce the golden score
maps within 1e-4 and the boxes exactly. Tokens: test_zoo_tokens.py; goldens read by zoo_cases.py.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from grounding import Localizer
from grounding.methods.base import registered_methods
from grounding.models.backbones import Backbone
from zoo_cases import ZOO, arrays, cases, image_array, meta, tiny_model


def test_the_six_are_registered():
    assert set(ZOO) <= set(registered_methods())


@pytest.mark.parametrize("method", ZOO)
def test_registered_method_reproduces_the_authors_maps_and_boxes(method):
    assert meta(method)["sigma"] == 0.01 and meta(method)["alpha"] == 0.8
    arr, locs = arrays(method), {}
    for case in cases(method):
        loc = locs.get(case.model)
        if loc is None:
            backbone = Backbone(f"tiny-{case.model}", tiny_model(method, case.model), "cpu", torch.float32)
            loc = locs[case.model] = Localizer(backbone, method, alpha=0.8, temperature=0.01, box_search="hierarchical")
        prep = loc.prepare(image_array(case.image))
        out = loc.localize_prepared(prep, case.phrase)
        assert out.score_map.shape == (224, 224)
        np.testing.assert_allclose(out.score_map, arr[case.map_key], atol=1e-4, err_msg=f"{method} case {case.key}")
        assert list(out.cell_box) == case.box_hierarchical, f"{method} case {case.key}"
        assert list(loc.localize_prepared(prep, case.phrase, box_search="exact").cell_box) == case.box_exact
    assert not loc.method.tuned  # α, σ borrowed from ours-ViT: recorded as not tuned


@pytest.mark.parametrize("method", ZOO)
def test_each_runs_on_the_demo_through_the_app(method, tmp_path):
    """`python -m grounding.eval split=demo backbone=toy method=NAME` (in process, 4 rows)."""
    from grounding.config import compose
    from grounding.evaluation.evaluate import evaluate_config

    root = Path(__file__).resolve().parents[1] / "data"
    cfg = compose("config", ["split=demo", "backbone=toy", f"method={method}", f"data_root={root}", "limit=4",
                             "cache.enabled=false", "progress=false"])
    with _no_check():
        m = evaluate_config(cfg, tmp_path / "run")
    assert m["n"] == 4 and m["method"] == method and m["tuned"] is False
    assert m["params"]["alpha"] == 0.5 and m["params"]["temperature"] == 0.05  # the toy's ours-ViT values


def _no_check():
    import contextlib
    import warnings

    @contextlib.contextmanager
    def cm():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GEM / CLIP Surgery on the one-block toy warn that they use all blocks
            yield

    return cm()
