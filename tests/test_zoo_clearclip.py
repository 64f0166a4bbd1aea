"""method=clearclip, specific checks. Token parity with the authors' code (mc-lan/ClearCLIP): test_zoo_tokens.py;
maps and boxes: test_zoo_parity.py."""
import torch

from grounding.methods import clearclip
from grounding.models.vit import self_attention
from zoo_cases import tiny_attention


def test_self_self_attention_is_q_q():
    """Oracle: with the key projection set to the query's, CLIP's q·kᵀ attention becomes ClearCLIP's q·qᵀ."""
    attn = tiny_attention()
    x = torch.randn(2, 6, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = clearclip.self_self_attention(attn, x)
        assert not torch.allclose(ours, self_attention(attn, x), atol=1e-3)
        d = x.shape[-1]
        attn.in_proj_weight[d:2 * d] = attn.in_proj_weight[:d]
        attn.in_proj_bias[d:2 * d] = attn.in_proj_bias[:d]
        torch.testing.assert_close(self_attention(attn, x), ours)
