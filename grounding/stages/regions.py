"""Stage 2 — regions: multi-scale SLIC superpixels (paper §3.2, "region tokens").

The image (already resized to the model's input size) is segmented once per ``n_segments`` value
with scikit-image's SLIC, as the reference does (float image in [0, 1], compactness 50, sigma 0).
Each scale yields a label map; every label is one region and gets one region token.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Sequence

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


def slic_labels(img: np.ndarray, n_segments: int, compactness: float, sigma: float) -> np.ndarray:
    """One SLIC scale on a float [0, 1] image, labels remapped to 0..K-1 in sorted order (as the
    reference enumerates ``np.unique`` labels)."""
    seg = slic(img, n_segments=int(n_segments), compactness=compactness, sigma=sigma)
    _, inv = np.unique(seg, return_inverse=True)
    return inv.reshape(seg.shape).astype(np.int32)


def slic_regions(image: np.ndarray, n_segments: Sequence[int], compactness: float = 50.0,
                 sigma: float = 0.0, *, workers: Optional[int] = None) -> Regions:
    """SLIC at every ``n_segments`` value on an HxWx3 uint8 image.

    Scales run in ``workers`` threads (default ``min(len(n_segments), os.cpu_count())``; 1 = serially):
    scikit-image's SLIC loop releases the GIL, and the result is the same, in the same order.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {image.shape} dtype {image.dtype}")
    img = image.astype(np.float32) / 255.0
    n_segments = [int(n) for n in n_segments]
    workers = min(len(n_segments), os.cpu_count() or 1) if workers is None else int(workers)

    def one(n):
        return slic_labels(img, n, compactness, sigma)

    if workers > 1 and len(n_segments) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            maps = list(pool.map(one, n_segments))
    else:
        maps = [one(n) for n in n_segments]
    return Regions(labels=np.stack(maps, 0), counts=[int(m.max()) + 1 for m in maps])


def single_region(height: int, width: int) -> Regions:
    """One region covering the whole image (used by tests: it must reproduce ``encode_image``)."""
    return Regions(labels=np.zeros((1, height, width), dtype=np.int32), counts=[1])
