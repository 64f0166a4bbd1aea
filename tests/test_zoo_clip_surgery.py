"""method=clip_surgery, specific checks. Token parity with the authors' code (xmed-lab/CLIP_Surgery):
test_zoo_tokens.py; maps and boxes (patch · (text − empty)): test_zoo_parity.py."""
import pytest
import torch

from grounding.methods import clip_surgery
from zoo_cases import image_tensor, tiny_model


@torch.no_grad()
def test_surgery_changes_the_patches_and_blocks_is_checked():
    visual = tiny_model("clip_surgery", "b32").visual
    x = image_tensor("astronaut")
    last = clip_surgery.patch_tokens(visual, x, blocks=1)
    six = clip_surgery.patch_tokens(visual, x)
    assert six.shape == (1, 49, 64)
    assert not torch.allclose(last, six, atol=1e-3)
    with pytest.raises(ValueError, match="blocks must be >= 1"):
        clip_surgery.patch_tokens(visual, x, blocks=0)
    with pytest.warns(UserWarning, match="using all"):
        torch.testing.assert_close(clip_surgery.patch_tokens(visual, x, blocks=9),
                                   clip_surgery.patch_tokens(visual, x, blocks=8))
