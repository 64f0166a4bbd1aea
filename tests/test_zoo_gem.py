"""method=gem, specific checks. Token parity with the authors' code (WalBouss/GEM): test_zoo_tokens.py;
maps and boxes: test_zoo_parity.py."""
import pytest
import torch

from grounding.methods import gem
from zoo_cases import image_tensor, tiny_model


@torch.no_grad()
def test_knobs_change_the_patches_and_are_checked():
    visual = tiny_model("gem", "b32").visual
    x = image_tensor("astronaut")
    base = gem.patch_tokens(visual, x)
    assert base.shape == (1, 49, 64)
    for knobs in ({"depth": 2}, {"iterations": 2}, {"inv_temperature": 5.0}):
        assert not torch.allclose(gem.patch_tokens(visual, x, **knobs), base, atol=1e-3), knobs
    with pytest.raises(ValueError, match="depth must be >= 2"):
        gem.patch_tokens(visual, x, depth=1)
    with pytest.warns(UserWarning, match="using all"):  # a shallow tower: every block, as a slice would
        torch.testing.assert_close(gem.patch_tokens(visual, x, depth=12), gem.patch_tokens(visual, x, depth=9))
    with pytest.raises(ValueError, match="inv_temperature"):
        gem.patch_tokens(visual, x, inv_temperature="adaptive")
