"""Runs with proposals: the config checks (before any model loads), the source bound to the split, the
method fed with each image's proposals, and the ``proposals`` block of metrics.json.

metrics.json ``"proposals": {"source", "mean_count", "recall", "dropped"}``: ``recall`` is the fraction of
the split's rows (skipped rows count as misses, like ``accuracy``) in which at least one usable proposal is
a hit under the split's own rule; ``mean_count`` the mean number of usable proposals over the evaluated
rows; ``dropped`` the boxes dropped (degenerate or wholly outside the image) summed over the split's
images. All from the predictions file (each row keeps ``proposals: {count, dropped, hit, source}``).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional

import numpy as np

from ..methods.base import ConfigError


def _method_class(cfg):
    from hydra.utils import get_object

    return get_object(str(cfg.method.get("_target_")))


def check_proposals(cfg) -> None:
    """One-line refusals: a proposal method with no source (and none of its own), a source given to a
    method that ranks none, a source that cannot serve the split (``proposals=gt`` on a CSV split)."""
    from ..proposals.registry import source_class

    cls = _method_class(cfg)
    node = cfg.get("proposals")
    needs = bool(getattr(cls, "needs_proposals", False))
    if node is None:
        if needs and not getattr(cls, "own_proposals", False):
            raise ConfigError(f"method={cfg.method.name} ranks proposals: choose proposals=gt|detections|detector|"
                              f"selective_search (with proposals.file=PATH for detections)")
        return
    if not needs:
        raise ConfigError(f"method={cfg.method.name} does not rank proposals; drop proposals={node.get('name')} "
                          f"or choose a proposal method (crop_rank, dense_rank, det_label, …)")
    source_class(node).check_split(cfg.split)


def bind_source(cfg, split, on_error: str = "raise"):
    """The configured source, bound to ``split``; under ``on_error=raise`` the first image it cannot serve
    is refused here, before a model loads (under ``skip`` those images' rows become recorded skips)."""
    if cfg.get("proposals") is None:
        return None
    from ..proposals.registry import build_source

    source = build_source(cfg.proposals)
    errors = source.bind(split) or {}
    if errors and on_error == "raise":
        raise ConfigError(next(iter(errors.values())) + " (or run with on_error=skip)")
    return source


class WithProposals:
    """A proposal method fed, for each image path, with the source's proposals of that image."""

    def __init__(self, method, source):
        self.method, self.source = method, source

    def __getattr__(self, name):
        if name in ("method", "source", "preload", "prepare_features"):
            raise AttributeError(name)
        return getattr(self.method, name)

    def prepare(self, image, proposals=None, **kw):
        """``image``: the runner's PIL image (opened from its path) or a path; its proposals come from the
        source unless the row carries its own (``Sample.proposals``)."""
        if proposals is None:
            path = image if isinstance(image, (str, os.PathLike)) else getattr(image, "filename", None)
            proposals = self.source.for_image(str(path))
            proposals.meta.setdefault("source", self.source.name)
        return self.method.prepare(image, proposals=proposals, **kw)

    def localize_prepared(self, prepared, phrase, **kw):
        return self.method.localize_prepared(prepared, phrase, **kw)


def with_proposals(method, source):
    return method if source is None else WithProposals(method, source)


def proposal_row(result, gt_box, threshold: float, compare: str) -> Optional[Dict[str, Any]]:
    """The ``proposals`` field of a row: usable count, dropped, whether any proposal hits, the source."""
    from .iou import box_iou, hit

    info = getattr(result, "proposal_info", None)
    if not info:
        return None
    boxes = np.asarray(getattr(result, "proposals", np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt_box, dtype=np.float64)
    any_hit = bool(len(boxes) and hit(box_iou(boxes, np.broadcast_to(gt, boxes.shape)), threshold, compare).any())
    return {"count": int(info["count"]), "dropped": int(info["dropped"]), "hit": any_hit, "source": info.get("source")}


def proposal_summary(records: Iterable[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """metrics.json's ``proposals`` block from a predictions file (None when no row has proposals)."""
    recs = list(records)
    rows = [r["proposals"] for r in recs if isinstance(r.get("proposals"), dict)]
    if not rows:
        return None
    per_image: Dict[str, int] = {}
    for r in recs:
        if isinstance(r.get("proposals"), dict):
            per_image.setdefault(str(r.get("image")), int(r["proposals"]["dropped"]))
    return {"source": next((p.get("source") for p in rows if p.get("source")), None),
            "mean_count": float(np.mean([p["count"] for p in rows])),
            "recall": float(sum(bool(p["hit"]) for p in rows) / len(recs)),
            "dropped": int(sum(per_image.values()))}
