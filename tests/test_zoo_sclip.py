"""method=sclip, specific checks. Token parity with the authors' code (wangf3014/SCLIP): test_zoo_tokens.py;
maps and boxes: test_zoo_parity.py."""
import torch

from grounding.methods import sclip
from grounding.models.vit import merge_heads, qkv
from zoo_cases import tiny_attention


def test_csa_rows_sum_to_two():
    """Oracle: with a single token both softmaxes are 1, so CSA = out_proj(2·v) (the maps are summed, not averaged)."""
    attn = tiny_attention()
    x = torch.randn(3, 1, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, _, v = qkv(attn, x)
        expected = merge_heads(attn, 2 * v)
        got = sclip.correlative_self_attention(attn, x)
    assert torch.allclose(got, expected, atol=1e-5)
