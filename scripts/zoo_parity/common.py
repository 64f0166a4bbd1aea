"""What every zoo golden script shares: the cases, the input images, the zoo contract's score map and box
search, and the golden files. Each ``scripts/zoo_parity/<method>.py`` keeps only how it runs its authors' code.

Imported as a sibling module (the scripts run as ``python scripts/zoo_parity/NAME.py``, so this folder is on
``sys.path``); importing it also puts the project root on ``sys.path`` so that ``grounding`` is importable.

The contract, written here independently of ``grounding``'s own pipeline: L2-normalised patch tokens ·
L2-normalised text embedding on the g×g grid → bilinear upsample to 224×224 (align_corners=False) →
φ = exp(cos/σ) → (φ − min)/(max − min + 1e-8). Boxes: ``grounding.stages.box_search.search_box``
(hierarchical and exact) with α. Two numerically equivalent implementations of the map exist because the
committed goldens were written with both (float32 with a max shift: :func:`contract_map`; float64:
:func:`contract_map_f64`); each script keeps the one its golden was made with, so reruns stay bit-identical.

Two golden layouts exist as well (see tests/zoo_cases.py, which reads both): keyed arrays
(:func:`add_keyed_case`) and indexed arrays (:func:`add_indexed_case`).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import clip  # noqa: E402  (OpenAI's package, for tokenize / the tiny models' text tower)
from grounding.data.images import preprocess, resize_square, to_pil_rgb  # noqa: E402
from grounding.models.backbones import state_dict_digest  # noqa: E402
from grounding.models.random import tiny_clip  # noqa: E402
from grounding.stages.box_search import search_box  # noqa: E402

MODELS = {
    "b32": dict(patch_size=32, seed=101, vision_layers=8, vision_width=128, embed_dim=64),
    "b16": dict(patch_size=16, seed=102, vision_layers=8, vision_width=128, embed_dim=64),
}
IMAGES = ("astronaut", "camera")
PHRASES = ("a woman in a space suit", "the sky")
SIGMA = 0.01
ALPHA = 0.8
SIZE = 224


# ------------------------------------------------------------------------------------- inputs


def tiny(model_key: str):
    """The tiny random CLIP of a case model ("b32" / "b16")."""
    return tiny_clip("vit", **MODELS[model_key])


def models_meta(digests: dict, nested: bool = False) -> dict:
    """The json's ``models`` record: the tiny_clip keywords flat beside ``digest``, or (``nested``) under
    ``tiny_clip`` with ``kind``, as the CLIP Surgery / GEM goldens store them."""
    if not nested:
        return {k: dict(spec, digest=digests[k]) for k, spec in MODELS.items()}
    order = ("vision_layers", "vision_width", "embed_dim", "patch_size", "seed")
    return {k: dict(tiny_clip=dict(kind="vit", **{o: spec[o] for o in order}), digest=digests[k])
            for k, spec in MODELS.items()}


def case_tensor(image: str) -> torch.Tensor:
    """skimage image → square 224 → CLIP-normalised (1, 3, 224, 224)."""
    import skimage.data

    pil = to_pil_rgb(getattr(skimage.data, image)())
    return preprocess(resize_square(pil, SIZE), SIZE, "cpu")


def text_embedding(model, phrase: str) -> torch.Tensor:
    """L2-normalised ``encode_text(clip.tokenize(phrase))`` of OpenAI ``clip`` on the tiny model (no template)."""
    with torch.no_grad():
        t = model.encode_text(clip.tokenize([phrase])).float()[0]
    return t / t.norm()


def unit(t: torch.Tensor) -> torch.Tensor:
    """L2-normalised over the last dimension."""
    return t / t.norm(dim=-1, keepdim=True)


# ------------------------------------------------------------------------------------- the contract


def contract_map(tokens: torch.Tensor, text: torch.Tensor):
    """tokens (g², E) L2-normalised, text (E,) → (224×224 float32 map, constant?)."""
    g = int(round(tokens.shape[0] ** 0.5))
    cos = (tokens.double() @ text.double()).float().reshape(1, 1, g, g)
    return contract_map_from_cos(cos)


def contract_map_from_cos(cos: torch.Tensor):
    """cos (1, 1, g, g) → (224×224 float32 map, constant?); φ in float32, shifted by its max when cos/σ > 80
    (which min–max leaves unchanged)."""
    up = F.interpolate(cos.float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0].numpy()
    z = up.astype(np.float32) / np.float32(SIGMA)
    if float(z.max()) > 80.0:
        z = z - z.max()
    phi = np.exp(z).astype(np.float32)
    lo, hi = phi.min(), phi.max()
    return ((phi - lo) / (hi - lo + np.float32(1e-8))).astype(np.float32), bool(hi - lo < 1e-6 * max(hi, 1e-30))


def contract_map_f64(cos_grid: np.ndarray) -> np.ndarray:
    """g×g cosines → bilinear 224×224 (align_corners=False) → exp(cos/σ) → min–max, φ in float64."""
    t = torch.as_tensor(cos_grid, dtype=torch.float32)[None, None]
    up = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0].double()
    phi = torch.exp(up / SIGMA)
    return ((phi - phi.min()) / (phi.max() - phi.min() + 1e-8)).float().numpy()


def boxes(m: np.ndarray) -> dict:
    """The hierarchical and exact box of a score map, as int lists."""
    return {meth: [int(v) for v in search_box(m, ALPHA, method=meth)] for meth in ("hierarchical", "exact")}


# ------------------------------------------------------------------------------------- golden layouts


def add_keyed_case(arrays: dict, cases: list, model: str, image: str, pi: int, m: np.ndarray, constant: bool):
    """Keyed layout: ``map_<key>``, ``box_hier_<key>``, ``box_exact_<key>`` with key ``<model>_<image>_<pi>``,
    and the case (with its key) in ``cases``. (The caller stores ``tokens_<model>_<image>``.)"""
    key = f"{model}_{image}_{pi}"
    b = boxes(m)
    arrays[f"map_{key}"] = m
    arrays[f"box_hier_{key}"] = np.asarray(b["hierarchical"], dtype=np.int64)
    arrays[f"box_exact_{key}"] = np.asarray(b["exact"], dtype=np.int64)
    cases.append(dict(key=key, model=model, image=image, phrase=PHRASES[pi], constant_map=constant,
                      box_hierarchical=b["hierarchical"], box_exact=b["exact"]))
    print(f"{key}: {PHRASES[pi]!r} hier={b['hierarchical']} exact={b['exact']}"
          + (" (constant map)" if constant else ""), flush=True)


def add_keyed_image(arrays: dict, cases: list, model: str, image: str, tok: torch.Tensor, texts: dict):
    """Keyed layout, one (model, image): the authors' L2-normalised tokens (g², E) and a case per phrase,
    its map computed from ``tok`` · ``texts[phrase]``."""
    arrays[f"tokens_{model}_{image}"] = tok.numpy().astype(np.float32)
    for pi, phrase in enumerate(PHRASES):
        m, constant = contract_map(tok, texts[phrase])
        add_keyed_case(arrays, cases, model, image, pi, m, constant)


def add_indexed_case(arrays: dict, cases: list, model: str, image: str, phrase: str, tokens: np.ndarray,
                     cos: np.ndarray):
    """Indexed layout: ``tokens_<i>`` (the authors' normalised patch tokens) and ``map_<i>`` (from the g×g
    cosine grid ``cos``) for the i-th case; boxes only in the json."""
    m = contract_map_f64(cos)
    i = len(cases)
    b = boxes(m)
    arrays[f"tokens_{i}"] = tokens.astype(np.float32)
    arrays[f"map_{i}"] = m
    cases.append(dict(model=model, image=image, phrase=phrase, grid=cos.shape[0], box_hierarchical=b["hierarchical"],
                      box_exact=b["exact"], constant_map=bool(np.ptp(cos) == 0)))
    print(f"case {i}: {model} {image} {phrase!r} -> {b}", flush=True)


def run_keyed(build_ref, tokens):
    """The loop of the keyed-layout scripts whose authors' code gives tokens (ClearCLIP, NACLIP, SCLIP): per
    case model, ``ref = build_ref(ours)`` (the authors' model from our tiny CLIP); per image,
    ``tokens(ref, x)`` under ``torch.no_grad()`` → the authors' L2-normalised patch tokens (g², E); the maps
    from OpenAI ``clip`` text embeddings. Returns (arrays, cases, digests)."""
    arrays, cases, digests = {}, [], {}
    for mname in MODELS:
        ours = tiny(mname)
        digests[mname] = state_dict_digest(ours)
        ref = build_ref(ours)
        texts = {p: text_embedding(ours, p) for p in PHRASES}
        for image in IMAGES:
            with torch.no_grad():
                tok = tokens(ref, case_tensor(image))
            add_keyed_image(arrays, cases, mname, image, tok, texts)
    return arrays, cases, digests


def keyed_meta(name: str, repo: str, commit: str, authors_call: str, digests: dict, cases: list, command: str,
               **extra) -> dict:
    """The json of a keyed-layout golden (``extra`` fields go after ``authors_call``)."""
    return dict(method=name, repo=repo, commit=commit, authors_call=authors_call, **extra,
                models=models_meta(digests), images=list(IMAGES), phrases=list(PHRASES), sigma=SIGMA, alpha=ALPHA,
                cases=cases, command=command)


# ------------------------------------------------------------------------------------- command line, files


def parser(doc: str, repo_help: str) -> argparse.ArgumentParser:
    """--repo-dir (the authors' checkout), --commit, --out (default tests/golden)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo-dir", required=True, help=repo_help)
    ap.add_argument("--commit", default=None, help="commit sha of the checkout (read with git when omitted)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden"))
    return ap


def repo_commit(repo: Path, given, unknown: str = "unknown (pass --commit)") -> str:
    """``given``, else the checkout's HEAD, else ``unknown``."""
    if given:
        return given
    try:
        return subprocess.check_output(["git", "-C", str(repo), "rev-parse", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return unknown


def out_dir(args) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_golden(out: Path, name: str, arrays: dict, meta: dict):
    """``zoo_<name>.npz`` (compressed) and ``zoo_<name>.json``."""
    np.savez_compressed(out / f"zoo_{name}.npz", **arrays)
    (out / f"zoo_{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(meta['cases'])} cases to {out}")
