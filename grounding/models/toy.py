"""An analytic toy CLIP (tests and the bundled demo, whose scenes come from :mod:`grounding.data.demo`).

No CLIP weights can be downloaded where this harness is tested, so the demo and the end-to-end
tests use a real ``clip.model.CLIP`` ViT whose weights are *set by hand* (never trained) so that a
patch's colour lands on the text embedding of its colour word:

* image side — the stem convolution computes each patch's mean *chroma* (rgb − mean(rgb), a vector
  in a 2-D plane whose angle is the hue) in 3 channels, undoing CLIP's input normalisation; the
  constant part of that normalisation and a small ±b "neutral" pair come in through the positional
  embedding. Attention has zero query/key weights, so a token attends *uniformly* to what it may see:
  a region token ends up with the mean normalised chroma of its region's patches. MLPs output 0;
  LayerNorms are plain normalisations (channel layouts sum to zero, so they only rescale).
* text side — the token embedding of each colour word is its hue's chroma vector; the causal,
  uniform attention of the single text block averages all tokens up to the end-of-text token, whose
  output (read by CLIP's ``encode_text``) is therefore ∝ the colour word's chroma.

So cos(region, "the red square") ≈ cos(hue of the region, red): 1 for red, 0.5 for the neighbouring
hues, −1 for the opposite hue, 0 for a neutral background.


Backbone library ``toy`` (``backbone=toy``; the API string ``"toy"``): its key ``toy`` has its own entry in
:mod:`grounding.methods.hparams`. Heavy imports stay inside functions, so preflight does not import torch.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

from ..data.demo import PALETTE  # the colours the toy understands
from ..data.images import CLIP_MEAN, CLIP_STD
from .names import BackboneError

NAME = "toy"

WIDTH, PATCH, EMBED = 64, 16, 8
NEUTRAL = 0.05  # the ±b pair that keeps a neutral patch a non-zero vector


def _chroma(rgb) -> np.ndarray:
    v = np.asarray(rgb, dtype=np.float64) / 255.0
    return v - v.mean()


def toy_tokenize(phrase: str, allow_empty: bool = False):
    """CLIP's BPE, with a warning when the phrase names none of the colours the toy understands."""
    import warnings

    from .text import tokenize

    words = {w.strip(".,;:!?'\"").lower() for w in str(phrase).split()}
    if not (allow_empty and not str(phrase).strip()) and not words & set(PALETTE):
        warnings.warn(f"backbone=toy understands only the colour words {', '.join(PALETTE)}; {phrase!r} has none, "
                      f"so its box is meaningless (use a real CLIP backbone for real photos)", stacklevel=2)
    return tokenize(phrase, allow_empty=allow_empty)


def toy_clip():
    """The analytic toy CLIP (a ``clip.model.CLIP``): ViT, 224 px, patch 16, one block per tower, width 64
    (1 head)."""
    import torch
    from clip.model import CLIP
    from clip.simple_tokenizer import SimpleTokenizer

    model = CLIP(EMBED, 224, 1, WIDTH, PATCH, 77, 49408, WIDTH, 1, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        v = model.visual
        # stem: mean chroma of the patch, from normalised inputs n_c = (x_c − μ_c) / σ_c
        sigma = torch.tensor(CLIP_STD, dtype=torch.float64)
        mu = torch.tensor(CLIP_MEAN, dtype=torch.float64)
        w = torch.zeros(WIDTH, 3, dtype=torch.float64)
        for k in range(3):
            for c in range(3):
                w[k, c] = ((1.0 if k == c else 0.0) - 1.0 / 3.0) * sigma[c]
        v.conv1.weight.copy_((w / PATCH ** 2)[:, :, None, None].expand(-1, -1, PATCH, PATCH).float())
        const = torch.zeros(WIDTH, dtype=torch.float64)
        const[:3] = mu - mu.mean()
        const[3], const[4] = NEUTRAL, -NEUTRAL
        v.positional_embedding[1:] = const.float()  # patches
        v.class_embedding[3], v.class_embedding[4] = NEUTRAL, -NEUTRAL  # a patch-less region reads neutral
        for ln in (v.ln_pre, v.ln_post):
            ln.weight.fill_(1.0)
        v.ln_pre.weight[3:5] = NEUTRAL  # keep the (normalised) neutral class token small in the residual
        _uniform_identity_block(v.transformer.resblocks[0], 5)
        v.proj[:5, :5] = torch.eye(5)
        # text: colour words → chroma; end-of-text → a neutral pair orthogonal to the image's
        tok = SimpleTokenizer()
        for name, rgb in PALETTE.items():
            ids = tok.encode(name)
            assert len(ids) == 1, f"colour word {name!r} is not a single token"
            model.token_embedding.weight[ids[0], :3] = torch.tensor(_chroma(rgb) / np.linalg.norm(_chroma(rgb)))
        _uniform_identity_block(model.transformer.resblocks[0], 7)
        # every token adds a small neutral pair (ln_1 bias) that LayerNorm cannot blow up: a phrase
        # without a colour word gets a non-zero embedding orthogonal to every image embedding
        ln1 = model.transformer.resblocks[0].ln_1
        ln1.bias[5], ln1.bias[6] = NEUTRAL, -NEUTRAL
        model.ln_final.weight.fill_(1.0)
        model.text_projection[:3, :3] = torch.eye(3)
        model.text_projection[5:7, 5:7] = torch.eye(2)
        model.logit_scale.fill_(np.log(100.0))
    return model.float().eval()


def _uniform_identity_block(block, n: int) -> None:
    """Zero q/k (uniform attention), identity v/out on the first n channels, zero MLP output."""
    import torch

    d = block.attn.embed_dim
    block.attn.in_proj_weight[2 * d:2 * d + n, :n] = torch.eye(n)
    block.attn.out_proj.weight[:n, :n] = torch.eye(n)
    block.ln_1.weight.fill_(1.0)
    block.ln_2.weight.fill_(1.0)


# ------------------------------------------------------------------ the library contract
def parse(spec: str, **options) -> Dict[str, Any]:
    if options:
        raise BackboneError(f"{', '.join(options)} does not apply to backbone {NAME!r} (weights set by hand)")
    return {"library": NAME, "name": NAME}


def describe(cfg: Mapping) -> Dict[str, str]:
    return {"key": NAME, "kind": "vit"}


def preflight(cfg: Mapping, files: bool = True) -> None:
    """Nothing to check: no file."""


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    from .checkpoint import load_model

    return load_model(toy_clip(), NAME, device=device, precision=precision, key=NAME, tokenizer=toy_tokenize,
                      library=NAME)


def label(cfg: Mapping) -> str:
    return NAME
