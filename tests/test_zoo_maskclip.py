"""method=maskclip, specific checks. Token parity with the authors' code (chongzhou96/MaskCLIP): test_zoo_tokens.py;
maps and boxes: test_zoo_parity.py."""
import torch

from grounding.methods import maskclip
from grounding.models.vit import self_attention
from zoo_cases import tiny_attention


def test_value_path_is_self_only_attention():
    """Oracle: with a single token, softmax attention is the identity, so it equals MaskCLIP's value path."""
    attn = tiny_attention()
    one = torch.randn(3, 1, 128, generator=torch.Generator().manual_seed(0))
    many = torch.randn(3, 5, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(maskclip.value_path_attention(attn, one), self_attention(attn, one))
        assert not torch.allclose(maskclip.value_path_attention(attn, many), self_attention(attn, many), atol=1e-3)
