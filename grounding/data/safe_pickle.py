"""Restricted unpickling for untrusted data files (the refer toolkit's ``refs(*.p)``).

A pickle is a program: ``pickle.load`` imports and calls whatever globals the file names, so
loading a crafted file runs code. :func:`safe_load` only lets a pickle build builtin containers
and scalars — dict, list, tuple, set, frozenset, str, bytes, bytearray, int, float, bool, None —
which the pickle opcodes create without importing anything. Every global lookup is refused
except the two that plain data needs in old protocols:

* ``set`` / ``frozenset`` (how protocols 0-3 write sets: ``builtins.set([...])``);
* ``_codecs.encode(text, "latin1")`` (how Python 3 writes ``bytes`` under protocols 0-2); it is
  replaced by a function that accepts nothing but a str and the latin-1 codec.

Persistent ids and out-of-band buffers are refused as well (the base class raises when no
handler is given). Python 2 ``str`` objects are decoded as latin-1 by default, the usual setting
for Python 2 pickles (every byte maps to one code point, so decoding never fails).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from grounding.data.datasets import DatasetError


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside :data:`_ALLOWED_GLOBALS`."""


def _latin1_bytes(text, encoding="latin1", errors="strict"):
    """Stand-in for ``_codecs.encode`` as Python 3 pickles ``bytes`` under protocols < 3."""
    if not (isinstance(text, str) and isinstance(encoding, str)
            and encoding.lower().replace("_", "-") in ("latin1", "latin-1")):
        raise RefusedGlobal(f"_codecs.encode is only allowed as (str, 'latin1'), got "
                            f"({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


_ALLOWED_GLOBALS = {
    ("builtins", "set"): set, ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset, ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` admits only :data:`_ALLOWED_GLOBALS`."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"global '{module}.{name}' is not allowed (only builtin containers "
                                f"and scalars may be unpickled)") from None


def safe_load(path, *, encoding: str = "latin1") -> Any:
    """Unpickle ``path`` admitting only builtin containers and scalars.

    Raises :class:`DatasetError` naming the file when the pickle asks for anything else (no code
    from the file is run), or when it is truncated or not a pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding=encoding).load()
    except FileNotFoundError:
        raise DatasetError(f"pickle not found: {path}") from None
    except RefusedGlobal as e:
        raise DatasetError(f"{path}: refused to unpickle: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError) as e:
        raise DatasetError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None
