"""The loaded-backbone adapter every library returns (contract: :mod:`grounding.models.library`), and the
precision rule all libraries share."""
from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Optional, Tuple, Union

import torch

from ..data.images import CLIP_MEAN, CLIP_STD
from .names import resnet_key, vit_key
from .placement import check_precision


def resolve_precision(precision: str, device: Union[str, torch.device]) -> torch.dtype:
    """The torch dtype of :func:`grounding.models.placement.check_precision` (the one precision rule)."""
    return getattr(torch, check_precision(precision, device))


def state_dict_digest(model_or_sd) -> str:
    """SHA-256 over names and fp32 bytes of a state dict (detects a changed tiny model)."""
    sd = model_or_sd.state_dict() if hasattr(model_or_sd, "state_dict") else model_or_sd
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def tower_kind(visual) -> str:
    """``vit`` for a tower with a patch stem and a transformer, else ``resnet`` (CLIP's layouts)."""
    return "vit" if hasattr(visual, "conv1") and hasattr(visual, "transformer") else "resnet"


def geometry_key(visual) -> str:
    """The paper-hyperparameter key of a CLIP-layout tower from its geometry (vit_b16, vit_l14_336, rn50x4, …),
    whichever library built it (:func:`~grounding.models.names.vit_key`, :func:`~grounding.models.names.resnet_key`)."""
    if tower_kind(visual) == "vit":
        size = getattr(visual, "input_resolution", None) or getattr(visual, "image_size", 224)
        size = size[0] if isinstance(size, (tuple, list)) else size
        return vit_key(visual.conv1.out_channels, int(visual.conv1.kernel_size[0]), int(size))
    v = visual
    return resnet_key(v.layer1[0].conv1.in_channels, [len(v.layer1), len(v.layer2), len(v.layer3), len(v.layer4)])


class Backbone:
    """The backbone adapter: a loaded CLIP-like model and the facts a method needs about it
    (the contract is :mod:`grounding.models.library`'s docstring).

    ``model`` has ``visual`` (a tower in CLIP's layout, or a view with its names), ``encode_text(tokens)`` and
    ``encode_image(x)``. ``key`` / ``kind`` default to the tower's geometry; ``tokenizer`` to OpenAI's BPE.
    (A plain class, not a dataclass: Hydra's ``instantiate`` would turn a dataclass argument into a config.)
    """

    def __init__(self, name: str, model: Any, device, dtype: torch.dtype, source: Optional[str] = None,
                 library: str = "openai", mean: Tuple[float, ...] = CLIP_MEAN, std: Tuple[float, ...] = CLIP_STD,
                 tokenizer: Optional[Callable] = None, config_id: Optional[str] = None, key: Optional[str] = None,
                 kind: Optional[str] = None):
        self.name, self.model, self.device, self.dtype = name, model, torch.device(device), dtype
        self.config_id = config_id  # digest of the architecture config when it is not implied by the file
        self.source = source  # checkpoint path, if loaded from a file
        self.library, self.mean, self.std = library, tuple(mean), tuple(std)
        self.tokenizer = tokenizer  # phrase -> (1, context) token tensor; None: OpenAI's BPE
        self._key, self._kind = key, kind

    def __repr__(self):
        return f"Backbone({self.name!r}, {self.library}, {self.kind}, {self.dtype}, {self.device})"

    @property
    def visual(self):
        return self.model.visual

    @property
    def kind(self) -> str:
        return self._kind or tower_kind(self.visual)

    @property
    def key(self) -> str:
        return self._key or geometry_key(self.visual)

    @property
    def input_size(self) -> int:
        v = self.visual
        size = getattr(v, "input_resolution", None) or getattr(v, "image_size", 224)
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    input_resolution = input_size

    @property
    def patch_size(self) -> Optional[int]:
        return int(self.visual.conv1.kernel_size[0]) if self.kind == "vit" else None

    @property
    def has_class_token(self) -> bool:
        return self.kind != "vit" or getattr(self.visual, "class_embedding", None) is not None

    @property
    def logit_scale(self) -> float:
        s = getattr(self.model, "logit_scale", None)
        return float(s.exp()) if s is not None else 100.0

    def identity(self) -> tuple:
        """What the model's outputs depend on, cheaply: file path, size and mtime (plus the config digest);
        or the name and a digest of the weights."""
        if self.source:
            st = os.stat(self.source)
            ident = ("file", os.path.abspath(self.source), st.st_size, st.st_mtime_ns)
            return ident + (self.config_id,) if self.config_id else ident
        return ("registered", self.name, state_dict_digest(self.model))

    def tokenize(self, phrase: str, allow_empty: bool = False) -> torch.Tensor:
        from .text import tokenize

        return (self.tokenizer or tokenize)(phrase, allow_empty=allow_empty)

    @staticmethod
    def end_token_index(tokens: torch.Tensor) -> torch.Tensor:
        """Where the embedding is read: the end token, the largest id of OpenAI's BPE (padding is 0)."""
        return tokens.argmax(dim=-1)

    @torch.no_grad()
    def encode_text(self, phrase: str) -> torch.Tensor:
        """L2-normalised text embedding (1-D, fp32) of one phrase; over-long phrases are truncated."""
        e = self.model.encode_text(self.tokenize(phrase).to(self.device)).float()[0]
        return e / e.norm()

    @torch.no_grad()
    def encode_text_empty(self) -> torch.Tensor:
        """L2-normalised embedding of the empty string (CLIP Surgery's redundant-feature estimate)."""
        e = self.model.encode_text(self.tokenize("", allow_empty=True).to(self.device)).float()[0]
        return e / e.norm()

    @torch.no_grad()
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (N, E) of normalised images (N, 3, S, S), not normalised."""
        return self.model.encode_image(x.to(self.dtype))


__all__ = ["Backbone", "geometry_key", "resolve_precision", "state_dict_digest", "tower_kind"]
