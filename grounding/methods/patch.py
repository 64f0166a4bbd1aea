"""The training-free dense-CLIP family's shared orchestration: a score map from the model's own patch grid.

The contract, identical for every method of the family (MaskCLIP, SCLIP, ClearCLIP, NACLIP, GEM,
CLIP Surgery): the input is the model's own input size S (``backbone.input_size``: 224 for every paper
backbone, 336 for ViT-L/14@336, 384 for a SigLIP so400m-patch14-384, …; RGB → S×S bicubic → the backbone's
mean/std, as ours's at 224); the method's patch tokens after ``ln_post`` and ``proj``, L2-normalised, on the
model's own g×g grid (g = S / patch); the phrase embedding is the L2-normalised
``encode_text(tokenize(phrase))`` (no template unless ``prompt`` is set); cos = patch · text — CLIP Surgery:
patch · (text − empty), the empty string's embedding normalised the same way and the difference *not*
renormalised; the g×g cos grid bilinearly upsampled to S×S (``align_corners=False``) → φ = exp(cos/σ) →
min–max normalised; the box from the same box search as ours. No sliding window, no PAMR, no softmax over
classes; no stride reduction and no positional-embedding interpolation (the model's own grid, so none is
needed).

A method of the family is one module: its ``patch_tokens(visual, x, **knobs)`` and a registered
subclass of :class:`PatchMethod` naming it, plus one YAML.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..stages.score_map import minmax_normalise, phi
from .base import BOX_PARAMS, Param
from .dense import DenseMethod, Prepared

PATCH_PARAMS: Dict[str, Param] = dict(
    BOX_PARAMS,
    prompt=Param("str", 'a template for the phrase, e.g. "a photo of {}." (default: none)',
                 lambda v: "{}" in v, "(containing {})"),
)


def upsampled_cosine_map(cos_grid: np.ndarray, size: int) -> np.ndarray:
    """(g²,) cosines on the patch grid → (size, size), bilinear with ``align_corners=False``."""
    g = int(round(math.sqrt(cos_grid.shape[-1])))
    if g * g != cos_grid.shape[-1]:
        raise ValueError(f"{cos_grid.shape[-1]} patch cosines do not form a square grid")
    t = torch.from_numpy(np.asarray(cos_grid, dtype=np.float32)).reshape(1, 1, g, g)
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


class PatchMethod(DenseMethod):
    """Base of the training-free ViT family: subclasses set ``tokens`` (their ``patch_tokens``), ``PARAMS``
    (:func:`knob_params`: the shared ones plus their own knobs, with defaults) and ``TEXT_MODE``."""

    TEXT_MODE = "plain"  # or "minus_empty" (CLIP Surgery)
    paper_defaults = "dense_untuned"  # α, σ and box search of ours-ViT (grounding/methods/hparams.py)

    def __init__(self, backbone=None, **kwargs):
        from .hparams import TUNED

        super().__init__(backbone, **kwargs)
        # α and σ are ours-ViT's unless tuned for this method (scripts/tune.py → hparams.TUNED)
        self.tuned = (self.name, self.backbone.key, self.family) in TUNED

    @property
    def input_size(self) -> int:
        """The backbone's own input size (224 for every paper backbone): the model's own patch grid, so no
        positional-embedding interpolation (ours/DenseCLIP keep :class:`DenseMethod`'s 224)."""
        return int(self.backbone.input_size)

    @staticmethod
    def tokens(visual, x, **knobs):  # pragma: no cover - set by subclasses
        raise NotImplementedError

    def features(self, prepared: Prepared) -> torch.Tensor:
        """The patch tokens with the image's own knobs (``prepared.params``: the feature parameters of
        ``PARAMS``, as :meth:`prepare` received them)."""
        if self.backbone.kind != "vit":
            raise ValueError(f"method {self.name!r} needs a ViT backbone")
        return self.tokens(self.backbone.visual, self.input_tensor(prepared), **prepared.params)[0].float()  # (g², E)

    def phrase_text(self, phrase: str) -> str:
        prompt = self.params.get("prompt")
        return prompt.format(phrase) if prompt else phrase

    def text_embedding(self, phrase: str):
        t = super().text_embedding(self.phrase_text(phrase))
        if self.TEXT_MODE == "minus_empty":
            empty = self._text_cache.get("\0empty")
            if empty is None:
                empty = self._text_cache["\0empty"] = self.backbone.encode_text_empty()
            t = t - empty
        return t

    def cosines(self, prepared: Prepared, phrase: str) -> np.ndarray:
        key = self.cache_key("cos", prepared, self.phrase_text(phrase), self.TEXT_MODE) if self.cache else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit["cos"]
        f = prepared.features
        f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        cos = (f @ self.text_embedding(phrase).float().to(f.device)).cpu().numpy()
        if key is not None:
            self.cache.put(key, cos=cos.astype(np.float32))
        return cos

    def score_map_from_cosines(self, prepared: Prepared, cos: np.ndarray, params) -> np.ndarray:
        return minmax_normalise(phi(upsampled_cosine_map(cos, prepared.map_size), params["temperature"]))


def knob_params(defaults: Optional[Dict[str, Any]] = None, **specs: Param) -> Dict[str, Param]:
    """A family method's PARAMS: the shared ones plus its own knobs (all feature parameters), each knob's
    default from ``defaults`` (the module's ``DEFAULTS``, which its ``patch_tokens`` also uses)."""
    defaults = dict(defaults or {})
    if set(defaults) != set(specs):
        raise TypeError(f"knob_params: knobs {sorted(specs)} but defaults for {sorted(defaults)}")
    out = dict(PATCH_PARAMS)
    for k, p in specs.items():
        out[k] = Param(p.kind, p.doc, p.check, p.expect, p.choices, feature=True, default=defaults[k])
    return out
