"""The backbone-library registry: library name → module path, imported only when asked (imports no library).

Every caller (``api``, ``cli``, ``config``, ``evaluate``, ``runner``, ``tables``) uses these functions and never
names a library; the contract a library fulfils is :mod:`grounding.models.library`. Torch-free.

A library is found, in this order, by: :func:`register_library` (an object or a module path, e.g. from a test
or an out-of-tree package); the built-in table :data:`BUILTIN`; the convention ``grounding.models.<NAME>_backbone``
(so a new library is one module plus its YAMLs). API strings: ``"NAME:REST"`` for a known library NAME; a bare
name a library claimed (:func:`claim_name`, e.g. ``toy``); an existing file (``checkpoint``); otherwise an
OpenAI model name (``openai``).
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from .library import missing_functions
from .names import BackboneError

DEFAULT = "openai"
BUILTIN: Dict[str, str] = {
    "openai": "grounding.models.openai_backbone",
    "checkpoint": "grounding.models.checkpoint",
    "open_clip": "grounding.models.open_clip_backbone",
    "toy": "grounding.models.toy",
    "registered": "grounding.models.registered",
}
_REGISTERED: Dict[str, Any] = {}  # name → library object or module path
_NAMES: Dict[str, str] = {"toy": "toy"}  # bare API names → library
_LOADED: Dict[str, Any] = {}


def register_library(name: str, target: Any, *, names=()) -> None:
    """Register backbone library ``name``: ``target`` is an object with the contract's functions or a module
    path (imported on first use). ``names``: bare API strings that mean this library (``"toy"``)."""
    _REGISTERED[name] = target
    _LOADED.pop(name, None)
    for n in names:
        claim_name(n, name)


def unregister_library(name: str) -> None:
    _REGISTERED.pop(name, None)
    _LOADED.pop(name, None)
    for n in [n for n, lib in _NAMES.items() if lib == name]:
        del _NAMES[n]


def claim_name(bare: str, library_name: str) -> None:
    """``bare`` (an API string without prefix) now means library ``library_name``."""
    _NAMES[str(bare)] = library_name


def claimed_names() -> list:
    return sorted(_NAMES)


def _convention(name: str) -> Optional[str]:
    path = f"grounding.models.{name}_backbone"
    try:
        return path if name.isidentifier() and importlib.util.find_spec(path) is not None else None
    except ImportError:
        return None


def known(name: str) -> bool:
    return name in _REGISTERED or name in BUILTIN or _convention(name) is not None


def library_names() -> list:
    found = {p.stem[: -len("_backbone")] for p in Path(__file__).parent.glob("*_backbone.py")}
    return sorted(set(BUILTIN) | set(_REGISTERED) | found)


def library(name: str):
    """The library object (a module or a registered object) called ``name``; one line with the choices (and
    a did-you-mean) for an unknown name, or naming the missing functions of an incomplete one."""
    name = str(name)
    if name in _LOADED:
        return _LOADED[name]
    target = _REGISTERED.get(name) or BUILTIN.get(name) or _convention(name)
    if target is None:
        close = difflib.get_close_matches(name, library_names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BackboneError(f"backbone.library={name!r} is not a backbone library{hint}; "
                            f"known: {', '.join(library_names())}")
    obj = importlib.import_module(target) if isinstance(target, str) else target
    missing = missing_functions(obj)
    if missing:
        raise BackboneError(f"backbone library {name!r} ({target}) lacks {', '.join(missing)} "
                            f"(see grounding/models/library.py)")
    _LOADED[name] = obj
    return obj


def library_of(cfg: Mapping) -> Any:
    return library(str(cfg.get("library") or DEFAULT))


def config_from_spec(spec: Any, **options) -> Dict[str, Any]:
    """The backbone config node of an API string (see the module docstring for the dispatch); options that
    are None are dropped."""
    s = str(spec)
    opts = {k: v for k, v in options.items() if v is not None}
    head, sep, rest = s.partition(":")
    if sep and head.isidentifier() and known(head):
        name, arg = head, rest
    elif s in _NAMES:
        name, arg = _NAMES[s], s
    elif Path(s).expanduser().is_file():
        name, arg = "checkpoint", s
    else:
        name, arg = DEFAULT, s
    cfg = dict(library(name).parse(arg, **opts))
    cfg.setdefault("library", name)
    return cfg


def describe(cfg: Mapping) -> Dict[str, str]:
    return dict(library_of(cfg).describe(cfg))


def fact(what: str, *, _parent_) -> str:
    """OmegaConf resolver ``${backbone:key}`` / ``${backbone:kind}`` inside a ``conf/backbone`` node."""
    return str(describe(_parent_)[what])


def preflight(cfg: Mapping, files: bool = True) -> None:
    library_of(cfg).preflight(cfg, files=files)


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    """The loaded backbone of a config node (preflight first)."""
    lib = library_of(cfg)
    lib.preflight(cfg, files=True)
    return lib.load(cfg, device=device, precision=precision)


def label(cfg: Mapping) -> Optional[str]:
    """The table name of a run's backbone node; a node of a library not importable here reads as its key."""
    try:
        return library_of(cfg).label(cfg)
    except BackboneError:
        return cfg.get("key")


__all__ = ["BUILTIN", "DEFAULT", "claim_name", "claimed_names", "config_from_spec", "describe", "fact", "label",
           "library", "library_names", "library_of", "load", "preflight", "register_library",
           "unregister_library"]
