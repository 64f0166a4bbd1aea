"""Random-weight CLIPs built from ``clip.model.CLIP`` (tiny for tests and parity runs, real-size for benchmarks).

Real weights cannot be downloaded in CI, so tests use these: same architecture classes as OpenAI's
models (vocab 49408, heads = width // 64 as ``build_model`` sets), few layers, narrow widths.
Weights are drawn from a seeded generator so the same seed gives the same model everywhere.
"""
from __future__ import annotations

import torch

from clip.model import CLIP

VOCAB = 49408


def tiny_clip(kind: str = "vit", *, patch_size: int = 32, seed: int = 0, vision_layers=None,
              vision_width: int = None, embed_dim: int = 32, image_resolution: int = 224,
              width_scale: float = 1.0) -> CLIP:
    """A small CLIP in fp32 eval mode. ``kind``: ``vit`` (patch 14/16/32) or ``resnet``.

    All floating parameters and BatchNorm statistics are redrawn from ``torch.Generator(seed)``
    in state-dict order, so the model depends only on the arguments.
    """
    if kind == "vit":
        layers = vision_layers or 2
        width = vision_width or 64
        model = CLIP(embed_dim, image_resolution, layers, width, patch_size, 77, VOCAB, 64, 1, 1)
    elif kind == "resnet":
        layers = tuple(vision_layers or (1, 1, 1, 1))
        width = vision_width or 8
        model = CLIP(embed_dim, image_resolution, layers, width, None, 77, VOCAB, 64, 1, 1)
    else:
        raise ValueError("kind must be 'vit' or 'resnet'")
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    with torch.no_grad():
        for name, t in sd.items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean"):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith(".weight") and t.dim() == 1:  # LayerNorm / BatchNorm gains
                t.copy_(1.0 + 0.1 * torch.randn(t.shape, generator=g))
            elif t.dim() == 1:  # biases
                t.copy_(0.02 * torch.randn(t.shape, generator=g))
            elif name == "logit_scale":
                t.fill_(4.6052)
            else:  # matrices, conv kernels, embeddings: fan-in scaled
                fan_in = max(1, t[0].numel()) if t.dim() > 1 else 1
                t.copy_(width_scale * torch.randn(t.shape, generator=g) / fan_in ** 0.5)
    return model.float().eval()
