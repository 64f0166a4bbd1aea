"""The method protocol, the registry of methods by name, and hyperparameter validation.

A method turns an image and a phrase into a box::

    prepared = method.prepare(image)                  # phrase-independent work, once per image
    result = method.localize_prepared(prepared, "a dog")
    result.box, result.score_map                      # (x1, y1, x2, y2) input pixels; ndarray or None
    method.name, method.params                        # registry name; resolved hyperparameters

Methods register with :func:`register_method` and declare their hyperparameters as :class:`Param`s,
so a configuration is validated (types, ranges, unknown keys) before any model is loaded.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple
from ..errors import GroundingError

_REGISTRY: Dict[str, type] = {}


class ConfigError(GroundingError, ValueError):
    """A configuration value is invalid; the message names the key and what is expected."""


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


# ------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type, an optional range check and a one-line description."""

    kind: str  # float | int | bool | str | int_list
    doc: str = ""
    check: Optional[Callable[[Any], bool]] = None
    expect: str = ""  # what ``check`` requires, for the error message
    choices: Tuple = ()
    feature: bool = False  # changes the phrase-independent features (part of the cache key)

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
        if self.choices and v not in self.choices:
            raise bad
        if self.check is not None and not self.check(v):
            raise bad
        return v

    def describe(self) -> str:
        base = {"float": "a finite number", "int": "an integer", "bool": "true or false", "str": "a string",
                "int_list": "a non-empty list of integers", "int_or_str": "an integer or a string",
                "float_or_auto": "a number or auto"}[self.kind]
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
    """Base class of registered methods (subclassing is optional: the protocol is what counts).

    Constructed as ``hydra.utils.instantiate(cfg.method, backbone=…, device=…, precision=…, family=…)``
    or by :class:`grounding.Localizer`. Hyperparameters not given take the defaults of
    :meth:`default_params` (the paper's values for the backbone × dataset family).
    """

    name: str = ""
    PARAMS: Dict[str, Param] = {}

    def __init__(self, backbone=None, *, device="cpu", precision="auto", family: str = "flickr", cache=None,
                 name: Optional[str] = None, paper_defaults: Optional[str] = None, **params):
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
        return {}

    @classmethod
    def validate(cls, params: Mapping[str, Any], backbone_kind: Optional[str] = None) -> Dict[str, Any]:
        """Config-time check (no model): the same rules as the constructor."""
        return validate_params(cls.name, cls.PARAMS, params)

    def effective(self, overrides: Mapping[str, Any]) -> Dict[str, Any]:
        p = dict(self.params)
        p.update(validate_params(self.name, self.PARAMS, {k: v for k, v in overrides.items() if v is not None}))
        return p

    def prepare(self, image):
        raise NotImplementedError

    def localize_prepared(self, prepared, phrase: str, **overrides) -> Localization:
        raise NotImplementedError

    def __call__(self, image, phrase: str, **overrides) -> Localization:
        return self.localize_prepared(self.prepare(image), phrase, **overrides)
