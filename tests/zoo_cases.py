"""The training-free ("zoo") goldens, read once for every zoo test.

Each ``tests/golden/zoo_<method>.{json,npz}`` was written by ``scripts/zoo_parity/<method>.py`` running the
authors' repository on the same tiny random CLIPs. The scripts of two authors' generations store their arrays
in two layouts, both read here:

* keyed (maskclip, sclip, clearclip, naclip): ``tokens_<model>_<image>``, ``map_<key>``, ``box_hier_<key>``,
  ``box_exact_<key>`` with ``key`` = ``<model>_<image>_<phrase index>`` in each case of the json;
* indexed (clip_surgery, gem): ``tokens_<i>``, ``map_<i>`` for the i-th case of the json, boxes in the json.

and two layouts of ``models`` in the json (the tiny_clip keywords flat beside ``digest``, or under
``tiny_clip``). :func:`cases` gives both as the same :class:`Case` rows.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List

import numpy as np
import torch
import torch.nn.functional as F

GOLDEN = Path(__file__).resolve().parent / "golden"
ZOO = ["maskclip", "sclip", "clearclip", "naclip", "gem", "clip_surgery"]


@lru_cache(maxsize=None)
def meta(method: str) -> dict:
    return json.loads((GOLDEN / f"zoo_{method}.json").read_text())


@lru_cache(maxsize=None)
def arrays(method: str):
    return np.load(GOLDEN / f"zoo_{method}.npz")


def module(method: str):
    """``grounding.methods.<method>`` (patch_tokens, DEFAULTS, TEXT_MODE)."""
    return importlib.import_module(f"grounding.methods.{method}")


def rerun(method: str) -> str:
    return f"regenerate with: {meta(method)['command']}"


def model_spec(method: str, model: str) -> dict:
    """The ``tiny_clip`` keywords of a golden's model, from either json layout."""
    spec = dict(meta(method)["models"][model])
    spec.pop("digest")
    spec = spec.get("tiny_clip", spec)
    return {"kind": "vit", **spec}


@lru_cache(maxsize=None)
def _tiny(spec: tuple):
    from grounding.models.random import tiny_clip

    return tiny_clip(**dict(spec))


def tiny_model(method: str, model: str):
    """The golden's tiny CLIP (shared between methods with the same spec), checked against its digest."""
    from grounding.models.backbones import state_dict_digest

    m = _tiny(tuple(sorted(model_spec(method, model).items())))
    digest = meta(method)["models"][model]["digest"]
    assert state_dict_digest(m) == digest, f"tiny model {model} changed since zoo_{method}.json; {rerun(method)}"
    return m


@lru_cache(maxsize=None)
def image_array(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


@lru_cache(maxsize=None)
def image_tensor(name: str) -> torch.Tensor:
    """The golden scripts' input: skimage image → square 224 → CLIP-normalised (1, 3, 224, 224)."""
    from grounding.data.images import preprocess, resize_square, to_pil_rgb

    return preprocess(resize_square(to_pil_rgb(image_array(name)), 224), 224, "cpu")


@dataclass(frozen=True)
class Case:
    method: str
    index: int
    key: str  # the case's name in assertion messages (json "key", else its index)
    model: str
    image: str
    phrase: str
    tokens_key: str
    map_key: str
    box_hierarchical: list
    box_exact: list


def cases(method: str) -> List[Case]:
    """Every (model, image, phrase) case of a golden, from either npz layout."""
    arr, out = arrays(method), []
    for i, c in enumerate(meta(method)["cases"]):
        if "key" in c:  # keyed layout
            key = c["key"]
            tok, mp = f"tokens_{c['model']}_{c['image']}", f"map_{key}"
            hier = c.get("box_hierarchical") or arr[f"box_hier_{key}"].tolist()
            exact = c.get("box_exact") or arr[f"box_exact_{key}"].tolist()
        else:  # indexed layout
            key, tok, mp, hier, exact = str(i), f"tokens_{i}", f"map_{i}", c["box_hierarchical"], c["box_exact"]
        out.append(Case(method, i, key, c["model"], c["image"], c["phrase"], tok, mp, list(hier), list(exact)))
    return out


def golden_tokens(method: str, model: str, image: str) -> np.ndarray:
    """The authors' L2-normalised patch tokens (g², E) for one model and image."""
    c = next(c for c in cases(method) if (c.model, c.image) == (model, image))
    return arrays(method)[c.tokens_key]


def model_images(method: str) -> List[tuple]:
    """The distinct (model, image) pairs of a golden, in case order."""
    return list(dict.fromkeys((c.model, c.image) for c in cases(method)))


@torch.no_grad()
def our_tokens(method: str, visual, image: str, **knobs) -> np.ndarray:
    """Our L2-normalised patch tokens (g², E) with the module's defaults (overridden by ``knobs``)."""
    mod = module(method)
    t = mod.patch_tokens(visual, image_tensor(image), **{**mod.DEFAULTS, **knobs})[0]
    return F.normalize(t, dim=-1).numpy()


def tiny_attention():
    """One attention layer (width 128, 2 heads) of a tiny CLIP, for oracle checks of a method's attention."""
    from grounding.models.random import tiny_clip

    return tiny_clip("vit", patch_size=32, seed=0, vision_layers=1, vision_width=128, embed_dim=32).visual \
        .transformer.resblocks[0].attn
