"""Shared bits of the benchmark scripts: device description and the plain "no GPU" report."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

NO_GPU = ("no GPU on this machine (torch.cuda.is_available() is False): nothing was measured. "
          "Run this on a CUDA machine, or pass --device cpu for a CPU measurement.\n")


def missing_gpu(device: str, out: Path) -> bool:
    """True (after saying so on stdout and in ``out``) when CUDA was asked for and there is none."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        print(NO_GPU)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(NO_GPU)
        return True
    return False


def device_label(device) -> str:
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU {platform.machine()} ({torch.get_num_threads()} threads)"
