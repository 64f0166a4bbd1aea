"""The public entry point: image + phrase → box, through every stage of the pipeline.

    backbones → regions (SLIC) → dense features → score map → box search

:class:`Localizer` keeps the model loaded; :meth:`Localizer.prepare` computes the phrase-independent
part (regions and dense features) once per image so that several phrases reuse it.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from PIL import Image

from .methods import ours_vit, resnet_dense
from .data.images import INPUT_SIZE, ImageLike, preprocess, resize_square, to_pil_rgb
from .models.backbones import Backbone, backbone_key, load_backbone
from .stages.box_search import search_box
from .stages.cache import FeatureCache, make_key
from .methods.hparams import PARAM_NAMES, paper_hparams
from .stages.regions import Regions, slic_regions
from .stages.score_map import aggregate_regions, cosine_scores, minmax_normalise, phi

METHODS = ("ours", "denseclip")
# Part of every cache key: bump it whenever a code change alters SLIC labels or cosines, so entries
# written by older code are never read back (2: fp16 positional embeddings at upsample 1).
FEATURE_VERSION = 2
FEATURE_PARAMS = {"vit": ("n_segments", "compactness", "sigma", "upsample", "stem_padding"),
                  "resnet": ("high_res",)}


class Prepared:
    """Phrase-independent work for one image, computed lazily: the resized image, its SLIC regions
    and its dense embeddings. With a cache, an image whose cosines are all cached is never decoded."""

    def __init__(self, loc: "Localizer", image: ImageLike, params: Dict[str, Any]):
        self.loc, self.params = loc, params
        self._source = image
        self._resized = self._regions = self._embeddings = None
        if isinstance(image, (str, os.PathLike)):
            st = os.stat(image)
            self.image_id = ("file", os.path.abspath(image), st.st_size, st.st_mtime_ns)
            with Image.open(image) as im:  # header only
                self.image_size = im.size
        else:
            pil = to_pil_rgb(image)
            self._pil = pil
            self.image_size = pil.size
            self.image_id = ("pixels", hashlib.sha256(pil.tobytes()).hexdigest(), pil.size)
        self.map_size = loc.map_size

    @property
    def resized(self) -> np.ndarray:
        if self._resized is None:
            pil = getattr(self, "_pil", None) or to_pil_rgb(self._source)
            if pil.size != tuple(self.image_size):
                raise ValueError(f"{self._source}: decoded size {pil.size} differs from header {self.image_size}")
            s = self.map_size
            self._resized = resize_square(pil, s)
            self._pil = None
        return self._resized

    @property
    def regions(self) -> Optional[Regions]:
        if self.loc.backbone.kind != "vit":
            return None
        if self._regions is None:
            p = self.params
            key = make_key("slic", FEATURE_VERSION, self.image_id, self.map_size, list(p["n_segments"]),
                           p["compactness"], p["sigma"])
            hit = self.loc.cache.get(key) if self.loc.cache else None
            if hit is not None:
                self._regions = Regions(labels=hit["labels"].astype(np.int32), counts=hit["counts"].tolist())
            else:
                self._regions = slic_regions(self.resized, p["n_segments"], p["compactness"], p["sigma"])
                if self.loc.cache:
                    self.loc.cache.put(key, labels=self._regions.labels.astype(np.int16),
                                       counts=np.asarray(self._regions.counts))
        return self._regions

    def __getstate__(self):  # sent back from DataLoader workers without the model
        d = dict(self.__dict__)
        d["loc"] = None
        return d

    @property
    def embeddings(self) -> torch.Tensor:
        """ViT: (R, E) region-token embeddings; ResNet: (1, E, S, S) per-pixel embeddings."""
        if self._embeddings is None:
            self._embeddings = self.loc._embed(self)
        return self._embeddings


@dataclass
class Localization:
    box: Tuple[float, float, float, float]  # input-image pixels
    score_map: np.ndarray  # the 2-D map the box search ran on
    cell_box: Tuple[int, int, int, int]  # inclusive cells of score_map
    phrase: str
    params: Dict[str, Any] = field(default_factory=dict)


class Localizer:
    """A loaded backbone plus the method and its hyperparameters.

    ``params`` override the paper's values for this backbone and dataset ``family`` by the names in
    :data:`grounding.methods.hparams.PARAM_NAMES`.
    """

    def __init__(self, backbone: Union[str, Backbone], method: str = "ours", *, device="cpu",
                 precision: str = "auto", family: str = "flickr", cache_dir=None,
                 cache: Optional[FeatureCache] = None, **params):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r} (crop_rank: grounding.methods.crop_rank)")
        self.backbone = backbone if isinstance(backbone, Backbone) else load_backbone(
            backbone, device=device, precision=precision, cache_dir=cache_dir)
        self.method = method
        self.device = self.backbone.device
        if method == "denseclip" and self.backbone.kind != "resnet":
            raise ValueError("method 'denseclip' needs a ResNet backbone")
        self.params = paper_hparams(backbone_key(self.backbone), method, family)
        self.params.update(self._check(params))
        self._dilated = None
        self._text_cache: Dict[str, torch.Tensor] = {}
        self.cache = cache
        self.backbone_id = self.backbone.identity()

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check(params: Dict[str, Any]) -> Dict[str, Any]:
        bad = sorted(set(params) - set(PARAM_NAMES))
        if bad:
            raise TypeError(f"unknown hyperparameter(s) {bad}; valid: {', '.join(PARAM_NAMES)}")
        return {k: v for k, v in params.items() if v is not None}

    def _effective(self, overrides: Dict[str, Any]) -> Dict[str, Any]:
        p = dict(self.params)
        p.update(self._check(overrides))
        if self.backbone.kind == "vit" and isinstance(p.get("n_segments"), int):
            p["n_segments"] = [p["n_segments"]]
        return p

    def text_embedding(self, phrase: str) -> torch.Tensor:
        e = self._text_cache.get(phrase)
        if e is None:
            e = self.backbone.encode_text(phrase)
            if len(self._text_cache) > 4096:
                self._text_cache.clear()
            self._text_cache[phrase] = e
        return e

    @property
    def map_size(self) -> int:
        """Images are resized to 224×224 for every backbone, as the reference does (its ResNet and ViT
        paths both call ``resize((224, 224))``, also for RN50x4 whose native input is 288)."""
        return INPUT_SIZE

    # ------------------------------------------------------------------ stages
    def prepare(self, image: ImageLike, **overrides) -> Prepared:
        """Phrase-independent work for one image (regions, dense embeddings), computed on first use."""
        p = self._effective(overrides)
        return Prepared(self, image, {k: p[k] for k in FEATURE_PARAMS[self.backbone.kind]})

    def preload(self, image: ImageLike, **overrides) -> Prepared:
        """The CPU-only part of :meth:`prepare` (decode, resize, SLIC), for DataLoader workers.
        Re-attach the result with :meth:`attach` in the main process."""
        prep = self.prepare(image, **overrides)
        if self.backbone.kind == "vit":
            prep.regions
        else:
            prep.resized
        prep.loc = None
        return prep

    def attach(self, prep: Prepared) -> Prepared:
        prep.loc = self
        return prep

    def _embed(self, prep: Prepared) -> torch.Tensor:
        p = prep.params
        x = preprocess(prep.resized, prep.map_size, self.device, self.backbone.dtype)
        visual = self.backbone.model.visual
        if self.backbone.kind == "vit":
            return ours_vit.vit_region_embeddings(visual, x, prep.regions, upsample=int(p["upsample"]),
                                               stem_padding=p.get("stem_padding", "reference"))
        if p["high_res"] and self._dilated is None:
            self._dilated = resnet_dense.dilate_resnet_trunk(visual)
        return resnet_dense.resnet_dense_embeddings(visual, x, high_res=bool(p["high_res"]), dilated_visual=self._dilated)

    def cosines(self, prepared: Prepared, phrase: str) -> np.ndarray:
        """cos(e_txt, E_img) per region (ViT, shape (R,)) or per pixel (ResNet, (S, S)), cached if a cache is set."""
        key = None
        if self.cache is not None:
            key = make_key("cos", FEATURE_VERSION, self.backbone_id, str(self.backbone.dtype), prepared.image_id,
                           prepared.map_size,
                           {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in prepared.params.items()},
                           phrase)
            hit = self.cache.get(key)
            if hit is not None:
                return hit["cos"]
        t = self.text_embedding(phrase)
        if self.backbone.kind == "vit":
            cos = cosine_scores(prepared.embeddings, t, dim=-1).cpu().numpy()
        else:
            cos = cosine_scores(prepared.embeddings, t, dim=1)[0].cpu().numpy()
        if key is not None:
            self.cache.put(key, cos=cos.astype(np.float32))
        return cos

    def score_map(self, prepared: Prepared, phrase: str, **overrides) -> np.ndarray:
        """The map the box search runs on (ViT: min–max normalised mean φ; ResNet: φ per pixel)."""
        p = self._effective(overrides)
        self._check_compatible(prepared, p)
        cos = self.cosines(prepared, phrase)
        if self.backbone.kind == "vit":
            m = aggregate_regions(prepared.regions, phi(cos, p["temperature"]), p["aggregation"])
            return minmax_normalise(m)
        return phi(cos, p["temperature"])

    def localize_prepared(self, prepared: Prepared, phrase: str, **overrides) -> Localization:
        p = self._effective(overrides)
        m = self.score_map(prepared, phrase, **overrides)
        cell = search_box(m, float(p["alpha"]), method=p["box_search"], device=self.device)
        return Localization(box=cell_to_pixel_box(cell, m.shape, prepared.image_size), score_map=m,
                            cell_box=tuple(int(c) for c in cell), phrase=phrase, params=p)

    def __call__(self, image: ImageLike, phrase: str, **overrides) -> Localization:
        return self.localize_prepared(self.prepare(image, **overrides), phrase, **overrides)

    def _check_compatible(self, prepared: Prepared, p: Dict[str, Any]) -> None:
        for k, v in prepared.params.items():
            if p.get(k) != v:
                raise ValueError(f"hyperparameter {k}={p.get(k)!r} differs from the one the features were "
                                 f"prepared with ({v!r}); call prepare() again")


def cell_to_pixel_box(cell, map_shape, image_size) -> Tuple[float, float, float, float]:
    """Inclusive cell box → pixel box: each coordinate × (image size / map size), as the reference."""
    mh, mw = map_shape
    w, h = image_size
    x1, y1, x2, y2 = cell
    return (float(x1) * w / mw, float(y1) * h / mh, float(x2) * w / mw, float(y2) * h / mh)


_CACHE: Dict[tuple, Localizer] = {}


def localize(image: ImageLike, phrase: str, *, backbone, method: str = "ours", device="cpu",
             **params) -> Localization:
    """Localise ``phrase`` in ``image``; returns ``.box`` (x1, y1, x2, y2) pixels and ``.score_map``.

    The model stays loaded between calls with the same backbone, method and device.
    """
    family = params.pop("family", "flickr")
    precision = params.pop("precision", "auto")
    key = (str(backbone), method, str(device), family, precision)
    loc = _CACHE.get(key)
    if loc is None:
        _CACHE.clear()
        loc = _CACHE[key] = Localizer(backbone, method, device=device, family=family, precision=precision)
    return loc(image, phrase, **params)
