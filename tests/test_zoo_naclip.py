"""method=naclip, specific checks. Token parity with the authors' code (sinahmr/NACLIP): test_zoo_tokens.py;
maps and boxes: test_zoo_parity.py."""
import numpy as np
import pytest
import torch

from grounding.methods import naclip
from zoo_cases import golden_tokens, our_tokens, tiny_model


def test_gaussian_std_is_live():
    """The σ knob reaches the attention: σ = 50 moves the tokens away from the σ = 5 golden."""
    tok = our_tokens("naclip", tiny_model("naclip", "b16").visual, "astronaut", gaussian_std=50.0)
    assert np.abs(tok - golden_tokens("naclip", "b16", "astronaut")).max() > 1e-3


def test_neighbourhood_bias():
    """Ω: unnormalised Gaussian of the grid distance between patches, zero on the class token's row/column."""
    g, std = 4, 5.0
    om = naclip.neighbourhood_bias(g, std)
    assert om.shape == (g * g + 1, g * g + 1)
    assert torch.all(om[0] == 0) and torch.all(om[:, 0] == 0)
    torch.testing.assert_close(om, om.T)
    assert torch.allclose(torch.diagonal(om)[1:], torch.ones(g * g))
    # patch (0, 0) is token 1; patch (1, 2) is token 1 + 1 * g + 2: squared distance 1 + 4
    assert om[1, 1 + g + 2].item() == pytest.approx(np.exp(-5 / (2 * std ** 2)), rel=1e-6)
    with pytest.raises(ValueError, match="gaussian_std"):
        naclip.neighbourhood_bias(g, 0.0)
