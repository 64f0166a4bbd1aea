"""method=sclip, specific checks. Token parity with the authors' code (wangf3014/SCLIP): test_zoo_tokens.py;
maps and boxes: test_zoo_parity.py."""
import torch

from grounding.methods import sclip
from grounding.models.random import tiny_clip
from grounding.models.vit import merge_heads, qkv


def test_module_contract():
    assert sclip.DEFAULTS == {} and sclip.TEXT_MODE == "plain"


def test_csa_rows_sum_to_two():
    """Oracle: with a single token both softmaxes are 1, so CSA = out_proj(2·v) (the maps are summed, not averaged)."""
    attn = tiny_clip("vit", patch_size=32, seed=0, vision_layers=1, vision_width=128, embed_dim=32).visual \
        .transformer.resblocks[0].attn
    x = torch.randn(3, 1, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, _, v = qkv(attn, x)
        expected = merge_heads(attn, 2 * v)
        got = sclip.correlative_self_attention(attn, x)
    assert torch.allclose(got, expected, atol=1e-5)
