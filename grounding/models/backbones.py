"""Stage 1 — backbones: load an OpenAI CLIP by model name, file path or registered builder.

Weights are never downloaded: a name such as ``ViT-B/16`` resolves to the file OpenAI's ``clip``
package stores in its cache folder (``~/.cache/clip/ViT-B-16.pt``). The folder can be changed by
argument, by the ``GROUNDING_CLIP_CACHE`` environment variable, or by Hydra config
(``backbone.cache_dir``). A missing file is one clear error naming the path and how to get it.

Custom backbones (e.g. the analytic toy CLIP used by tests and the demo) are registered with
:func:`register_backbone`, in the spirit of open_clip's model registry / timm's ``@register_model``.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from clip.model import CLIP, build_model, convert_weights

from ..data.images import CLIP_MEAN, CLIP_STD

from .names import OPENAI_FILES, OPEN_CLIP_PREFIX, BackboneError, canonical_name, default_cache_dir  # noqa: F401
from .names import resnet_key, vit_key
from .names import resolve_checkpoint as _resolve_checkpoint

OPENAI_MODELS = OPENAI_FILES
_REGISTRY: Dict[str, Callable[[], "CLIP"]] = {}


_TOKENIZERS: Dict[str, Callable] = {}


def register_backbone(name: str, tokenizer: Optional[Callable] = None):
    """Decorator registering ``fn() -> clip.model.CLIP`` under ``name`` (loaded in fp32), optionally with
    its own ``tokenizer(phrase) -> (1, 77) tokens``."""

    def deco(fn):
        _REGISTRY[name] = fn
        if tokenizer is not None:
            _TOKENIZERS[name] = tokenizer
        return fn

    return deco


def _builtin_registrations():
    from . import toy  # noqa: F401  (registers "toy")


def registered_backbones():
    _builtin_registrations()
    return sorted(_REGISTRY)


def available_backbones():
    return list(OPENAI_MODELS) + registered_backbones()


def resolve_checkpoint(name: str, cache_dir=None) -> Path:
    """Map a model name or path to an existing checkpoint file, or raise :class:`BackboneError`."""
    _builtin_registrations()
    return _resolve_checkpoint(name, cache_dir, registered=sorted(_REGISTRY))


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or n.endswith("/code/__torch__.py") or "/code/" in n
                       for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def read_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Read a CLIP state dict from an OpenAI TorchScript archive or a plain ``torch.save`` file.

    Plain files are read with ``weights_only=True`` (no code runs). ``clip.load(path)`` cannot read
    plain state dicts (an upstream EOFError), which is why this does not call it.
    """
    path = Path(path)
    try:
        if _is_torchscript(path):
            sd = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, not a checkpoint, pickle with code, ...
        raise BackboneError(f"Could not read CLIP checkpoint {path}: {type(e).__name__}: {e}") from e
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or "text_projection" not in sd:
        raise BackboneError(f"{path} is not a CLIP checkpoint (no 'text_projection' entry in its state dict).")
    return dict(sd)


def resolve_precision(precision: str, device: Union[str, torch.device]) -> torch.dtype:
    """``auto`` → fp16 on CUDA (as the reference runs), fp32 elsewhere.

    On CPU, ``bf16`` is an explicit opt-in (never the default: boxes may differ from fp32, see the
    pipeline benchmark; it is faster only on CPUs with native bf16 matrix units, e.g. AVX-512 BF16/AMX);
    fp16 on CPU is refused.
    """
    dev = torch.device(device)
    p = (precision or "auto").lower()
    if p == "auto":
        return torch.float16 if dev.type == "cuda" else torch.float32
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if p not in table:
        raise ValueError(f"precision must be one of auto, fp32, fp16, bf16; got {precision!r}")
    if dev.type == "cpu" and table[p] == torch.float16:
        raise ValueError(f"precision={precision} is for CUDA; on CPU use fp32 (or auto), or bf16 as an opt-in")
    return table[p]


class Backbone:
    """The backbone adapter: a loaded CLIP and everything a method needs to know about it.

    Methods use ``visual`` (the image tower), ``encode_text`` / ``encode_image``, ``kind``
    (``vit`` | ``resnet``), ``key`` (the paper-hyperparameter family: vit_b16, rn50x4, …),
    ``input_size``, ``mean`` / ``std`` and ``dtype`` — never the model library's classes.
    (A plain class, not a dataclass: Hydra's ``instantiate`` would turn a dataclass argument into a config.)
    """

    def __init__(self, name: str, model: Any, device, dtype: torch.dtype, source: Optional[str] = None,
                 library: str = "openai", mean: Tuple[float, ...] = CLIP_MEAN, std: Tuple[float, ...] = CLIP_STD,
                 tokenizer: Optional[Callable] = None, config_id: Optional[str] = None):
        self.name, self.model, self.device, self.dtype = name, model, torch.device(device), dtype
        self.config_id = config_id  # digest of the architecture config when it is not implied by the file
        self.source = source  # checkpoint path, if loaded from a file
        self.library, self.mean, self.std = library, tuple(mean), tuple(std)
        self.tokenizer = tokenizer  # phrase -> (1, context) token tensor; None: OpenAI's BPE

    def __repr__(self):
        return f"Backbone({self.name!r}, {self.library}, {self.kind}, {self.dtype}, {self.device})"

    @property
    def visual(self):
        return self.model.visual

    @property
    def kind(self) -> str:
        return "vit" if hasattr(self.visual, "conv1") and hasattr(self.visual, "class_embedding") else "resnet"

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
    def key(self) -> str:
        return backbone_key(self)

    def identity(self) -> tuple:
        """What the model's outputs depend on, cheaply: file path, size and mtime (or the registered name
        and a digest of its weights)."""
        if self.source:
            st = os.stat(self.source)
            ident = ("file", os.path.abspath(self.source), st.st_size, st.st_mtime_ns)
            return ident + (self.config_id,) if self.config_id else ident
        return ("registered", self.name, state_dict_digest(self.model))

    def tokenize(self, phrase: str) -> torch.Tensor:
        from .text import tokenize

        return (self.tokenizer or tokenize)(phrase)

    @torch.no_grad()
    def encode_text(self, phrase: str) -> torch.Tensor:
        """L2-normalised text embedding (1-D, fp32) of one phrase; over-long phrases are truncated."""
        tokens = self.tokenize(phrase).to(self.device)
        e = self.model.encode_text(tokens).float()[0]
        return e / e.norm()

    @torch.no_grad()
    def encode_text_empty(self) -> torch.Tensor:
        """L2-normalised embedding of the empty string (CLIP Surgery's redundant-feature estimate)."""
        from .text import tokenize

        tokens = (self.tokenizer or tokenize)("", allow_empty=True).to(self.device)
        e = self.model.encode_text(tokens).float()[0]
        return e / e.norm()

    @torch.no_grad()
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """CLIP image embeddings (N, E) of normalised images (N, 3, S, S), not normalised."""
        return self.model.encode_image(x.to(self.dtype))


def state_dict_digest(model_or_sd) -> str:
    """SHA-256 over names and fp32 bytes of a state dict (detects a changed tiny model)."""
    sd = model_or_sd.state_dict() if hasattr(model_or_sd, "state_dict") else model_or_sd
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def model_from_state_dict(sd: Dict[str, torch.Tensor]) -> CLIP:
    """``clip.model.build_model`` on a copy (it deletes keys), returned in fp32."""
    return build_model(dict(sd)).float()


def cast_to_precision(model: CLIP, dtype: torch.dtype) -> CLIP:
    """Reduced precision as OpenAI's ``clip.load`` runs on CUDA (and so the reference): convolutions,
    linear layers, attention projections and ``proj``/``text_projection`` in ``dtype``
    (:func:`clip.model.convert_weights`); LayerNorm, BatchNorm and the embeddings stay fp32 — CLIP's
    LayerNorm computes in fp32. ``bf16`` casts the same tensors to bfloat16."""
    model = model.float()
    if dtype == torch.float32:
        return model
    convert_weights(model)
    if dtype == torch.bfloat16:
        for t in [*model.parameters(), *model.buffers()]:
            if t.dtype == torch.float16:
                t.data = t.data.to(torch.bfloat16)
    elif dtype != torch.float16:
        raise ValueError(f"unsupported dtype {dtype}")
    return model


def load_backbone(name: Union[str, os.PathLike], *, device="cpu", precision: str = "auto",
                  cache_dir=None, pretrained: Optional[Union[str, os.PathLike]] = None) -> Backbone:
    """Load a CLIP backbone by OpenAI name or config key (``ViT-B/16`` = ``vit_b16``), registered name or
    checkpoint path; or an open_clip model: ``open_clip:ARCH`` with ``pretrained=FILE`` (ARCH an open_clip
    model name such as ``ViT-H-14`` or a model-config JSON path; see :mod:`.open_clip_backbone`)."""
    if str(name).startswith(OPEN_CLIP_PREFIX):
        from .open_clip_backbone import load_open_clip

        return load_open_clip(str(name)[len(OPEN_CLIP_PREFIX):], pretrained, device=device, precision=precision)
    if str(name).startswith("hf:") and pretrained is None:  # a transformers folder: grounding.models.hf_backbone
        from .hf_backbone import load_hf

        return load_hf(str(name)[3:], device=device, precision=precision)
    if pretrained is not None:
        raise BackboneError(f"pretrained={pretrained} is for open_clip backbones (backbone='open_clip:ARCH'); an "
                            f"OpenAI backbone {name!r} is a name or a checkpoint path by itself")
    name = canonical_name(name)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError(f"device={device} but torch sees no GPU (torch.cuda.is_available() is False); "
                            f"use device=cpu")
    dtype = resolve_precision(precision, dev)
    source = None
    _builtin_registrations()
    if name in _REGISTRY:
        model = _REGISTRY[name]().float()
    else:
        path = resolve_checkpoint(name, cache_dir)
        source = str(path)
        sd = read_state_dict(path)
        try:
            model = model_from_state_dict(sd)
        except Exception as e:
            raise BackboneError(f"{path}: state dict does not build a CLIP model: {e}") from e
    model = cast_to_precision(model.eval().requires_grad_(False).to(dev), dtype)
    return Backbone(name=name, model=model, device=dev, dtype=dtype, source=source, tokenizer=_TOKENIZERS.get(name))


def backbone_key(backbone: Backbone) -> str:
    """A short family key used to pick paper hyperparameters: vit_l14, vit_b16, vit_b32, rn50, vit_h14, …

    A function of the tower's geometry (:func:`~grounding.models.names.vit_key`,
    :func:`~grounding.models.names.resnet_key`), whichever library built it."""
    _builtin_registrations()
    if backbone.name in _REGISTRY:
        return backbone.name
    v = backbone.model.visual
    if backbone.kind == "vit":
        return vit_key(v.conv1.out_channels, backbone.patch_size, backbone.input_resolution)
    return resnet_key(v.layer1[0].conv1.in_channels, [len(v.layer1), len(v.layer2), len(v.layer3), len(v.layer4)])


__all__ = [
    "Backbone", "BackboneError", "OPENAI_MODELS", "available_backbones", "backbone_key", "default_cache_dir",
    "load_backbone", "model_from_state_dict", "read_state_dict", "register_backbone", "resolve_checkpoint",
    "resolve_precision",
    "cast_to_precision",
]
