"""The backbone-library contract: what a model library supplies, and what the loaded backbone offers methods.

A *backbone library* (OpenAI ``clip``, open_clip, a checkpoint file, the analytic toy, builders registered in
code, and next Hugging Face ``transformers``) is ONE module — or any object — with five functions. Nothing
outside it names the library: ``api``, ``cli``, ``config``, ``evaluate``, ``runner`` and ``tables`` go through
:mod:`grounding.models.registry`, which maps a library name to the module path and imports it only when
asked (as timm's ``_registry.py``; libraries never import the registry's users, nor each other)::

    parse(spec: str, **options) -> dict
        The backbone config node (the keys of its ``conf/backbone/*.yaml``, ``library`` included) of an API
        string, with the ``NAME:`` prefix removed (``"open_clip:ViT-H-14"`` → ``parse("ViT-H-14",
        pretrained=FILE)``). ``options`` are the API's keyword options that are not None (``pretrained``,
        ``cache_dir``); one the library does not take is refused in one line.
    describe(cfg: Mapping) -> {"key": str, "kind": "vit" | "resnet"}
        Torch-free facts of a config node, for YAMLs that derive them (``key: ${backbone:key}``) and for
        preflight: ``key`` is the paper-hyperparameter key — the OpenAI-equivalent geometry (``vit_b16``,
        ``vit_l14_336``, ``rn50x4``; larger towers ``vit_h14``, ``vit_bigg14`` borrow values, see
        :mod:`grounding.methods.hparams`) or a key of the library's own (``toy``).
    preflight(cfg: Mapping, files: bool = True) -> None
        Cheap checks before torch is imported or any model loads: the spec is complete and known; with
        ``files``, the weights file/folder exists. Raises :class:`~grounding.models.names.BackboneError` (or
        ``ConfigError``) with ONE line naming the config key / path and the fix.
    load(cfg: Mapping, *, device, precision: str) -> adapter
        The loaded backbone (below). Weights are never downloaded and are read without running code
        (safetensors, ``torch.load(weights_only=True)``). ``precision``: auto | fp32 | fp16 | bf16
        (:func:`grounding.models.adapter.resolve_precision`).
    label(cfg: Mapping) -> str
        How tables name the backbone: the ``key`` for the reference weights (OpenAI's), otherwise something
        that also names the weights (``vit_b16 (open_clip ViT-B-16, laion.bin)``), so two libraries' or two
        trainings' weights never share a table cell.

Presets are data: ``conf/backbone/NAME.yaml`` with ``library: NAME`` and either literal ``key``/``kind`` (paper
hyperparameters then compose in, ``hparams/<method>/<preset>_<family>``) or ``key: ${backbone:key}`` /
``kind: ${backbone:kind}`` (derived by ``describe``; the method fills its defaults from the loaded key).

**The loaded backbone (adapter)** — :class:`grounding.models.adapter.Backbone`, or any object with these names
(duck-typed; methods and the runner use nothing else):

* ``name``, ``device``, ``dtype``; ``identity()`` → a JSON-able tuple of what outputs depend on (weights file
  path, size and mtime, plus a config digest; or a digest of the weights) — the run identity and the feature
  cache key.
* capability facts: ``kind`` (``vit`` | ``resnet``), ``key`` (as ``describe``), ``input_size`` (square side,
  px), ``patch_size`` (ViT; None for ResNets), ``mean`` / ``std`` (input normalisation), ``has_class_token``
  (False e.g. for SigLIP: methods that read the class token refuse such a backbone by name), ``logit_scale``.
* ``visual``: the image tower. A ViT tower exposes the CLIP layout that :mod:`grounding.models.vit` (and
  ours-ViT) operate on — ``conv1`` (the patch stem: ``weight``, ``kernel_size``), ``class_embedding`` (None
  when there is no class token), ``positional_embedding`` (tokens × D), ``ln_pre``,
  ``transformer.resblocks`` (blocks with ``ln_1``, ``attn`` with ``in_proj_weight``/``in_proj_bias``/
  ``num_heads``/``out_proj``, ``ln_2``, ``mlp``, optional ``ls_1``/``ls_2``), ``ln_post``, ``proj`` (or None).
  A library whose model names these differently hands over a *view* with these names over its own weights
  (no copy). A ResNet tower exposes CLIP's ModifiedResNet names (``conv1..3``, ``bn1..3``, ``avgpool``,
  ``layer1..4``, ``attnpool`` with ``v_proj``/``c_proj``).
* text side: ``tokenize(phrase, allow_empty=False)`` → (1, context) token ids (over-long phrases truncated with
  a warning, empty ones refused unless ``allow_empty``); ``end_token_index(tokens)`` → where the phrase's
  embedding is read (OpenAI's BPE: the argmax id; a tokenizer that pads with the end token: its first
  occurrence); ``encode_text(phrase)`` → L2-normalised 1-D fp32 embedding; ``encode_text_empty()`` (the empty
  string's); ``encode_image(x)`` → (N, E) embeddings of normalised (N, 3, S, S) images.

**How to add a library** (e.g. ``hf``): write ``grounding/models/hf_backbone.py`` with the five functions (its
``load`` builds the adapter, e.g. ``adapter.Backbone(name, model, device, dtype, source=…, library="hf",
mean=…, std=…, tokenizer=…, key=…)`` whose ``model`` has ``visual``/``encode_text``/``encode_image``), add
``conf/backbone/hf*.yaml`` (``library: hf``), and tests. The registry finds ``grounding.models.<NAME>_backbone``
by convention for ``library: NAME`` and for API strings ``"NAME:…"``; an out-of-tree library calls
:func:`grounding.models.registry.register_library` with its object or module path.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Protocol, runtime_checkable

REQUIRED = ("parse", "describe", "preflight", "load", "label")
ADAPTER_REQUIRED = ("name", "device", "dtype", "identity", "kind", "key", "input_size", "mean", "std", "visual",
                    "encode_text", "encode_image")


@runtime_checkable
class BackboneLibrary(Protocol):
    """The five functions of a backbone library (see the module docstring for the contract)."""

    def parse(self, spec: str, **options: Any) -> Dict[str, Any]: ...

    def describe(self, cfg: Mapping[str, Any]) -> Dict[str, str]: ...

    def preflight(self, cfg: Mapping[str, Any], files: bool = True) -> None: ...

    def load(self, cfg: Mapping[str, Any], *, device: Any, precision: str) -> Any: ...

    def label(self, cfg: Mapping[str, Any]) -> str: ...


def missing_functions(obj: Any) -> list:
    """The contract's functions ``obj`` lacks (empty: it is a backbone library)."""
    return [f for f in REQUIRED if not callable(getattr(obj, f, None))]


def missing_facts(adapter: Any) -> list:
    """The adapter names (module docstring) a loaded backbone lacks."""
    return [a for a in ADAPTER_REQUIRED if not hasattr(adapter, a)]


__all__ = ["ADAPTER_REQUIRED", "BackboneLibrary", "REQUIRED", "missing_facts", "missing_functions"]
