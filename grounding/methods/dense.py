"""The orchestration shared by every dense-feature method, written once.

    image → (regions) → dense features → cos(e_txt, E_img) → score map → box search

A dense method (ours-ViT, ours-ResNet, DenseCLIP, the training-free ViT family) subclasses
:class:`DenseMethod` and supplies only what differs: :meth:`~DenseMethod.features` (per region, per
pixel or per patch) and :meth:`~DenseMethod.score_map_from_cosines`. Features are computed once per
image and reused for all its phrases; cosines are cached on disk under a key holding the method name,
its feature parameters, :data:`FEATURE_VERSION`, the backbone file and the image.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Optional

import numpy as np

from ..data.images import INPUT_SIZE, ImageLike, preprocess, resize_square, to_pil_rgb
from ..stages.box_search import search_box
from ..stages.cache import make_key
from ..stages.score_map import cosine_scores
from .base import Localization, Method, cell_to_pixel_box

# Part of every cache key: bump it whenever a code change alters SLIC labels or cosines, so entries
# written by older code are never read back (2: fp16 positional embeddings at upsample 1; 3: method
# name in the key).
FEATURE_VERSION = 3


def _unopened_file(image) -> Optional[str]:
    """The file of a PIL image as ``Image.open`` returns it (pixels not decoded yet, so not edited either),
    else None: such an image is identified by its file (cache keys) and decoded only when needed."""
    from PIL import ImageFile

    if isinstance(image, ImageFile.ImageFile) and getattr(image, "filename", None) and getattr(image, "tile", None):
        return str(image.filename)
    return None


class Prepared:
    """Phrase-independent work for one image, computed lazily: the resized image, its regions (for
    methods that use them) and its dense features. With a cache, an image whose cosines are all cached
    is never decoded."""

    def __init__(self, method: "DenseMethod", image: ImageLike, feature_params: Dict[str, Any]):
        self.method, self.params = method, feature_params
        self._pil = self._resized = self._regions = self._features = None
        image = _unopened_file(image) or image  # a PIL image as opened: read from its file on first use
        self._source = image
        if isinstance(image, (str, os.PathLike)):
            from PIL import Image

            st = os.stat(image)
            self.image_id = ("file", os.path.abspath(image), st.st_size, st.st_mtime_ns)
            with Image.open(image) as im:  # header only
                self.image_size = im.size
        else:
            self._pil = to_pil_rgb(image)
            self.image_size = self._pil.size
            self.image_id = ("pixels", hashlib.sha256(self._pil.tobytes()).hexdigest(), self._pil.size)
        self.map_size = method.input_size

    @property
    def resized(self) -> np.ndarray:
        if self._resized is None:
            pil = self._pil or to_pil_rgb(self._source)
            if pil.size != tuple(self.image_size):
                raise ValueError(f"{self._source}: decoded size {pil.size} differs from header {self.image_size}")
            self._resized = resize_square(pil, self.map_size)
            self._pil = None
        return self._resized

    @property
    def regions(self):
        if self._regions is None:
            self._regions = self.method.regions(self)
        return self._regions

    @property
    def features(self):
        if self._features is None:
            self._features = self.method.features(self)
        return self._features

    def __getstate__(self):  # sent back from DataLoader workers without the model
        d = dict(self.__dict__)
        d["method"] = None
        return d


class DenseMethod(Method):
    """A method whose score map comes from dense CLIP image features and one text embedding."""

    uses_regions = False

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        self._text_cache: Dict[str, Any] = {}
        self.backbone_id = self.backbone.identity()

    # ------------------------------------------------------------------ what subclasses supply
    def features(self, prepared: Prepared):
        """Dense image features of ``prepared`` (any layout :meth:`cosines` understands)."""
        raise NotImplementedError

    def score_map_from_cosines(self, prepared: Prepared, cos: np.ndarray, params: Dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def regions(self, prepared: Prepared):
        return None

    feature_dim = -1  # the axis of the embedding in :meth:`features`

    # ------------------------------------------------------------------ written once
    @property
    def input_size(self) -> int:
        """Images are resized to 224×224 for every backbone, as the reference does."""
        return INPUT_SIZE

    def feature_params(self, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        p = self.params if params is None else params
        return {k: p[k] for k, spec in self.PARAMS.items() if spec.feature and k in p}

    def input_tensor(self, prepared: Prepared):
        """The normalised model input (1, 3, S, S) of ``prepared`` in the backbone's dtype."""
        bb = self.backbone
        return preprocess(prepared.resized, prepared.map_size, self.device, bb.dtype, bb.mean, bb.std)

    def prepare(self, image: ImageLike, **overrides) -> Prepared:
        """Phrase-independent work for one image, computed on first use."""
        return Prepared(self, image, self.feature_params(self.effective(overrides)))

    def preload(self, image: ImageLike, **overrides) -> Prepared:
        """The protocol's ``preload`` hook: the CPU-only part of :meth:`prepare` (decode, resize, regions),
        run in DataLoader workers; the result travels back without the model and is owned again by
        :meth:`own` when it is used."""
        prep = self.prepare(image, **overrides)
        if self.uses_regions:
            prep.regions
        else:
            prep.resized
        return prep

    def own(self, prep: Prepared) -> Prepared:
        """``prep`` bound to this method (a preloaded one comes back from a worker unbound)."""
        if prep.method is None:
            prep.method = self
        return prep

    def text_embedding(self, phrase: str):
        e = self._text_cache.get(phrase)
        if e is None:
            e = self.backbone.encode_text(phrase)
            if len(self._text_cache) > 4096:
                self._text_cache.clear()
            self._text_cache[phrase] = e
        return e

    def cache_key(self, kind: str, prepared: Prepared, *extra) -> str:
        return make_key(kind, FEATURE_VERSION, self.name, self.backbone_id, str(self.backbone.dtype),
                        prepared.image_id, prepared.map_size,
                        {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in prepared.params.items()},
                        *extra)

    def cosines(self, prepared: Prepared, phrase: str) -> np.ndarray:
        """cos(e_txt, E_img) over the feature layout (cached on disk when a cache is set)."""
        key = self.cache_key("cos", prepared, phrase) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit["cos"]
        cos = cosine_scores(prepared.features, self.text_embedding(phrase), dim=self.feature_dim).cpu().numpy()
        if self.feature_dim != -1:
            cos = cos[0]
        if key is not None:
            self.cache.put(key, cos=cos.astype(np.float32))
        return cos

    def score_map(self, prepared: Prepared, phrase: str, **overrides) -> np.ndarray:
        """The map the box search runs on."""
        p = self.effective(overrides)
        for k, v in self.feature_params(p).items():
            if prepared.params.get(k) != v:
                raise ValueError(f"hyperparameter {k}={v!r} differs from the one the features were "
                                 f"prepared with ({prepared.params.get(k)!r}); call prepare() again")
        return self.score_map_from_cosines(prepared, self.cosines(prepared, phrase), p)

    def localize_prepared(self, prepared: Prepared, phrase: str, **overrides) -> Localization:
        self.own(prepared)
        p = self.effective(overrides)
        m = self.score_map(prepared, phrase, **overrides)
        cell = search_box(m, float(p["alpha"]), method=p["box_search"], device=self.device)
        return Localization(box=cell_to_pixel_box(cell, m.shape, prepared.image_size), score_map=m,
                            cell_box=tuple(int(c) for c in cell), phrase=phrase, params=p)
