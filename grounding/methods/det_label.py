"""``det_label``: a detector-based ranker with no CLIP image features — the phrase's CLIP text embedding
against the text embedding of each proposal's label name (``"a photo of a {label}"``); ties (e.g. two
boxes of one class) are broken by the detection score, then by order.

In the spirit of Wang & Specia 2019 (the detector-and-word-embedding row of the paper's Table 1), *not*
a reproduction: they match phrase and detector-class words with word embeddings and use several
detectors. Needs labelled proposals: ``proposals=detector``, ``proposals=gt`` (COCO category names) or a
detections file with a ``label`` per box.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from ..proposals.base import ProposalError
from .base import Param, register_method
from .proposal import ProposalMethod


@register_method("det_label")
class DetLabel(ProposalMethod):
    """Proposals ranked by cos(text(phrase), text("a photo of a {label}")), ties by detection score."""

    PARAMS = {"template": Param("str", "label prompt, {} is the label name", default="a photo of a {}")}

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        self._labels: Dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def _text(self, text: str) -> torch.Tensor:
        e = self.backbone.encode_text(text).float().reshape(-1)
        return e / e.norm().clamp_min(1e-12)

    def image_side(self, image, proposals):
        if proposals.labels is None:
            raise ProposalError("det_label needs labelled proposals: proposals=detector, proposals=gt (COCO "
                                "categories) or a detections file with a \"label\" per box")
        for name in set(proposals.labels):
            if name not in self._labels:
                self._labels[name] = self._text(self.params["template"].format(name))
        return torch.stack([self._labels[name] for name in proposals.labels])

    def score(self, features, proposals, phrase, prepared) -> np.ndarray:
        return (features @ self._text(phrase)).cpu().numpy().astype(np.float64)

    def choose(self, scores, proposals) -> int:
        top = np.flatnonzero(scores == scores.max())
        if proposals.scores is None or len(top) == 1:
            return int(top[0])
        det = np.nan_to_num(np.asarray(proposals.scores, dtype=np.float64)[top], nan=-np.inf)
        return int(top[int(np.argmax(det))])
