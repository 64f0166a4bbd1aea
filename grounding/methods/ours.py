"""Ours (Li, Shakhnarovich, Yeh 2022): region tokens on a ViT, the dilated value path on a ResNet.

``method=ours`` picks :class:`~grounding.methods.ours_vit.OursViT` or
:class:`~grounding.methods.resnet_dense.OursResNet` by the backbone's kind; its config carries the
hyperparameters of both (those of the other kind stay null: not applicable).
"""
from __future__ import annotations

import os

from typing import Any, Dict, Mapping, Optional

from .base import ConfigError, register_method, validate_params
from .ours_vit import OursViT
from .resnet_dense import OursResNet

_BY_KIND = {"vit": OursViT, "resnet": OursResNet}


@register_method("ours")
class Ours:
    """Factory: ``Ours(backbone, **params)`` returns the ViT or ResNet implementation, named ``ours``."""

    PARAMS = {**OursViT.PARAMS, **OursResNet.PARAMS}
    paper_defaults = "ours"

    def __new__(cls, backbone=None, **kwargs):
        from ..models.backbones import load_backbone

        if isinstance(backbone, (str, os.PathLike)):
            backbone = load_backbone(backbone, device=kwargs.get("device", "cpu"),
                                     precision=kwargs.get("precision", "auto"))
        impl = _BY_KIND[backbone.kind]
        other = set(cls.PARAMS) - set(impl.PARAMS)
        for k in other:
            if kwargs.get(k) is not None:
                raise ConfigError(f"method.{k}={kwargs[k]!r} does not apply to method 'ours' on a "
                                  f"{backbone.kind} backbone")
            kwargs.pop(k, None)
        obj = impl(backbone, **kwargs)
        obj.name = "ours"
        return obj

    @classmethod
    def validate(cls, params: Mapping[str, Any], backbone_kind: Optional[str] = None) -> Dict[str, Any]:
        impl = _BY_KIND.get(backbone_kind or "vit", OursViT)
        other = [k for k in cls.PARAMS if k not in impl.PARAMS]
        return validate_params("ours", impl.PARAMS, params, not_applicable=other)
