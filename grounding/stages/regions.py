"""Stage 2 — regions: multi-scale SLIC superpixels (paper §3.2, "region tokens").

The image (already resized to the model's input size) is segmented once per ``n_segments`` value
with scikit-image's SLIC, as the reference does (float image in [0, 1], compactness 50, sigma 0).
Each scale yields a label map; every label is one region and gets one region token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
from skimage.segmentation import slic


@dataclass
class Regions:
    """Label maps of all scales. ``labels[s]`` is (H, W) int with values ``0..counts[s]-1``."""

    labels: np.ndarray  # (S, H, W) int32, relabelled to be contiguous per scale
    counts: List[int]  # regions per scale

    @property
    def n_regions(self) -> int:
        return int(sum(self.counts))

    @property
    def offsets(self) -> np.ndarray:
        """Index of each scale's first region in the flat region list."""
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def flat_labels(self) -> np.ndarray:
        """(S, H, W) labels offset so that every region across scales has a unique index."""
        return self.labels + self.offsets[:, None, None].astype(self.labels.dtype)

    def masks(self) -> np.ndarray:
        """(R, H, W) bool masks in the reference's order (scale by scale, label by label)."""
        flat = self.flat_labels()
        out = np.zeros((self.n_regions,) + flat.shape[1:], dtype=bool)
        for s in range(flat.shape[0]):
            for r in range(self.offsets[s], self.offsets[s] + self.counts[s]):
                out[r] = flat[s] == r
        return out


def slic_regions(image: np.ndarray, n_segments: Sequence[int], compactness: float = 50.0,
                 sigma: float = 0.0) -> Regions:
    """SLIC at every ``n_segments`` value on an HxWx3 uint8 image.

    The reference enumerates ``np.unique`` labels, so its region order is the sorted label order;
    labels here are remapped to 0..K-1 in the same sorted order.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {image.shape} dtype {image.dtype}")
    img = image.astype(np.float32) / 255.0
    maps, counts = [], []
    for n in n_segments:
        seg = slic(img, n_segments=int(n), compactness=compactness, sigma=sigma)
        uniq, inv = np.unique(seg, return_inverse=True)
        maps.append(inv.reshape(seg.shape).astype(np.int32))
        counts.append(len(uniq))
    return Regions(labels=np.stack(maps, 0), counts=counts)


def single_region(height: int, width: int) -> Regions:
    """One region covering the whole image (used by tests: it must reproduce ``encode_image``)."""
    return Regions(labels=np.zeros((1, height, width), dtype=np.int32), counts=[1])
