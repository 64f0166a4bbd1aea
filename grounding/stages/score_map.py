"""Stage 4 — score maps: φ = exp(cos(e_txt, E_img) / σ) per region or pixel, aggregated to a map.

ViT: each pixel averages φ over the regions (one per SLIC scale) that cover it, then the map is
min–max normalised (as the reference). ResNet: φ per pixel, not normalised (as the reference).
"""
from __future__ import annotations

import numpy as np
import torch

from .regions import Regions

AGGREGATIONS = ("mean", "median", "max", "min")


def cosine_scores(embeddings: torch.Tensor, text: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """cos(e_txt, E_img) along ``dim`` of ``embeddings`` (fp32)."""
    e = embeddings.float()
    e = e / e.norm(dim=dim, keepdim=True).clamp_min(1e-12)  # a zero embedding scores 0, not NaN
    t = text.float() / text.float().norm().clamp_min(1e-12)
    shape = [1] * e.dim()
    shape[dim] = -1
    return (e * t.view(shape)).sum(dim)


def phi(cos: np.ndarray, temperature: float) -> np.ndarray:
    """Paper's per-pixel score φ = exp(cos / σ) (float32).

    If exp would overflow float32 (cos/σ > 80), the exponent is shifted by its maximum: the result
    is φ scaled by a constant, which leaves the normalised map and the box objective unchanged.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(cos, dtype=np.float32) / np.float32(temperature)
    if z.size and float(np.max(z)) > 80.0:
        z = z - z.max()
    return np.exp(z).astype(np.float32)


def aggregate_regions(regions: Regions, region_phi: np.ndarray, aggregation: str = "mean") -> np.ndarray:
    """Per-pixel aggregate of region scores over the scales (every pixel has one region per scale)."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    stack = np.asarray(region_phi, dtype=np.float32)[regions.flat_labels()]  # (S, H, W)
    if aggregation == "mean":
        total = np.sum(stack, axis=0, dtype=np.float32)
        return (total.astype(np.float64) / stack.shape[0]).astype(np.float32)
    if aggregation == "median":
        return np.median(stack, axis=0).astype(np.float32)
    if aggregation == "max":
        return stack.max(0)
    return -stack.min(0)  # the reference's "min" (negated so that high is better)


def minmax_normalise(m: np.ndarray) -> np.ndarray:
    """(m − min) / (max − min + 1e-8) in float32, as the reference."""
    m = np.asarray(m, dtype=np.float32)
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo + np.float32(1e-8))
