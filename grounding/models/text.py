"""Phrase tokenisation: CLIP's BPE with a 77-token context; longer phrases are truncated with a warning."""
from __future__ import annotations

import warnings

import torch

import clip


def check_phrase(phrase, allow_empty: bool = False) -> None:
    """Refuse non-string phrases and (unless ``allow_empty``) empty or whitespace-only ones."""
    if not isinstance(phrase, str):
        raise TypeError(f"phrase must be a string, got {type(phrase).__name__}")
    if not phrase.strip() and not allow_empty:
        raise ValueError("phrase is empty or whitespace-only")


def warn_truncated(phrase: str, context_length: int = 77) -> None:
    warnings.warn(f"phrase longer than CLIP's {context_length}-token context; truncated: {phrase[:60]!r}...",
                  stacklevel=4)


def tokenize(phrase: str, allow_empty: bool = False) -> torch.Tensor:
    """Tokenise one phrase to a (1, 77) tensor. Over-long phrases are cut to CLIP's context with a
    warning (the reference would crash); empty or non-string phrases are refused."""
    check_phrase(phrase, allow_empty)
    try:
        return clip.tokenize([phrase])
    except RuntimeError:
        warn_truncated(phrase)
        return clip.tokenize([phrase], truncate=True)
