"""Every zoo method's patch tokens against the authors' goldens (tests/golden/zoo_<method>.npz, written by
scripts/zoo_parity/<method>.py running the authors' code), and the checks that show this comparison can fail:
the goldens differ from plain CLIP, and an open_clip tower with the same weights gives the same tokens.

Score maps and boxes end to end through the registered methods: test_zoo_parity.py. Method-specific checks
(knobs, oracles): test_zoo_<method>.py.
"""
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grounding.models import vit
from zoo_cases import ZOO, golden_tokens, image_tensor, meta, model_images, module, our_tokens, rerun, tiny_model

CASES = [(m, model, image) for m in ZOO for model, image in model_images(m)]


@pytest.mark.parametrize("method", ZOO)
def test_module_matches_the_golden_settings(method):
    """The golden was made with the module's defaults and text mode (where the json records them)."""
    mod, m = module(method), meta(method)
    assert mod.TEXT_MODE == m.get("text_mode", "plain")
    recorded = m.get("knobs", {k: m[k] for k in mod.DEFAULTS if k in m})
    assert {k: mod.DEFAULTS[k] for k in recorded} == recorded, rerun(method)


@pytest.mark.parametrize("method,model,image", CASES)
def test_tokens_match_the_authors(method, model, image):
    visual = tiny_model(method, model).visual
    ours = our_tokens(method, visual, image)
    ref = golden_tokens(method, model, image)
    g = 224 // vit.patch_size(visual)
    assert ours.shape == ref.shape == (g * g, visual.proj.shape[1])
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0, err_msg=f"{method} {model}/{image}; {rerun(method)}")


@pytest.mark.parametrize("method", ZOO)
def test_golden_is_not_plain_clip(method):
    """The goldens discriminate: CLIP's unmodified tower gives clearly different tokens."""
    v = tiny_model(method, "b16").visual
    with torch.no_grad():
        t = vit.input_tokens(v, image_tensor("astronaut"))
        for blk in vit.blocks(v):
            t = vit.block_forward(blk, t)
        plain = F.normalize(vit.head(v, t[:, 1:]), dim=-1)[0].numpy()
    assert np.abs(plain - golden_tokens(method, "b16", "astronaut")).max() > 1e-2


@lru_cache(maxsize=None)
def _open_clip_twin(model):
    """open_clip's CLIP with the same weights, fp32 (the builder casts to fp16; reloading the state dict undoes it)."""
    from open_clip.model import build_model_from_openai_state_dict

    sd = model.state_dict()
    twin = build_model_from_openai_state_dict({k: v.clone() for k, v in sd.items()}, quick_gelu=True).float()
    twin.load_state_dict(sd)
    return twin.eval()


@pytest.mark.parametrize("method", ZOO)
def test_open_clip_tower_gives_the_same_tokens(method):
    model = tiny_model(method, "b32")
    ours = our_tokens(method, model.visual, "camera")
    np.testing.assert_allclose(our_tokens(method, _open_clip_twin(model).visual, "camera"), ours, atol=1e-5, rtol=0)
