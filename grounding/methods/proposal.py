"""The seat of proposal-ranking methods: candidate boxes in, one of them out.

    prepared = method.prepare(image, proposals=boxes_or_set)   # image side: once per (image, proposal set)
    result = method.localize_prepared(prepared, "the dog")      # phrase side: per phrase
    result.box, result.index, result.scores, result.score_map   # a given box, its position, one score each

A ranker subclasses :class:`ProposalMethod` (or only looks like it: ``needs_proposals = True``, the two
calls above) and supplies two things:

* ``image_side(image, proposals) -> Any`` — what is computed once per image and proposal set: crops,
  visual prompts and their CLIP embeddings (several representations, several backbones: any object);
* ``score(features, proposals, phrase, prepared) -> ndarray (N,)`` — one score per usable proposal
  (higher is better); a ranker may also define ``probs(scores) -> ndarray`` (e.g. a softmax), which
  becomes ``result.probs``, and ``choose(scores, proposals) -> int`` (default: first maximum).

Proposals are clipped to the image (a box wholly outside is dropped and counted); ``result.box`` is the
winning box *as given*, ``result.index`` its position in the given list and ``result.scores`` has one
float per given box in the given order (``-inf`` for dropped ones). Ties go to the first maximum. With no
usable proposal the result has ``box=None`` and ``miss`` says why (a recorded miss). A method with
``own_proposals`` (Crop & Rank: selective search) uses them when no proposals are given.
The image side of the last (image, proposal set) is kept, so API calls with several phrases reuse it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..data.images import ImageLike, to_pil_rgb
from ..proposals.base import ProposalError, ProposalSet, as_proposal_set
from .base import ConfigError, Method


@dataclass
class ProposalPrepared:
    image_size: Tuple[int, int]  # (width, height)
    proposal_set: ProposalSet  # usable boxes (clipped), with ``given``, ``index``, ``dropped``
    n_given: int
    features: Any = None  # the ranker's image side
    image: Optional[np.ndarray] = None

    @property
    def proposals(self) -> np.ndarray:  # the usable boxes as given, (N, 4)
        return self.proposal_set.given

    @property
    def embeddings(self):  # rankers whose image side is one embedding per proposal (Crop & Rank)
        return self.features


@dataclass
class ProposalResult:
    box: Optional[Tuple[float, float, float, float]]
    index: Optional[int]
    scores: np.ndarray  # one per given proposal, given order; -inf for a dropped one
    proposals: np.ndarray  # the usable boxes as given, (N, 4)
    phrase: str = ""
    score_map: Any = None
    cell_box: Any = None  # (the protocol's field; proposal methods search no cells)
    probs: Optional[np.ndarray] = None
    miss: Optional[str] = None  # why no box (no usable proposal)
    proposal_info: Dict[str, Any] = field(default_factory=dict)  # count, dropped (for the evaluator)


def image_key(arr: np.ndarray, boxes: np.ndarray) -> str:
    h = hashlib.sha1(np.ascontiguousarray(arr).tobytes())
    h.update(np.ascontiguousarray(boxes, dtype=np.float64).tobytes())
    h.update(str(arr.shape).encode())
    return h.hexdigest()


class ProposalMethod(Method):
    """Base of the rankers: clipping, the image-side memo, argmax and the result; see the module docstring."""

    needs_proposals = True
    own_proposals = False  # True: ``default_proposals(image)`` when none are given

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        self._memo: Tuple[Optional[str], Any] = (None, None)

    def default_proposals(self, image: np.ndarray) -> ProposalSet:
        raise ConfigError(f"method {self.name!r} ranks proposals: give them (proposals=gt|detections|detector|"
                          f"selective_search in the app, proposals=[[x1, y1, x2, y2], ...] in the API)")

    def image_side(self, image: np.ndarray, proposals: ProposalSet) -> Any:
        raise NotImplementedError

    def score(self, features: Any, proposals: ProposalSet, phrase: str, prepared: ProposalPrepared) -> np.ndarray:
        raise NotImplementedError

    def choose(self, scores: np.ndarray, proposals: ProposalSet) -> int:
        """The winning proposal: the first maximum (a ranker may break ties otherwise)."""
        return int(np.argmax(scores))

    def prepare(self, image: ImageLike, proposals=None, **overrides) -> ProposalPrepared:
        if overrides:
            raise ConfigError(f"{self.name} takes no per-image overrides (got {sorted(overrides)})")
        pil = to_pil_rgb(image)
        arr = np.asarray(pil)
        given = as_proposal_set(proposals) if proposals is not None else self.default_proposals(arr)
        usable = given.clipped(pil.size)
        key = image_key(arr, usable.boxes)
        if self._memo[0] == key:
            return self._memo[1]
        prepared = ProposalPrepared(pil.size, usable, len(given.boxes), image=arr)
        if len(usable):
            prepared.features = self.image_side(arr, usable)
        self._memo = (key, prepared)
        return prepared

    def localize_prepared(self, prepared: ProposalPrepared, phrase: str, **overrides) -> ProposalResult:
        if overrides:
            raise ConfigError(f"{self.name} takes no per-phrase overrides (got {sorted(overrides)})")
        ps = prepared.proposal_set
        info = {"count": len(ps), "dropped": int(ps.dropped), "source": ps.meta.get("source")}
        full = np.full(prepared.n_given, -np.inf)
        if not len(ps):
            return ProposalResult(None, None, full, ps.given, phrase, miss="no usable proposal (all "
                                  f"{ps.dropped} boxes degenerate or outside the image)", proposal_info=info)
        scores = np.asarray(self.score(prepared.features, ps, phrase, prepared), dtype=np.float64).reshape(-1)
        if len(scores) != len(ps):
            raise ProposalError(f"{self.name}: score() gave {len(scores)} scores for {len(ps)} proposals")
        best = int(self.choose(scores, ps))
        full[ps.index] = scores
        probs = self.probs(scores) if hasattr(self, "probs") else None
        return ProposalResult(tuple(float(v) for v in ps.given[best]), int(ps.index[best]), full, ps.given, phrase,
                              probs=probs, proposal_info=info)
