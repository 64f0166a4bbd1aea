"""Where and in what precision a model runs: the one check of ``device`` and the one of ``precision``, used by
the config preflight (before any model loads) and by every backbone library when it loads."""
from __future__ import annotations

from ..errors import ConfigError

# accepted spellings → torch dtype name; auto is resolved per device by :func:`check_precision`
PRECISIONS = {"fp32": "float32", "float32": "float32", "fp16": "float16", "float16": "float16",
              "bf16": "bfloat16", "bfloat16": "bfloat16"}


def device_type(device) -> str:
    """``cuda:1`` → ``cuda`` (torch-free)."""
    return str(getattr(device, "type", None) or device or "cpu").split(":")[0]


def check_precision(precision, device) -> str:
    """The torch dtype name a model runs in (``float32`` | ``float16`` | ``bfloat16``), or a one-line
    :class:`ConfigError`. ``auto`` → fp16 on CUDA (as the reference runs), fp32 elsewhere. On CPU, ``bf16`` is
    an explicit opt-in (never the default: boxes may differ from fp32, see the pipeline benchmark; it is faster
    only on CPUs with native bf16 matrix units, e.g. AVX-512 BF16/AMX); fp16 on CPU is refused. Torch-free."""
    p = str(precision or "auto").lower()
    cuda = device_type(device) == "cuda"
    if p == "auto":
        return "float16" if cuda else "float32"
    if p not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected auto, fp32, fp16 or bf16")
    if PRECISIONS[p] == "float16" and device_type(device) == "cpu":
        raise ConfigError(f"precision={precision} is for CUDA; on CPU use fp32 (or auto), or bf16 as an opt-in")
    return PRECISIONS[p]


def check_device(device):
    """``device`` as a ``torch.device``, or a one-line :class:`ConfigError`: not a device torch knows, or CUDA
    asked for where torch sees no GPU."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device={device!r}: expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device} but torch sees no GPU (torch.cuda.is_available() is False); "
                          f"use device=cpu")
    return dev
