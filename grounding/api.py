"""The public entry point: image + phrase → box, with any registered method.

    backbone → regions → dense features → score map → box search

:class:`Localizer` keeps the model loaded; :meth:`Localizer.prepare` computes the phrase-independent
part once per image so that several phrases reuse it. Methods are looked up by name in the method
registry (``ours``, ``denseclip``, ``crop_rank``, the training-free family, or any registered one).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Union

from .data.images import ImageLike
from .methods.base import ConfigError, Localization, cell_to_pixel_box, method_class
from .methods.dense import FEATURE_VERSION
from .models.backbones import load_backbone

__all__ = ["Localizer", "Localization", "localize", "cell_to_pixel_box", "FEATURE_VERSION"]


class Localizer:
    """A loaded backbone plus a method and its hyperparameters.

    ``backbone``: an API string — a model name or config key (``ViT-B/16`` = ``vit_b16``), a checkpoint path,
    ``"LIBRARY:SPEC"`` with ``pretrained=FILE`` where the library takes one (the libraries and their strings:
    :mod:`grounding.models.registry`; weights are never downloaded) — or a loaded backbone (any object with
    the adapter's names, :mod:`grounding.models.library`).
    ``params`` override the paper's values for this backbone and dataset ``family`` (``flickr`` | ``vg`` |
    ``refcoco`` | ``demo``); unknown names are refused.
    """

    def __init__(self, backbone: Union[str, os.PathLike, Any], method: str = "ours", *, device="cpu",
                 precision: str = "auto", family: str = "flickr", cache_dir=None, cache=None, pretrained=None,
                 **params):
        cls = method_class(method)
        bb = backbone if not isinstance(backbone, (str, os.PathLike)) else load_backbone(
            backbone, device=device, precision=precision, cache_dir=cache_dir, pretrained=pretrained)
        self.method = cls(bb, device=device, precision=precision, family=family, cache=cache, **params)

    def __getattr__(self, name):  # params, backbone, score_map, cosines, … of the method
        if name == "method":
            raise AttributeError(name)
        return getattr(self.method, name)

    def prepare(self, image: ImageLike, **overrides):
        """Phrase-independent work for one image (regions, dense features), computed on first use."""
        return self.method.prepare(image, **overrides)

    def localize_prepared(self, prepared, phrase: str, **overrides) -> Localization:
        return self.method.localize_prepared(prepared, phrase, **overrides)

    def __call__(self, image: ImageLike, phrase: str, **overrides) -> Localization:
        proposals = overrides.pop("proposals", None)
        if proposals is not None:  # a proposal-ranking method: .box is one of them, .index, .scores
            if not getattr(self.method, "needs_proposals", False):
                raise ConfigError(f"method {self.method.name!r} does not rank proposals; drop proposals= or "
                                  f"choose a proposal method (crop_rank, dense_rank, det_label, ...)")
            return self.method.localize_prepared(self.method.prepare(image, proposals=proposals), phrase, **overrides)
        return self.method.localize_prepared(self.method.prepare(image, **overrides), phrase, **overrides)


_CACHE: Dict[tuple, Localizer] = {}


def localize(image: ImageLike, phrase: str, *, backbone, method: str = "ours", device="cpu", pretrained=None,
             **params) -> Localization:
    """Localise ``phrase`` in ``image``; returns ``.box`` (x1, y1, x2, y2) pixels and ``.score_map``.

    With a proposal-ranking method (``crop_rank``, ``dense_rank``, ``det_label``, …) and
    ``proposals=[[x1, y1, x2, y2], …]`` (pixel corners), ``.box`` is one of the given boxes as given,
    ``.index`` its position and ``.scores`` one float per proposal in the given order (``-inf`` for a box
    wholly outside the image); ``.score_map`` may be None. Such a method's own options are given here too and
    build it, e.g. ``method='reclip'|'red_circle'|'fgvp_box'`` with ``ensemble=[…]`` (backbone spellings,
    checkpoint paths included), ``caption_bank=[…]`` (FGVP's score subtraction) and ``representations=[…]``;
    these also return ``.probs`` (the softmax of ``.scores``, the summed logits).

    ``backbone`` as for :class:`Localizer` (``pretrained=FILE`` for libraries whose weights file is separate
    from the architecture). The model stays loaded between calls with the same backbone, weights, method and device.
    """
    family = params.pop("family", "flickr")
    precision = params.pop("precision", "auto")
    build = {}  # a proposal ranker's options (ensemble=, caption_bank=, representations=, …) build it
    if getattr(method_class(method), "needs_proposals", False):
        build = {k: params.pop(k) for k in list(params) if k != "proposals"}
    key = (str(backbone), str(pretrained), method, str(device), family, precision, repr(sorted(build.items())))
    loc = _CACHE.get(key)
    if loc is None:
        _CACHE.clear()
        loc = _CACHE[key] = Localizer(backbone, method, device=device, family=family, precision=precision,
                                      pretrained=pretrained, **build)
    return loc(image, phrase, **params)
