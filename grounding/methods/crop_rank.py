"""Baseline "Crop & Rank": region proposals, each crop embedded by CLIP, the best cosine wins.

``variant="paper"``: OpenCV selective search (fast mode), its first 200 proposals, as the paper
describes. ``variant="reference"``: the reference code's behaviour — its own pure-Python selective
search (scale 500, σ 0.9, min size 50) and its *first 100* regions, which are the finest initial
segments rather than the best proposals (see :mod:`grounding.methods.selective_search`); crops are
``image[y1:y2+1, x1:x2+1]`` and the winning region's (x1, y1, x2, y2) is returned as is.
Crops are resized to 224×224 (PIL bicubic, as the reference) and embedded in batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
from PIL import Image

from ..data.images import INPUT_SIZE, ImageLike, preprocess, to_pil_rgb
from .base import ConfigError, Method, Param, positive, register_method
from .selective_search import opencv_proposals, reference_regions

DEFAULT_PROPOSALS = {"paper": 200, "reference": 100}


@dataclass
class CropRankPrepared:
    image_size: Tuple[int, int]
    proposals: np.ndarray  # (N, 4) float pixel boxes
    embeddings: torch.Tensor  # (N, E) L2-normalised


@dataclass
class CropRankResult:
    box: Tuple[float, float, float, float]
    scores: np.ndarray
    proposals: np.ndarray
    phrase: str
    score_map: None = None


@register_method("crop_rank")
class CropRank(Method):
    """Selective-search crops ranked by CLIP (``variant`` paper | reference)."""

    PARAMS = {
        "variant": Param("str", "paper: OpenCV selective search, top 200 | reference: the reference's first 100 regions",
                         choices=tuple(DEFAULT_PROPOSALS)),
        "num_proposals": Param("int", "proposals ranked (default 200 paper / 100 reference)", positive, "(> 0)"),
        "batch_size": Param("int", "crops embedded per forward pass", positive, "(> 0)"),
    }

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        self.variant = self.params["variant"]
        self.num_proposals = int(self.params.get("num_proposals") or DEFAULT_PROPOSALS[self.variant])
        self.batch_size = int(self.params["batch_size"])
        self.params = {"variant": self.variant, "num_proposals": self.num_proposals, "batch_size": self.batch_size}

    @classmethod
    def default_params(cls, backbone, family):
        return {"variant": "paper", "num_proposals": None, "batch_size": 64}

    def proposals(self, image: np.ndarray) -> np.ndarray:
        if self.variant == "paper":
            return opencv_proposals(image)[: self.num_proposals]
        return reference_regions(image, 500, 0.9, 50, first=self.num_proposals).astype(np.float64)

    def _crop(self, image: np.ndarray, box) -> np.ndarray:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        if self.variant == "reference":  # inclusive pixel boxes
            crop = image[y1:y2 + 1, x1:x2 + 1]
        else:
            crop = image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
        return np.asarray(Image.fromarray(crop).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))

    @torch.no_grad()
    def prepare(self, image: ImageLike) -> CropRankPrepared:
        pil = to_pil_rgb(image)
        arr = np.asarray(pil)
        boxes = self.proposals(arr)
        if len(boxes) == 0:
            boxes = np.array([[0, 0, arr.shape[1], arr.shape[0]]], dtype=np.float64)
        embs = []
        for s in range(0, len(boxes), self.batch_size):
            x = torch.cat([preprocess(self._crop(arr, b), INPUT_SIZE, self.device, self.backbone.dtype,
                                      self.backbone.mean, self.backbone.std)
                           for b in boxes[s:s + self.batch_size]])
            e = self.backbone.encode_image(x).float()
            embs.append(e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return CropRankPrepared(pil.size, boxes, torch.cat(embs))

    def localize_prepared(self, prepared: CropRankPrepared, phrase: str, **overrides) -> CropRankResult:
        if overrides:
            raise ConfigError(f"crop_rank takes no per-phrase overrides (got {sorted(overrides)})")
        t = self.backbone.encode_text(phrase)
        scores = (prepared.embeddings @ t).cpu().numpy()
        best = int(np.argmax(scores))
        return CropRankResult(box=tuple(float(v) for v in prepared.proposals[best]), scores=scores,
                              proposals=prepared.proposals, phrase=phrase)
