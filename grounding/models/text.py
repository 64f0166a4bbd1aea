"""Phrase tokenisation: CLIP's BPE with a 77-token context; longer phrases are truncated with a warning."""
from __future__ import annotations

import warnings

import torch

import clip


def tokenize(phrase: str, allow_empty: bool = False) -> torch.Tensor:
    """Tokenise one phrase to a (1, 77) tensor. Over-long phrases are cut to CLIP's context with a
    warning (the reference would crash); empty or non-string phrases are refused."""
    if not isinstance(phrase, str):
        raise TypeError(f"phrase must be a string, got {type(phrase).__name__}")
    if not phrase.strip() and not allow_empty:
        raise ValueError("phrase is empty or whitespace-only")
    try:
        return clip.tokenize([phrase])
    except RuntimeError:
        warnings.warn(f"phrase longer than CLIP's 77-token context; truncated: {phrase[:60]!r}...", stacklevel=3)
        return clip.tokenize([phrase], truncate=True)
