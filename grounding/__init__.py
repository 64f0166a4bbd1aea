"""grounding — zero-training phrase localization with CLIP.

Reproduces *Adapting CLIP For Phrase Localization Without Further Training* (Li, Shakhnarovich, Yeh 2022)
and benchmarks the training-free dense-CLIP family on the same splits. Data flows one way:

    models (backbone) → stages (regions) → methods (dense features, score map) → stages (box search)
        → evaluation (evaluator, runner, tables, report);   data (splits) feeds the runner

Public API: :func:`localize`, :class:`Localizer`, :func:`search_box`, :func:`load_backbone`; methods,
splits and backbones are registries (see docs/extending.md).
"""
import importlib
import warnings as _warnings

_warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

_EXPORTS = {
    "localize": "api", "Localizer": "api", "Localization": "api",
    "search_box": "stages.box_search",
    "load_backbone": "models.backbones", "register_backbone": "models.backbones", "BackboneError": "models.backbones",
}
__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):  # lazy: `import grounding.box_search` stays light
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'grounding' has no attribute {name!r}")
