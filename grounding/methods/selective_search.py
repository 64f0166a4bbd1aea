"""Moved to :mod:`grounding.proposals.selective_search_regions` (proposals sit before methods in the data flow)."""
from ..proposals.selective_search_regions import opencv_proposals, reference_regions  # noqa: F401
