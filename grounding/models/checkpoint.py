"""Backbone library ``checkpoint``: an OpenAI-format CLIP file (TorchScript archive or ``torch.save`` state
dict) at a path, built with ``clip.model.build_model``. Also the loader the ``openai`` library uses."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Union

from .names import BackboneError, resolve_checkpoint

NAME = "checkpoint"


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or n.endswith("/code/__torch__.py") or "/code/" in n
                       for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def read_state_dict(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a CLIP state dict from an OpenAI TorchScript archive or a plain ``torch.save`` file.

    Plain files are read with ``weights_only=True`` (no code runs). ``clip.load(path)`` cannot read
    plain state dicts (an upstream EOFError), which is why this does not call it.
    """
    import torch

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


def model_from_state_dict(sd):
    """``clip.model.build_model`` on a copy (it deletes keys), returned in fp32."""
    from clip.model import build_model

    return build_model(dict(sd)).float()


def cast_to_precision(model, dtype):
    """Reduced precision as OpenAI's ``clip.load`` runs on CUDA (and so the reference): convolutions,
    linear layers, attention projections and ``proj``/``text_projection`` in ``dtype``
    (:func:`clip.model.convert_weights`); LayerNorm, BatchNorm and the embeddings stay fp32 — CLIP's
    LayerNorm computes in fp32. ``bf16`` casts the same tensors to bfloat16."""
    import torch
    from clip.model import convert_weights

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


def load_model(model, name: str, *, device, precision: str, source=None, key=None, tokenizer=None,
               library: str = "openai"):
    """An fp32 ``clip.model.CLIP`` → the adapter, on ``device`` in ``precision`` (OpenAI's casting)."""
    from .adapter import Backbone, resolve_precision
    from .placement import check_device

    dev = check_device(device)
    dtype = resolve_precision(precision, dev)
    model = cast_to_precision(model.eval().requires_grad_(False).to(dev), dtype)
    return Backbone(name=name, model=model, device=dev, dtype=dtype, source=source, tokenizer=tokenizer, key=key,
                    library=library)


def load_file(path, name: str, *, device, precision: str, library: str = "openai"):
    """Read, build and cast the checkpoint at ``path`` (an existing file)."""
    from .placement import check_device

    check_device(device)
    sd = read_state_dict(path)
    try:
        model = model_from_state_dict(sd)
    except Exception as e:
        raise BackboneError(f"{path}: state dict does not build a CLIP model: {e}") from e
    return load_model(model, name, device=device, precision=precision, source=str(path), library=library)


# ------------------------------------------------------------------ the library contract
def parse(spec: str, **options) -> Dict[str, Any]:
    if options:
        raise BackboneError(f"{', '.join(f'{k}={v}' for k, v in options.items())} does not apply to a checkpoint "
                            f"file ({spec}): it is a whole OpenAI-format CLIP by itself")
    return {"library": NAME, "name": str(spec)}


def describe(cfg: Mapping) -> Dict[str, str]:
    raise BackboneError(f"backbone.library={NAME}: key and kind of {cfg.get('name')} are known once it loads; "
                        f"give backbone.key and backbone.kind")


def preflight(cfg: Mapping, files: bool = True) -> None:
    if files:
        resolve_checkpoint(cfg.get("name"), cfg.get("cache_dir"))


def load(cfg: Mapping, *, device="cpu", precision: str = "auto"):
    path = resolve_checkpoint(cfg.get("name"), cfg.get("cache_dir"))
    return load_file(path, str(cfg.get("name")), device=device, precision=precision, library=NAME)


def label(cfg: Mapping) -> str:
    return str(cfg.get("key") or Path(str(cfg.get("name"))).name)
