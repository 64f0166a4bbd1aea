"""Image decoding and CLIP input tensors — a leaf module: it imports nothing from the package.

Every stage that touches pixels goes through here, so decoding is the same everywhere (as the
reference: PIL ``.convert("RGB")``; 16-bit images scaled, not clipped).
"""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np
from PIL import Image

ImageLike = Union[np.ndarray, str, os.PathLike, Image.Image]
INPUT_SIZE = 224  # every backbone sees a 224×224 resize, as the reference does (RN50x4 included)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_pil_rgb(image: ImageLike) -> Image.Image:
    """Path, PIL image or HxW(x3/4) array → RGB PIL image (decoded as the reference: ``.convert("RGB")``)."""
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            return _pil_to_rgb(im)
    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4; got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = (arr >> 8).astype(np.uint8)
        elif np.issubdtype(arr.dtype, np.floating) and np.nanmax(arr) <= 1.0:
            arr = np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
        else:
            raise ValueError(f"image array dtype {arr.dtype} not supported (use uint8)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr).convert("RGB")


def _pil_to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def load_image(path) -> np.ndarray:
    """HxWx3 uint8, decoded as the reference does."""
    return np.asarray(to_pil_rgb(path))


def resize_square(pil: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """The model input before normalisation: a ``size``×``size`` bicubic resize (aspect not kept, as the reference)."""
    return np.asarray(pil.resize((size, size), Image.BICUBIC))


def preprocess(image: np.ndarray, size: int, device, dtype=None, mean: Sequence[float] = CLIP_MEAN,
               std: Sequence[float] = CLIP_STD):
    """uint8 HxWx3 (already ``size``×``size``) → normalised (1, 3, size, size) tensor, as CLIP's transform."""
    import torch

    if image.shape[:2] != (size, size):
        raise ValueError(f"expected a {size}x{size} image, got {image.shape[:2]}")
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)
    m = torch.tensor(tuple(mean)).view(3, 1, 1)
    s = torch.tensor(tuple(std)).view(3, 1, 1)
    return ((t - m) / s)[None].to(device=device, dtype=dtype or torch.float32)
