"""``proposals=selective_search``: Crop & Rank's proposals — ``variant=paper`` (OpenCV selective search,
fast mode, its first ``num_proposals``, default 200) or ``variant=reference`` (the reference code's own
selective search, its first 100 regions, inclusive pixel boxes). See :mod:`.selective_search_regions`."""
from __future__ import annotations

import numpy as np

from .base import ProposalError, ProposalSet, ProposalSource
from .selective_search_regions import opencv_proposals, reference_regions

DEFAULT_PROPOSALS = {"paper": 200, "reference": 100}


def selective_search_set(image: np.ndarray, variant: str = "paper", num_proposals=None) -> ProposalSet:
    """Crop & Rank's proposals of an RGB uint8 image (exactly the boxes it always ranked)."""
    n = int(num_proposals or DEFAULT_PROPOSALS[variant])
    if variant == "paper":
        return ProposalSet(opencv_proposals(image)[:n], meta={"source": "selective_search"})
    return ProposalSet(reference_regions(image, 500, 0.9, 50, first=n).astype(np.float64),
                       meta={"inclusive": True, "source": "selective_search"})


class SelectiveSearch(ProposalSource):
    name = "selective_search"

    def __init__(self, variant: str = "paper", num_proposals=None, **params):
        if variant not in DEFAULT_PROPOSALS:
            raise ProposalError(f"proposals.variant={variant!r}: expected paper or reference")
        if num_proposals is not None and (isinstance(num_proposals, bool) or not isinstance(num_proposals, int)
                                          or num_proposals < 1):
            raise ProposalError(f"proposals.num_proposals={num_proposals!r}: expected an integer > 0 (or null)")
        super().__init__(variant=variant, num_proposals=num_proposals, **params)
        self.variant, self.num_proposals = variant, num_proposals

    def for_image(self, image_path) -> ProposalSet:
        from ..data.images import to_pil_rgb

        return selective_search_set(np.asarray(to_pil_rgb(image_path)), self.variant, self.num_proposals)
