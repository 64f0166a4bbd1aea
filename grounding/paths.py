"""Where the Hydra configuration lives (a leaf module: every layer may ask it)."""
from __future__ import annotations

import os
from pathlib import Path


def conf_dir() -> Path:
    """``$GROUNDING_CONF`` or the repository's conf/ (the package is installed editable)."""
    env = os.environ.get("GROUNDING_CONF")
    p = Path(env) if env else Path(__file__).resolve().parents[1] / "conf"
    if not (p / "config.yaml").is_file():
        raise FileNotFoundError(f"Hydra config folder not found at {p} (set GROUNDING_CONF)")
    return p
