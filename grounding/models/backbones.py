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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import torch
import clip  # noqa: E402  (OpenAI's package; imports pkg_resources, hence setuptools<82)
from clip.model import CLIP, VisionTransformer, build_model, convert_weights

# OpenAI CLIP names → file name in the clip cache (the basename of the official URL).
OPENAI_MODELS: Dict[str, str] = {name: url.rsplit("/", 1)[-1] for name, url in clip.clip._MODELS.items()}
CACHE_ENV = "GROUNDING_CLIP_CACHE"

_REGISTRY: Dict[str, Callable[[], "CLIP"]] = {}


def register_backbone(name: str):
    """Decorator registering ``fn() -> clip.model.CLIP`` under ``name`` (loaded in fp32)."""

    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


def _builtin_registrations():
    from . import toy  # noqa: F401  (registers "toy")


def registered_backbones():
    _builtin_registrations()
    return sorted(_REGISTRY)


def available_backbones():
    return list(OPENAI_MODELS) + registered_backbones()


def default_cache_dir(cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """Argument > $GROUNDING_CLIP_CACHE > ~/.cache/clip (where OpenAI's package stores weights)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/clip").expanduser()


class BackboneError(RuntimeError):
    """A backbone could not be found or read; the message says which file and why."""


def resolve_checkpoint(name: str, cache_dir=None) -> Path:
    """Map a model name or path to an existing checkpoint file, or raise :class:`BackboneError`."""
    if name in OPENAI_MODELS:
        path = default_cache_dir(cache_dir) / OPENAI_MODELS[name]
        if not path.is_file():
            raise BackboneError(
                f"CLIP weights for {name!r} not found at {path}. This harness never downloads weights. "
                f"Obtain the file on a machine with internet access with "
                f"`python -c \"import clip; clip.load('{name}', device='cpu')\"` (it saves to "
                f"~/.cache/clip/{OPENAI_MODELS[name]}) or from {clip.clip._MODELS[name]}, then copy it to "
                f"{path}, or point ${CACHE_ENV} / backbone.cache_dir at the folder holding it."
            )
        return path
    path = Path(str(name)).expanduser()
    if path.is_file():
        return path
    raise BackboneError(
        f"Backbone {name!r} is neither a known model name ({', '.join(available_backbones())}) "
        f"nor an existing checkpoint file."
    )


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


@dataclass
class Backbone:
    """A loaded CLIP plus what the dense-feature stage needs to know about it."""

    name: str
    model: CLIP
    device: torch.device
    dtype: torch.dtype

    @property
    def kind(self) -> str:
        return "vit" if isinstance(self.model.visual, VisionTransformer) else "resnet"

    @property
    def input_resolution(self) -> int:
        return int(self.model.visual.input_resolution)

    @property
    def patch_size(self) -> Optional[int]:
        return int(self.model.visual.conv1.kernel_size[0]) if self.kind == "vit" else None

    source: Optional[str] = None  # checkpoint path, if loaded from a file

    def identity(self) -> tuple:
        """What the model's outputs depend on, cheaply: file path, size and mtime (or the registered name
        and a digest of its weights)."""
        if self.source:
            st = os.stat(self.source)
            return ("file", os.path.abspath(self.source), st.st_size, st.st_mtime_ns)
        return ("registered", self.name, state_dict_digest(self.model))

    @torch.no_grad()
    def encode_text(self, phrase: str) -> torch.Tensor:
        """L2-normalised text embedding (1-D, fp32) of one phrase; over-long phrases are truncated."""
        from .text import tokenize

        tokens = tokenize(phrase).to(self.device)
        e = self.model.encode_text(tokens).float()[0]
        return e / e.norm()


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
                  cache_dir=None) -> Backbone:
    """Load a CLIP backbone by OpenAI name, registered name or checkpoint path."""
    name = str(name)
    dev = torch.device(device)
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
    return Backbone(name=name, model=model, device=dev, dtype=dtype, source=source)


def backbone_key(backbone: Backbone) -> str:
    """A short family key used to pick paper hyperparameters: vit_l14, vit_b16, vit_b32, rn50, …"""
    _builtin_registrations()
    if backbone.name in _REGISTRY:
        return backbone.name
    v = backbone.model.visual
    if backbone.kind == "vit":
        p = backbone.patch_size
        width = v.conv1.out_channels
        size = "l" if width >= 1024 else "b"
        res = "" if backbone.input_resolution == 224 else f"_{backbone.input_resolution}"
        return f"vit_{size}{p}{res}"
    width = v.layer1[0].conv1.in_channels  # = `width` of ModifiedResNet
    if width == 64:
        return "rn101" if len(v.layer3) > 6 else "rn50"
    return {80: "rn50x4", 96: "rn50x16", 128: "rn50x64"}.get(width, "rn50")


__all__ = [
    "Backbone", "BackboneError", "OPENAI_MODELS", "available_backbones", "backbone_key", "default_cache_dir",
    "load_backbone", "model_from_state_dict", "read_state_dict", "register_backbone", "resolve_checkpoint",
    "resolve_precision",
    "cast_to_precision",
]
