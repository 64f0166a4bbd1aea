"""The method protocol, the registry of methods by name, and hyperparameter validation.

The method protocol (:class:`MethodProtocol`; subclassing :class:`Method` is optional) — the whole
contract between a method and the harness. A method turns an image and a phrase into a box::

    prepared = method.prepare(image)                  # phrase-independent work, once per image
    result = method.localize_prepared(prepared, "a dog")
    result.box, result.score_map                      # (x1, y1, x2, y2) input pixels; ndarray or None

Required (a method missing one is refused when it is built, by :func:`check_method`):

``name: str``
    Its registry / config name (``method=NAME``), recorded in ``run.json``.
``params: Mapping[str, Any]``
    Its resolved hyperparameters (JSON-serialisable), recorded in ``run.json``.
``prepare(image: PIL.Image.Image) -> Any``
    The phrase-independent work for one image, done once for all its phrases. ``image`` is a PIL image
    as opened (``PIL.Image.open``: decoding may still be pending; call ``image.convert("RGB")`` to get
    pixels). The harness never looks inside what it returns: any object (a tuple is fine).
``localize_prepared(prepared, phrase: str) -> result``
    ``result.box``: (x1, y1, x2, y2) in the input image's pixels; ``result.score_map``: the 2-D map the box
    was searched on (ndarray, any resolution, covering the whole image) or ``None``.

Optional hooks, each with one name and the default the harness uses when it is absent
(:data:`OPTIONAL_HOOKS`, read with :func:`hook`):

``needs_proposals: bool`` — default ``False``
    When true, the harness calls ``prepare(image, proposals=P)`` with ``P`` the row image's region
    proposals (N×4 pixel boxes from the split's proposal source), and the result additionally has
    ``.index`` (the chosen proposal) and ``.scores`` (one per proposal); ``.score_map`` may be ``None``.
``preload(image) -> prepared`` — default: none (``prepare`` runs in the main process)
    The CPU-only part of ``prepare`` (decode, resize, regions), run in DataLoader worker processes when
    ``workers`` > 0. Its result must pickle; it is passed to ``localize_prepared`` as is.
``prepare_features(items) -> None`` — default: nothing
    ``items``: (prepared, phrases) pairs of several images; compute their features in one forward
    (``batch_images`` > 1). Must not change any result; an exception here is ignored (per-image work).
``PARAMS: Mapping[str, Param]`` (class attribute) — default: none
    The hyperparameters, declared once: the keys ``method.KEY=VALUE`` may set (the composed config holds
    every one, with its ``Param.default`` or null — :func:`grounding.config.register_methods`), their types,
    ranges and defaults. A method YAML sets values, never re-declares keys (a class without ``PARAMS``
    declares its keys in its YAML).
``paper_defaults: str`` (class attribute) — default: none
    A table of :mod:`grounding.methods.hparams` (``ours``, ``denseclip``, ``dense_untuned``): the paper's
    values for backbone × dataset family, which the composed config carries (``--cfg job`` shows them).
``default_params(backbone, family) -> dict`` (classmethod) — default ``{}``
    The values a run with no overrides uses; ``run.json``'s ``overrides`` lists what differs from them.
    :class:`Method`'s: the ``paper_defaults`` table, then each ``Param.default`` (:func:`method_defaults`).
``validate(params, backbone_kind) -> dict`` (classmethod) — default: no config-time check
    Check hyperparameters before any model loads (types, ranges, unknown keys; :func:`validate_params`).
``set_split_phrases(phrases: list[str]) -> None`` — default: not called
    Called once by the app before the loop with every phrase of the split (all rows, whatever the shard),
    e.g. to draw FGVP's subtraction bank with a seed (``reclip``/``red_circle``/``fgvp_box``).
``tuned: bool`` — default ``True``
    False for hyperparameters borrowed from another method (tables mark the run "not tuned").

Methods register with :func:`register_method` and declare their hyperparameters as :class:`Param`s,
so a configuration is validated (types, ranges, unknown keys) before any model is loaded.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

from ..errors import ConfigError  # noqa: F401  (methods and plug-ins import it from here)
from .hparams import paper_hparams

_REGISTRY: Dict[str, type] = {}


def register_method(name: str):
    """Class decorator: make ``name`` resolvable by :func:`method_class` (timm's ``@register_model``)."""

    def deco(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _import_builtin_methods() -> None:
    import importlib
    import pkgutil

    from .. import methods as pkg

    for m in pkgutil.iter_modules(pkg.__path__):
        if not m.name.startswith("_") and m.name not in ("base", "hparams"):
            importlib.import_module(f"{pkg.__name__}.{m.name}")


def registered_methods() -> Sequence[str]:
    _import_builtin_methods()
    return sorted(_REGISTRY)


def method_class(name: str) -> type:
    if name not in _REGISTRY:
        _import_builtin_methods()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


# ------------------------------------------------------------------------------------ protocol
@runtime_checkable
class MethodProtocol(Protocol):
    """What the harness needs of a method (the module docstring is the whole contract)."""

    name: str
    params: Mapping[str, Any]

    def prepare(self, image: Any) -> Any: ...

    def localize_prepared(self, prepared: Any, phrase: str) -> Any: ...


REQUIRED = ("name", "params", "prepare", "localize_prepared")
OPTIONAL_HOOKS: Dict[str, Any] = {
    "PARAMS": None,
    "paper_defaults": None,
    "needs_proposals": False,
    "preload": None,
    "prepare_features": None,
    "default_params": None,
    "validate": None,
    "tuned": True,
    "set_split_phrases": None,
}


def hook(method: Any, name: str) -> Any:
    """The optional hook ``name`` of ``method`` (an instance or a class), or its documented default."""
    if name not in OPTIONAL_HOOKS:
        raise KeyError(f"{name!r} is not an optional hook of the method protocol; hooks: {', '.join(OPTIONAL_HOOKS)}")
    return getattr(method, name, OPTIONAL_HOOKS[name])


def check_method(method: Any, label: Optional[str] = None) -> Any:
    """``method`` if it follows the protocol; else a :class:`ConfigError` in one line naming it and what is missing."""
    missing = [k for k in REQUIRED if not hasattr(method, k)]
    missing += [f"{k} (not callable)" for k in ("prepare", "localize_prepared") if k not in missing
                and not callable(getattr(method, k))]
    missing += [f"{k} (not implemented)" for k in ("prepare", "localize_prepared")
                if getattr(type(method), k, None) is getattr(Method, k)]
    if "name" not in missing and not (isinstance(method.name, str) and method.name):
        missing.append("name (a non-empty string)")
    if "params" not in missing and not isinstance(method.params, Mapping):
        missing.append("params (a mapping)")
    if missing:
        who = label or getattr(method, "name", None) or type(method).__name__
        raise ConfigError(f"method {who!r} ({type(method).__module__}.{type(method).__qualname__}) does not follow "
                          f"the method protocol: missing {', '.join(missing)} (see grounding/methods/base.py)")
    return method


# ------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, an optional range check and a one-line description."""

    kind: str  # float | int | bool | str | int_list | float_or_auto | int_or_str | dict
    doc: str = ""
    check: Optional[Callable[[Any], bool]] = None
    expect: str = ""  # what ``check`` requires, for the error message
    choices: Tuple = ()
    feature: bool = False  # changes the phrase-independent features (part of the cache key)
    default: Any = None  # the value a run uses when none is given (None: the paper's table, or set at run time)

    def coerce(self, key: str, value: Any) -> Any:
        v = value
        bad = ConfigError(f"method.{key}={value!r}: expected {self.describe()}")
        if self.kind == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise bad
            v = float(v)
        elif self.kind == "int":
            if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
                raise bad
            v = int(v)
        elif self.kind == "bool":
            if not isinstance(v, bool):
                raise bad
        elif self.kind == "str":
            if not isinstance(v, str):
                raise bad
        elif self.kind == "int_list":
            if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer():
                v = [int(v)]
            if isinstance(v, str) or not isinstance(v, Sequence) or not len(v):
                raise bad
            if not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                raise bad
            v = [int(x) for x in v]
        elif self.kind == "float_or_auto":
            if v != "auto" and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise bad
        elif self.kind == "int_or_str":
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise bad
        elif self.kind == "dict":
            if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
                raise bad
            v = dict(v)
        if self.choices and v not in self.choices:
            raise bad
        if self.check is not None and not self.check(v):
            raise bad
        return v

    def describe(self) -> str:
        base = {"float": "a finite number", "int": "an integer", "bool": "true or false", "str": "a string",
                "int_list": "a non-empty list of integers", "int_or_str": "an integer or a string",
                "float_or_auto": "a number or auto", "dict": "a mapping of keys to values"}[self.kind]
        if self.choices:
            base = "one of " + ", ".join(map(str, self.choices))
        return f"{base}{' ' + self.expect if self.expect else ''}"


def positive(v) -> bool:
    return v > 0


def all_positive(v) -> bool:
    return all(x > 0 for x in v)


BOX_SEARCHES = ("hierarchical", "exact", "brute_force")
# Shared by every method that searches a box on a score map (the paper's objective, Eq. 1).
BOX_PARAMS: Dict[str, Param] = {
    "alpha": Param("float", "area penalty α in (mass inside / total) − α·(area / image area)"),
    "temperature": Param("float", "σ in φ = exp(cos / σ)", positive, "(> 0)"),
    "box_search": Param("str", "hierarchical (the reference's) | exact | brute_force", choices=BOX_SEARCHES),
}


def static_defaults(specs: Mapping[str, Param]) -> Dict[str, Any]:
    """The declared default of each hyperparameter that has one (tuples as lists)."""
    return {k: list(p.default) if isinstance(p.default, tuple) else p.default
            for k, p in specs.items() if getattr(p, "default", None) is not None}


def method_defaults(cls, backbone_key: Optional[str], family: str) -> Dict[str, Any]:
    """The values a run with no overrides uses: the class's ``paper_defaults`` table
    (:func:`grounding.methods.hparams.paper_hparams`) for backbone × family, then each ``Param``'s default."""
    out: Dict[str, Any] = {}
    table = getattr(cls, "paper_defaults", None)
    if table and backbone_key is not None:
        out.update(paper_hparams(backbone_key, table, family, method=cls.name))
    out.update(static_defaults(getattr(cls, "PARAMS", {})))
    return out


def validate_params(method: str, specs: Mapping[str, Param], params: Mapping[str, Any],
                    not_applicable: Sequence[str] = ()) -> Dict[str, Any]:
    """Check ``params`` against ``specs``: unknown keys, types and ranges; ``None`` values are dropped.
    Keys in ``not_applicable`` are accepted only as ``None`` (e.g. ViT keys of ``ours`` on a ResNet)."""
    out = {}
    for k, v in params.items():
        if k in not_applicable:
            if v is not None:
                raise ConfigError(f"method.{k}={v!r} does not apply to method {method!r} on this backbone")
            continue
        if k not in specs:
            raise ConfigError(f"unknown key method.{k} for method {method!r}; valid: {', '.join(sorted(specs))}")
        if v is not None:
            out[k] = specs[k].coerce(k, v)
    return out


# --------------------------------------------------------------------------------------- results
@dataclass
class Localization:
    """A method's answer for one phrase."""

    box: Tuple[float, float, float, float]  # input-image pixels, plain Python floats
    score_map: Any  # the 2-D map the box search ran on (ndarray), or None
    cell_box: Optional[Tuple[int, int, int, int]] = None  # inclusive cells of score_map
    phrase: str = ""
    params: Dict[str, Any] = field(default_factory=dict)


def cell_to_pixel_box(cell, map_shape, image_size) -> Tuple[float, float, float, float]:
    """Inclusive cell box → pixel box: each coordinate × (image size / map size), as the reference."""
    mh, mw = map_shape
    w, h = image_size
    x1, y1, x2, y2 = cell
    return (float(x1) * w / mw, float(y1) * h / mh, float(x2) * w / mw, float(y2) * h / mh)


class Method:
    """Base class of registered methods (subclassing is optional: :class:`MethodProtocol` is what counts).

    Constructed as ``hydra.utils.instantiate(cfg.method, backbone=…, device=…, precision=…, family=…)``
    or by :class:`grounding.Localizer`. Hyperparameters not given take the defaults of
    :meth:`default_params` (the paper's values for the backbone × dataset family).
    """

    name: str = ""
    PARAMS: Dict[str, Param] = {}  # the hyperparameters, each declared once (a YAML may set values, not keys)
    paper_defaults: Optional[str] = None  # a table of grounding/methods/hparams.py: the paper's values

    def __init__(self, backbone=None, *, device="cpu", precision="auto", family: str = "flickr", cache=None,
                 name: Optional[str] = None, **params):
        from ..models.backbones import load_backbone

        given = validate_params(self.name, self.PARAMS, params, self.not_applicable(backbone))
        self.backbone = load_backbone(backbone, device=device, precision=precision) if isinstance(
            backbone, (str, os.PathLike)) else backbone
        self.device = self.backbone.device if self.backbone is not None else device
        self.family = family
        self.cache = cache
        self.params = dict(self.default_params(self.backbone, family))
        self.params.update(given)

    @classmethod
    def not_applicable(cls, backbone) -> Sequence[str]:
        return ()

    @classmethod
    def default_params(cls, backbone, family: str) -> Dict[str, Any]:
        return method_defaults(cls, getattr(backbone, "key", None), family)

    @classmethod
    def validate(cls, params: Mapping[str, Any], backbone_kind: Optional[str] = None) -> Dict[str, Any]:
        """Config-time check (no model): the same rules as the constructor."""
        return validate_params(cls.name, cls.PARAMS, params)

    def effective(self, overrides: Mapping[str, Any]) -> Dict[str, Any]:
        p = dict(self.params)
        p.update(validate_params(self.name, self.PARAMS, {k: v for k, v in overrides.items() if v is not None}))
        return p

    def prepare(self, image):
        """The protocol's ``prepare(image: PIL.Image) -> Any`` (see the module docstring)."""
        raise NotImplementedError

    def localize_prepared(self, prepared, phrase: str, **overrides) -> Localization:
        raise NotImplementedError

    def __call__(self, image, phrase: str, **overrides) -> Localization:
        return self.localize_prepared(self.prepare(image), phrase, **overrides)
