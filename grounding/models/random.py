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
    return randomise(model, seed, width_scale)


def randomise(model: CLIP, seed: int = 0, width_scale: float = 1.0) -> CLIP:
    """Redraw every floating parameter and BatchNorm statistic of ``model`` from ``torch.Generator(seed)``
    in state-dict order (fan-in scaled matrices, gains near 1, small biases); returns it in fp32 eval mode."""
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


# OpenAI's architectures: CLIP(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
# context_length, vocab_size, transformer_width, transformer_heads, transformer_layers), the numbers
# clip.model.build_model reads from the released checkpoints.
ARCHITECTURES = {
    "RN50": (1024, 224, (3, 4, 6, 3), 64, None, 77, VOCAB, 512, 8, 12),
    "RN101": (512, 224, (3, 4, 23, 3), 64, None, 77, VOCAB, 512, 8, 12),
    "RN50x4": (640, 288, (4, 6, 10, 6), 80, None, 77, VOCAB, 640, 10, 12),
    "RN50x16": (768, 384, (6, 8, 18, 8), 96, None, 77, VOCAB, 768, 12, 12),
    "RN50x64": (1024, 448, (3, 15, 36, 10), 128, None, 77, VOCAB, 1024, 16, 12),
    "ViT-B/32": (512, 224, 12, 768, 32, 77, VOCAB, 512, 8, 12),
    "ViT-B/16": (512, 224, 12, 768, 16, 77, VOCAB, 512, 8, 12),
    "ViT-L/14": (768, 224, 24, 1024, 14, 77, VOCAB, 768, 12, 12),
    "ViT-L/14@336px": (768, 336, 24, 1024, 14, 77, VOCAB, 768, 12, 12),
}


def random_clip(arch: str, seed: int = 0) -> CLIP:
    """A real-size CLIP with random weights (for benchmarks): OpenAI's layer counts and widths for
    ``arch`` (a key of :data:`ARCHITECTURES`, e.g. ``ViT-B/16``, ``RN50x4``), weights by :func:`randomise`."""
    from .names import canonical_name

    arch = canonical_name(arch)  # "vit_b16" = "ViT-B/16"
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
    return randomise(CLIP(*ARCHITECTURES[arch]), seed)
