"""``dense_rank``: a dense method's score map (``method.dense=ours|gem|…``) scored on each proposal with
the paper's box objective (Eq. 1, :func:`grounding.stages.box_search.box_objective`) restricted to the
proposals: f(box) = Σ_box S / ΣS − α · area / image area, the best proposal wins.

A proposal's pixel box covers the score-map cells ``floor(x1·W/w) … ceil(x2·W/w) − 1`` (and likewise in
y), at least one cell. ``alpha`` defaults to the dense method's own α (the paper's value for the backbone
× dataset family); ``dense_params`` sets the dense method's own hyperparameters (``{temperature: 0.02}``,
checked by that method). The image side is the dense method's prepared features, the phrase side its map.
"""
from __future__ import annotations

import math

import numpy as np

from ..stages.box_search import box_objective
from .base import ConfigError, Param, hook, method_class, register_method
from .proposal import ProposalMethod


def pixel_to_cell_box(box, map_shape, image_size):
    """Pixel corners → the inclusive cells of a (H, W) map the box covers (at least one cell)."""
    mh, mw = map_shape
    w, h = image_size
    x1, y1, x2, y2 = box
    cx1 = min(mw - 1, max(0, math.floor(x1 * mw / w)))
    cy1 = min(mh - 1, max(0, math.floor(y1 * mh / h)))
    cx2 = min(mw - 1, max(cx1, math.ceil(x2 * mw / w) - 1))
    cy2 = min(mh - 1, max(cy1, math.ceil(y2 * mh / h) - 1))
    return cx1, cy1, cx2, cy2


@register_method("dense_rank")
class DenseRank(ProposalMethod):
    """Proposals ranked by the paper's box objective on a dense method's score map."""

    PARAMS = {
        "dense": Param("str", "the dense method whose score map ranks the proposals (ours, gem, sclip, …)",
                       default="ours"),
        "alpha": Param("float", "area penalty α (null: the dense method's own)"),
        "dense_params": Param("dict", "the dense method's hyperparameters, e.g. {temperature: 0.02}"),
    }

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        name = self.params.get("dense", "ours")
        cls = method_class(name)
        if getattr(cls, "needs_proposals", False):
            raise ConfigError(f"method.dense={name!r} is a proposal method; choose a dense one (ours, gem, …)")
        self.dense = cls(self.backbone, device=self.device, family=self.family, cache=self.cache,
                         **self.params.get("dense_params", {}))
        self.alpha = float(self.params["alpha"] if self.params.get("alpha") is not None
                           else self.dense.params.get("alpha", 0.0))
        self.params = {"dense": name, "alpha": self.alpha, "dense_params": dict(self.dense.params)}

    @classmethod
    def validate(cls, params, backbone_kind=None):
        out = super().validate(params, backbone_kind)
        inner = method_class(out.get("dense", "ours"))  # an unknown name: one line listing the registered ones
        given = out.get("dense_params", {})
        try:
            check = hook(inner, "validate")
            if check is not None:
                check(given, backbone_kind)
        except ConfigError as e:
            raise ConfigError(f"method.dense_params: {e}") from None
        return out

    def image_side(self, image, proposals):
        return self.dense.prepare(image)

    def score_map(self, features, phrase: str) -> np.ndarray:
        if hasattr(self.dense, "score_map"):
            return np.asarray(self.dense.score_map(features, phrase))
        return np.asarray(self.dense.localize_prepared(features, phrase).score_map)

    def score(self, features, proposals, phrase, prepared) -> np.ndarray:
        m = self.score_map(features, phrase)
        prepared.last_map = m
        return np.array([box_objective(m, pixel_to_cell_box(b, m.shape, prepared.image_size), self.alpha)
                         for b in proposals.boxes])

    def localize_prepared(self, prepared, phrase: str, **overrides):
        out = super().localize_prepared(prepared, phrase, **overrides)
        out.score_map = getattr(prepared, "last_map", None)
        return out
