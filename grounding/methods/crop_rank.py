"""Baseline "Crop & Rank": region proposals, each crop embedded by CLIP, the best cosine wins.

A ranker on the proposal seat (:mod:`grounding.methods.proposal`). Its own proposals, used when none
are given (``proposals=`` unset): ``variant="paper"``: OpenCV selective search (fast mode), its first 200
proposals, as the paper describes. ``variant="reference"``: the reference code's behaviour — its own
pure-Python selective search (scale 500, σ 0.9, min size 50) and its *first 100* regions, which are the
finest initial segments rather than the best proposals (see
:mod:`grounding.proposals.selective_search_regions`); crops are ``image[y1:y2+1, x1:x2+1]`` and the
winning region's (x1, y1, x2, y2) is returned as is. With ``proposals=gt|detections|…`` it ranks those.
Crops are resized to the backbone's own input size (``backbone.input_size``: 224×224 for every backbone of the
paper's Crop & Rank numbers, 288 for RN50x4, 336 for ViT-L/14@336, …; PIL bicubic, as the reference) and
embedded in batches.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..data.images import preprocess
from ..proposals.base import ProposalSet
from ..proposals.selective_search import DEFAULT_PROPOSALS, selective_search_set
from .base import Param, positive, register_method
from .proposal import ProposalMethod, ProposalPrepared, ProposalResult

CropRankPrepared, CropRankResult = ProposalPrepared, ProposalResult  # former names


@register_method("crop_rank")
class CropRank(ProposalMethod):
    """Crops ranked by CLIP; own proposals: selective search (``variant`` paper | reference)."""

    own_proposals = True
    PARAMS = {
        "variant": Param("str", "paper: OpenCV selective search, top 200 | reference: the reference's first 100 regions",
                         choices=tuple(DEFAULT_PROPOSALS), default="paper"),
        "num_proposals": Param("int", "proposals ranked (null: 200 paper / 100 reference)", positive, "(> 0)"),
        "batch_size": Param("int", "crops embedded per forward pass", positive, "(> 0)", default=64),
    }

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        self.variant = self.params["variant"]
        self.num_proposals = int(self.params.get("num_proposals") or DEFAULT_PROPOSALS[self.variant])
        self.batch_size = int(self.params["batch_size"])
        self.params = {"variant": self.variant, "num_proposals": self.num_proposals, "batch_size": self.batch_size}

    def proposals(self, image: np.ndarray) -> np.ndarray:
        return self.default_proposals(image).boxes

    def default_proposals(self, image: np.ndarray) -> ProposalSet:
        got = selective_search_set(image, self.variant, self.num_proposals)
        if len(got) == 0:  # no region at all: the whole image
            got = ProposalSet(np.array([[0.0, 0.0, image.shape[1], image.shape[0]]]))
        return got

    def _crop(self, image: np.ndarray, box, inclusive=None) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        if self.variant == "reference" if inclusive is None else inclusive:  # inclusive pixel boxes
            crop = image[y1:y2 + 1, x1:x2 + 1]
        else:
            crop = image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
        size = self.backbone.input_size
        return np.asarray(Image.fromarray(crop).resize((size, size), Image.BICUBIC))

    @torch.no_grad()
    def image_side(self, image: np.ndarray, proposals: ProposalSet) -> torch.Tensor:
        """(N, E) L2-normalised CLIP embeddings of the crops (inclusive crops for a set of inclusive pixel
        boxes, e.g. the reference's selective search, whatever ``variant`` says)."""
        embs, size = [], self.backbone.input_size
        for s in range(0, len(proposals), self.batch_size):
            x = torch.cat([preprocess(self._crop(image, b, proposals.meta.get("inclusive")), size, self.device, self.backbone.dtype,
                                      self.backbone.mean, self.backbone.std)
                           for b in proposals.boxes[s:s + self.batch_size]])
            e = self.backbone.encode_image(x).float()
            embs.append(e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.cat(embs)

    @torch.no_grad()
    def score(self, features, proposals, phrase, prepared) -> np.ndarray:
        return (features @ self.backbone.encode_text(phrase)).cpu().numpy()
