"""On-disk cache of phrase-independent and per-phrase intermediate results, for sweeps and resumes.

What is cached (keyed by everything that affects it):
  * SLIC label maps per (image, map size, n_segments, compactness, sigma);
  * cosines per (backbone, image, feature parameters, precision, phrase) — region cosines for ViT,
    the per-pixel cosine map for ResNet.
So an α × σ sweep recomputes only φ, the score map and the box search.

Entries are ``.npz`` files written atomically, each carrying a SHA-256 of its arrays; an entry that
fails to load or verify is deleted and recomputed. ``max_bytes`` bounds the folder (least recently
used entries are evicted).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

log = logging.getLogger(__name__)

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
          "t": 1 << 40, "tb": 1 << 40}


def parse_size(v: Union[int, str, None]) -> Optional[int]:
    """``"20GB"`` → bytes; ``None``/``0`` → unbounded."""
    if v in (None, 0, "", "none", "None"):
        return None
    if isinstance(v, (int, float)):
        return int(v)
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(v))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot parse size {v!r} (e.g. 500MB, 20GB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def make_key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _digest(arrays: Dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class FeatureCache:
    """A folder of verified ``.npz`` entries with an optional size bound."""

    def __init__(self, root: Union[str, os.PathLike], max_bytes=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = parse_size(max_bytes)
        self.hits = self.misses = self.corrupt = 0
        self._since_evict = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def has(self, key: str) -> bool:
        """Whether an entry exists (cheap: no read, no checksum)."""
        return self._path(key).is_file()

    def get(self, key: str) -> Optional[Dict[str, np.ndarray]]:
        p = self._path(key)
        if not p.exists():
            self.misses += 1
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files if k != "__digest__"}
                stored = str(z["__digest__"])
            if stored != _digest(arrays):
                raise ValueError("digest mismatch")
        except Exception as e:  # truncated, corrupt, or tampered entry
            log.warning("cache entry %s is unreadable (%s); recomputing", p, e)
            self.corrupt += 1
            self.misses += 1
            p.unlink(missing_ok=True)
            return None
        self.hits += 1
        try:
            os.utime(p)  # recency for LRU eviction
        except OSError:
            pass
        return arrays

    def put(self, key: str, **arrays: np.ndarray) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, __digest__=np.array(_digest(arrays)), **arrays)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, p)
        self._since_evict += 1
        if self.max_bytes and self._since_evict >= 50:
            self.evict()

    def evict(self) -> int:
        """Delete least recently used entries until the folder fits ``max_bytes``; returns how many."""
        self._since_evict = 0
        if not self.max_bytes:
            return 0
        files = [(f.stat().st_mtime, f.stat().st_size, f) for f in self.root.glob("*/*.npz")]
        total = sum(s for _, s, _ in files)
        removed = 0
        for _, size, f in sorted(files):
            if total <= self.max_bytes:
                break
            f.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    def stats(self) -> Dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt}
