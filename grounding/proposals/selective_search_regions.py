"""Region proposals for the Crop & Rank baseline.

* :func:`opencv_proposals` — OpenCV's selective search (``ximgproc``, fast mode), the paper's baseline.
* :func:`reference_regions` — the reference code's pure-Python selective search (an adaptation of
  AlpacaDB/selectivesearch) reproduced region for region, *including its quirks*, because the
  reference's Crop & Rank numbers come from it:
    - the image is float 0–255 when converted to HSV, so hue and saturation always fall in the first
      of the 25 colour bins (only value is informative);
    - the LBP texture histogram uses the range (0, 1), so it only counts LBP codes 0 and 1;
    - "neighbours" are pairs where a corner of the later region's box lies strictly inside the
      earlier region's box;
    - regions are listed initial Felzenszwalb segments first (in order of first appearance in a
      raster scan), then merged regions in merge order. The reference keeps the *first 100* — the
      finest segments, not the best-ranked proposals.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np


def opencv_proposals(image: np.ndarray, max_side: int = 1000, mode: str = "fast") -> np.ndarray:
    """OpenCV selective search → (N, 4) float boxes [x1, y1, x2, y2] (pixels, x2/y2 exclusive), in
    OpenCV's order. Images with a side over ``max_side`` are searched downscaled, boxes scaled back."""
    import cv2

    cv2.setNumThreads(1)  # does not fight torch for cores
    cv2.setRNGSeed(0)
    _seed_libc_rand()  # OpenCV ranks proposals with C rand(): seed it so the order is reproducible
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    im = image if s == 1.0 else cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))),
                                           interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(im[..., ::-1]))  # OpenCV wants BGR
    if mode == "fast":
        ss.switchToSelectiveSearchFast()
    else:
        ss.switchToSelectiveSearchQuality()
    rects = np.asarray(ss.process(), dtype=np.float64).reshape(-1, 4)
    boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1) / s
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    return boxes


def _seed_libc_rand(seed: int = 0) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError):  # not a libc platform: order may vary between runs
        pass


# ------------------------------------------------------------------ the reference's selective search
def _initial_regions(image: np.ndarray, scale: float, sigma: float, min_size: int):
    import skimage.color
    import skimage.feature
    import skimage.segmentation
    import skimage.util

    labels = skimage.segmentation.felzenszwalb(skimage.util.img_as_float(image), scale=scale, sigma=sigma,
                                               min_size=min_size)
    img = image.astype(np.float64)  # the reference appends the label channel, making the image float 0–255
    hsv = skimage.color.rgb2hsv(img)
    lbp = np.stack([skimage.feature.local_binary_pattern(img[..., c], 8, 1.0) for c in range(3)], -1)
    flat = labels.ravel()
    _, first = np.unique(flat, return_index=True)
    order = np.unique(flat)[np.argsort(first)]  # labels in order of first appearance (raster scan)
    H, W = labels.shape
    ys, xs = np.divmod(np.arange(H * W), W)
    regions = []
    for lab in order:
        m = flat == lab
        px_hsv = hsv.reshape(-1, 3)[m]
        px_lbp = lbp.reshape(-1, 3)[m]
        n = int(m.sum())
        hist_c = np.concatenate([np.histogram(px_hsv[:, c], 25, (0.0, 255.0))[0] for c in range(3)]) / n
        hist_t = np.concatenate([np.histogram(px_lbp[:, c], 10, (0.0, 1.0))[0] for c in range(3)]) / n
        regions.append({"min_x": int(xs[m].min()), "min_y": int(ys[m].min()), "max_x": int(xs[m].max()),
                        "max_y": int(ys[m].max()), "size": n, "hist_c": hist_c, "hist_t": hist_t})
    return regions


def _intersect(a: Dict, b: Dict) -> bool:
    """The reference's neighbour test: a corner of b's box strictly inside a's box."""
    inx1 = a["min_x"] < b["min_x"] < a["max_x"]
    inx2 = a["min_x"] < b["max_x"] < a["max_x"]
    iny1 = a["min_y"] < b["min_y"] < a["max_y"]
    iny2 = a["min_y"] < b["max_y"] < a["max_y"]
    return (inx1 and iny1) or (inx2 and iny2) or (inx1 and iny2) or (inx2 and iny1)


def _similarity(a: Dict, b: Dict, imsize: int) -> float:
    # Python's left-to-right sums, as the reference (numpy's pairwise sums round differently)
    colour = sum(np.minimum(a["hist_c"], b["hist_c"]).tolist())
    texture = sum(np.minimum(a["hist_t"], b["hist_t"]).tolist())
    size = 1.0 - (a["size"] + b["size"]) / imsize
    bb = (max(a["max_x"], b["max_x"]) - min(a["min_x"], b["min_x"])) * (
        max(a["max_y"], b["max_y"]) - min(a["min_y"], b["min_y"]))
    fill = 1.0 - (bb - a["size"] - b["size"]) / imsize
    return colour + texture + size + fill


def _merge(a: Dict, b: Dict) -> Dict:
    n = a["size"] + b["size"]
    return {"min_x": min(a["min_x"], b["min_x"]), "min_y": min(a["min_y"], b["min_y"]),
            "max_x": max(a["max_x"], b["max_x"]), "max_y": max(a["max_y"], b["max_y"]), "size": n,
            "hist_c": (a["hist_c"] * a["size"] + b["hist_c"] * b["size"]) / n,
            "hist_t": (a["hist_t"] * a["size"] + b["hist_t"] * b["size"]) / n}


def reference_regions(image: np.ndarray, scale: float = 500, sigma: float = 0.9, min_size: int = 50,
                      first: Optional[int] = None) -> np.ndarray:
    """The reference's selective-search regions as (N, 4) int boxes (min_x, min_y, max_x, max_y),
    inclusive, in the reference's order. With ``first`` and at least that many initial segments, the
    hierarchical grouping (which only appends later regions) is skipped."""
    R = _initial_regions(image, scale, sigma, min_size)
    if first is None or len(R) < first:
        R = _group(R, image.shape[0] * image.shape[1])
    out = np.array([[r["min_x"], r["min_y"], r["max_x"], r["max_y"]] for r in R], dtype=np.int64).reshape(-1, 4)
    return out if first is None else out[:first]


def _group(R: List[Dict], imsize: int) -> List[Dict]:
    regions = dict(enumerate(R))
    S: Dict[tuple, float] = {}
    keys = list(regions)
    for ai in range(len(keys) - 1):
        for bi in keys[ai + 1:]:
            if _intersect(regions[keys[ai]], regions[bi]):
                S[(keys[ai], bi)] = _similarity(regions[keys[ai]], regions[bi], imsize)
    while S:
        best = max(S.values())
        i, j = [k for k, v in S.items() if v == best][-1]  # the reference's stable sort → last of the maxima
        t = max(regions) + 1
        regions[t] = _merge(regions[i], regions[j])
        gone = [k for k in S if i in k or j in k]
        for k in gone:
            del S[k]
        for k in gone:
            if k != (i, j):
                n = k[1] if k[0] in (i, j) else k[0]
                S[(t, n)] = _similarity(regions[t], regions[n], imsize)
    return list(regions.values())
