"""Hugging Face transformers backbones: the same weights as a transformers folder and through OpenAI's clip give
the same maps and boxes; a tiny random SiglipModel runs the six training-free methods.

transformers 5 ships no OpenAI→transformers converter (``convert_clip_original_pytorch_to_hf.py`` is not in the
wheel), so :func:`openai_to_hf_state_dict` is the documented key mapping; ``test_key_mapping_is_checked`` holds it
to transformers' own ``CLIPModel.get_image_features`` / ``get_text_features`` against OpenAI's
``encode_image`` / ``encode_text``. The folder is written by ``save_pretrained`` (model, CLIPTokenizer built from
the installed ``clip`` package's BPE file, CLIPImageProcessor) and loaded back through ``hf:DIR``.
"""
import gzip
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from grounding import Localizer, localize
from grounding.data.images import CLIP_MEAN, CLIP_STD
from grounding.methods.base import method_class, registered_methods
from grounding.methods.resnet_dense import OursResNet
from grounding.models.backbones import Backbone, BackboneError, load_backbone
from grounding.models.random import tiny_clip
from conftest import make_flickr_split
from proposal_cases import assert_same_map, localize_both

transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
TINY = {"vit32": dict(kind="vit", patch_size=32, seed=41, vision_layers=2, vision_width=64, embed_dim=32),
        "vit16": dict(kind="vit", patch_size=16, seed=42, vision_layers=2, vision_width=128, embed_dim=32)}
TRAINING_FREE = ("maskclip", "sclip", "clearclip", "naclip", "gem", "clip_surgery")


# ------------------------------------------------------------------------------ OpenAI → transformers
def _block_keys(src: str, dst: str, sd, out):
    """One residual block: OpenAI's fused ``attn.in_proj_*`` split into q/k/v, ``c_fc``/``c_proj`` → fc1/fc2."""
    for kind in ("weight", "bias"):
        q, k, v = sd[f"{src}.attn.in_proj_{kind}"].chunk(3)
        out[f"{dst}.self_attn.q_proj.{kind}"], out[f"{dst}.self_attn.k_proj.{kind}"] = q, k
        out[f"{dst}.self_attn.v_proj.{kind}"] = v
        out[f"{dst}.self_attn.out_proj.{kind}"] = sd[f"{src}.attn.out_proj.{kind}"]
        out[f"{dst}.layer_norm1.{kind}"] = sd[f"{src}.ln_1.{kind}"]
        out[f"{dst}.layer_norm2.{kind}"] = sd[f"{src}.ln_2.{kind}"]
        out[f"{dst}.mlp.fc1.{kind}"] = sd[f"{src}.mlp.c_fc.{kind}"]
        out[f"{dst}.mlp.fc2.{kind}"] = sd[f"{src}.mlp.c_proj.{kind}"]


def openai_to_hf_state_dict(sd, vision_layers: int, text_layers: int):
    """The key mapping OpenAI ``clip.model.CLIP`` (ViT) → transformers ``CLIPModel`` (projections transposed:
    OpenAI multiplies ``x @ proj``, transformers' Linear computes ``x @ W.T``)."""
    out = {"vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
           "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
           "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
           "visual_projection.weight": sd["visual.proj"].t(),
           "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
           "text_projection.weight": sd["text_projection"].t(), "logit_scale": sd["logit_scale"]}
    for kind in ("weight", "bias"):
        out[f"vision_model.pre_layrnorm.{kind}"] = sd[f"visual.ln_pre.{kind}"]
        out[f"vision_model.post_layernorm.{kind}"] = sd[f"visual.ln_post.{kind}"]
        out[f"text_model.final_layer_norm.{kind}"] = sd[f"ln_final.{kind}"]
    for i in range(vision_layers):
        _block_keys(f"visual.transformer.resblocks.{i}", f"vision_model.encoder.layers.{i}", sd, out)
    for i in range(text_layers):
        _block_keys(f"transformer.resblocks.{i}", f"text_model.encoder.layers.{i}", sd, out)
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def hf_clip_config(model):
    v, t = model.visual, model.transformer
    vw, tw = v.conv1.out_channels, t.width
    return transformers.CLIPConfig(
        projection_dim=model.text_projection.shape[1],
        text_config=dict(vocab_size=model.vocab_size, hidden_size=tw, intermediate_size=4 * tw,
                         num_hidden_layers=t.layers, num_attention_heads=tw // 64, max_position_embeddings=77,
                         hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407,
                         pad_token_id=49407),
        vision_config=dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=len(v.transformer.resblocks),
                           num_attention_heads=vw // 64, image_size=v.input_resolution,
                           patch_size=v.conv1.kernel_size[0], hidden_act="quick_gelu", layer_norm_eps=1e-5))


def clip_tokenizer():
    """transformers' CLIPTokenizer with the vocabulary and merges of the installed ``clip`` package (no download)."""
    from clip.simple_tokenizer import SimpleTokenizer, default_bpe

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    return transformers.CLIPTokenizer(vocab=dict(SimpleTokenizer().encoder), merges=[tuple(m.split()) for m in merges])


def save_hf_clip(model, folder: Path, fmt: str = "safetensors") -> Path:
    cfg = hf_clip_config(model)
    hf = transformers.CLIPModel(cfg).eval()
    sd = openai_to_hf_state_dict(model.state_dict(), cfg.vision_config.num_hidden_layers,
                                 cfg.text_config.num_hidden_layers)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing), (missing, unexpected)
    hf.save_pretrained(folder, safe_serialization=fmt == "safetensors")
    clip_tokenizer().save_pretrained(folder)
    transformers.CLIPImageProcessor(size={"shortest_edge": cfg.vision_config.image_size},
                                    crop_size={"height": cfg.vision_config.image_size,
                                               "width": cfg.vision_config.image_size},
                                    image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """{name: (OpenAI Backbone, hf Backbone, folder)} over the same tiny weights."""
    out = {}
    for name, spec in TINY.items():
        model = tiny_clip(**spec)
        folder = save_hf_clip(model, tmp_path_factory.mktemp(f"hf_{name}") / f"clip-tiny-{name}")
        out[name] = (Backbone(f"tiny-{name}", model, "cpu", torch.float32), load_backbone(f"hf:{folder}"), folder)
    return out


@pytest.fixture(scope="module")
def image():
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((160, 120), Image.BICUBIC))


def test_key_mapping_is_checked(pairs):
    """transformers' own forward on the converted folder equals OpenAI's on the original weights."""
    import clip

    ref, _, folder = pairs["vit32"]
    hf = transformers.CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    tokens = clip.tokenize(["a dog", "the man in a red shirt"])
    with torch.no_grad():
        img = hf.get_image_features(pixel_values=x)
        txt = hf.get_text_features(input_ids=tokens)
        torch.testing.assert_close(getattr(img, "pooler_output", img), ref.model.encode_image(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(getattr(txt, "pooler_output", txt), ref.model.encode_text(tokens), atol=1e-5, rtol=1e-5)


def test_adapter_reads_the_folder(pairs):
    for name in TINY:
        ref, hb, folder = pairs[name]
        assert hb.library == "hf" and hb.name == f"hf:{folder.resolve()}"
        assert type(hb.model.hf).__name__ == "CLIPModel"
        assert hb.kind == "vit" and hb.key == ref.key and hb.input_size == 224 and hb.patch_size == ref.patch_size
        assert hb.mean == pytest.approx(CLIP_MEAN) and hb.std == pytest.approx(CLIP_STD)
        assert hb.identity()[:2] == ("file", str(folder.resolve() / "model.safetensors"))
        # the fused q/k/v is shared with transformers' own projections (one copy in memory)
        blk, layer = hb.visual.transformer.resblocks[0], hb.model.hf.vision_model.encoder.layers[0]
        assert layer.self_attn.k_proj.weight.data_ptr() == blk.attn.in_proj_weight[blk.attn.embed_dim:].data_ptr()
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(hb.encode_image(x), ref.encode_image(x), atol=1e-5, rtol=1e-5)
    assert pairs["vit32"][1].key == "vit_b32" and pairs["vit16"][1].key == "vit_b16"


def test_text_pools_at_the_end_token(pairs):
    """The folder's tokenizer pads with the end token (not 0 as OpenAI's): the embedding is still the end token's."""
    import clip

    ref, hb, _ = pairs["vit32"]
    for phrase in ["a dog", "The man in a RED shirt, left!", "ünïcode café"]:
        ids, ref_ids = hb.tokenize(phrase)[0], clip.tokenize([phrase])[0]
        n = int((ref_ids != 0).sum())
        assert torch.equal(ids[:n], ref_ids[:n]) and (ids[n:] == 49407).all()  # padded with <|endoftext|>
        torch.testing.assert_close(hb.encode_text(phrase), ref.encode_text(phrase), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(hb.encode_text_empty(), ref.encode_text_empty(), atol=1e-6, rtol=1e-6)
    with pytest.warns(UserWarning, match="truncated"):
        t = hb.tokenize("a very long phrase " * 30)
    assert t.shape == (1, 77)
    with pytest.raises(ValueError, match="empty"):
        hb.tokenize("  ")


def _vit_methods():
    return [m for m in registered_methods() if m != "denseclip" and not issubclass(method_class(m), OursResNet)]


# every ViT method on the patch-32 tower; the patch-16 tower (another width, 2 heads, 14×14 grid, positional
# embedding interpolated to 28×28 by ours) for the methods that read the grid differently
CASES = [(m, "vit32") for m in _vit_methods()] + [(m, "vit16") for m in ("ours", "naclip", "gem", "clip_surgery")]


# proposal rankers without a proposal source of their own (dense_rank, det_label, reclip, …) rank these boxes
@pytest.mark.parametrize("method,name", CASES, ids=[f"{m}-{n}" for m, n in CASES])
def test_same_maps_and_boxes_as_openai_clip(method, name, pairs, image):
    ref, hb = pairs[name][:2]
    a, b = localize_both(ref, hb, method, image)
    if a.score_map is not None:
        assert_same_map(a, b)
    assert b.box == a.box


def test_every_vit_method_is_covered():
    assert {"ours", "ours_vit", "crop_rank", *TRAINING_FREE} <= set(_vit_methods())


def test_api_localize_and_presets(pairs, image):
    ref, hb, folder = pairs["vit16"]
    out = localize(image, "a dog", backbone=f"hf:{folder}", method="gem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert out.box == Localizer(ref, "gem")(image, "a dog").box
    from grounding.config import compose

    cfg = compose("config", ["backbone=hf", f"backbone.path={folder}"])
    assert (cfg.backbone.library, cfg.backbone.key, cfg.backbone.kind) == ("hf", "vit_b16", "vit")
    assert cfg.backbone.name == f"hf:{folder}"
    cfg = compose("config", ["backbone=hf_vit_l14", "backbone.path=/x"])
    assert cfg.method.alpha == 0.75 and cfg.method.temperature == 0.02  # the paper's ViT-L/14 Flickr values
    assert compose("config", ["backbone=hf_vit_b16", "backbone.path=/x"]).method.alpha == 0.8


def test_grounding_localize_takes_the_api_spelling(pairs, image, tmp_path, capsys):
    """`grounding-localize IMG PHRASE backbone=hf:DIR` == `backbone=hf backbone.path=DIR` == the API's box."""
    from grounding.cli.localize import expand_backbone_spec, main as localize_main

    _, _, folder = pairs["vit32"]
    assert expand_backbone_spec([f"backbone=hf:{folder}", "method=gem"]) == [
        "backbone=hf", f"backbone.path={folder}", "method=gem"]
    assert expand_backbone_spec(["backbone=vit_b16", "backbone.name=/a:b.pt"]) == ["backbone=vit_b16", "backbone.name=/a:b.pt"]
    img = tmp_path / "astronaut.png"
    Image.fromarray(image).save(img)
    boxes = []
    for args in ([f"backbone=hf:{folder}"], ["backbone=hf", f"backbone.path={folder}"]):
        assert localize_main([str(img), "a dog", *args, "method=gem", f"out={tmp_path / 'f.png'}"]) == 0
        boxes.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["box"])
    assert boxes[0] == boxes[1] == [round(v, 2) for v in localize(img, "a dog", backbone=f"hf:{folder}", method="gem").box]


# ------------------------------------------------------------------------------ errors
def test_bad_folders_are_one_line_errors(pairs, tmp_path):
    import shutil

    folder = pairs["vit32"][2]
    with pytest.raises(BackboneError, match="openai/clip-vit-base-patch16.*hub id.*huggingface-cli download"):
        load_backbone("hf:openai/clip-vit-base-patch16")
    with pytest.raises(BackboneError, match=f"{tmp_path / 'nope'}: no such folder"):
        load_backbone(f"hf:{tmp_path / 'nope'}")
    for name, what in [("model.safetensors", "no weights file"), ("preprocessor_config.json", "preprocessor_config"),
                       ("tokenizer.json", "no tokenizer files"), ("config.json", "config.json not found")]:
        bad = tmp_path / f"without-{name}"
        shutil.copytree(folder, bad)
        for f in [name] + (["vocab.json"] if name == "tokenizer.json" else []):
            (bad / f).unlink(missing_ok=True)
        with pytest.raises(BackboneError, match=f"{bad}.*{what}") as e:
            load_backbone(f"hf:{bad}")
        assert "\n" not in str(e.value)
    other = tmp_path / "bert"
    shutil.copytree(folder, other)
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(BackboneError, match="bert.*model_type 'bert'.*ResNet CLIPs do not exist in transformers"):
        load_backbone(f"hf:{other}")
    vision = tmp_path / "vision-only"
    shutil.copytree(folder, vision)
    (vision / "config.json").write_text(json.dumps({"model_type": "clip_vision_model"}))
    with pytest.raises(BackboneError, match="vision-only.*single tower"):
        load_backbone(f"hf:{vision}")


def test_truncated_weights_and_bin_files(pairs, tmp_path):
    import shutil

    folder = pairs["vit32"][2]
    trunc = tmp_path / "truncated"
    shutil.copytree(folder, trunc)
    (trunc / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:500])
    with pytest.raises(BackboneError, match=f"{trunc}: could not load a CLIPModel"):
        load_backbone(f"hf:{trunc}")

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    evil = tmp_path / "evil"
    shutil.copytree(folder, evil)
    (evil / "model.safetensors").unlink()
    torch.save({"x": Evil()}, evil / "pytorch_model.bin")
    with pytest.raises(BackboneError, match=f"{evil}: could not load"):
        load_backbone(f"hf:{evil}")
    binary = tmp_path / "bin"  # a legitimate .bin: read with weights_only loading
    shutil.copytree(folder, binary)
    hf = transformers.CLIPModel.from_pretrained(str(folder), local_files_only=True)
    (binary / "model.safetensors").unlink()
    torch.save(hf.state_dict(), binary / "pytorch_model.bin")
    hb = load_backbone(f"hf:{binary}")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(hb.encode_image(x), pairs["vit32"][0].encode_image(x), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ SigLIP
def siglip_tokenizer():
    """A small tokenizers-library tokenizer (word level; no sentencepiece vocabulary can be made offline)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    words = ["<pad>", "</s>", "<unk>", "a", "dog", "woman's", "face", "the", "man", "in", "red", "shirt"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                                unk_token="<unk>")


def tiny_siglip(tmp_path_factory, size: int, seed: int, name: str):
    """(model, its Backbone, folder): a tiny SigLIP saved as a transformers folder, ``size`` px, patch 32."""
    torch.manual_seed(seed)
    cfg = transformers.SiglipConfig(
        text_config=dict(vocab_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, projection_size=64),
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2,
                           image_size=size, patch_size=32))
    model = transformers.SiglipModel(cfg).eval()
    folder = tmp_path_factory.mktemp(name) / name
    model.save_pretrained(folder)
    siglip_tokenizer().save_pretrained(folder)
    transformers.SiglipImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3,
                                      image_std=[0.5] * 3).save_pretrained(folder)
    return model, load_backbone(f"hf:{folder}"), folder


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    return tiny_siglip(tmp_path_factory, 224, 0, "siglip-tiny")


def test_siglip_patch_tokens_are_transformers_last_hidden_state(siglip):
    from grounding.models.vit import block_forward, blocks, head, input_tokens

    model, hb, _ = siglip
    assert hb.kind == "vit" and hb.visual.class_embedding is None and hb.visual.proj is None
    assert hb.input_size == 224 and hb.mean == (0.5, 0.5, 0.5) and hb.key == "vit_b32"
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        t = input_tokens(hb.visual, x)
        for block in blocks(hb.visual):
            t = block_forward(block, t)
        ours = head(hb.visual, t)
        out = model.vision_model(pixel_values=x)
        torch.testing.assert_close(ours, out.last_hidden_state, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(hb.encode_image(x), out.pooler_output, atol=1e-5, rtol=1e-5)


def test_siglip_text_is_its_own(siglip):
    model, hb, _ = siglip
    ids = hb.tokenize("a dog")
    assert ids.shape == (1, 16) and ids[0].tolist()[:3] == [3, 4, 1] and (ids[0, 3:] == 0).all()  # max_length pad
    with torch.no_grad():
        want = model.get_text_features(input_ids=ids)
    want = getattr(want, "pooler_output", want)[0]
    torch.testing.assert_close(hb.encode_text("a dog"), want / want.norm(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("method", TRAINING_FREE + ("crop_rank",))
def test_siglip_runs_the_patch_token_methods(method, siglip, image):
    hb = siglip[1]
    params = {"num_proposals": 4} if method == "crop_rank" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = Localizer(hb, method, **params)(image, "a woman's face")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = out.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    if out.score_map is not None:
        assert np.isfinite(out.score_map).all() and out.score_map.max() == pytest.approx(1.0)


def test_siglip_refuses_methods_needing_a_class_token(siglip):
    from grounding.methods.base import ConfigError

    for method in ("ours", "ours_vit"):
        with pytest.raises((ConfigError, ValueError), match="ours.*class token.*(none|no class token)"):
            Localizer(siglip[1], method)
    with pytest.raises(ValueError, match="denseclip.*ResNet"):
        Localizer(siglip[1], "denseclip")


@pytest.mark.slow
def test_eval_cli_end_to_end(pairs, tmp_path):
    """``python -m grounding.eval split=flickr_s1 backbone=hf backbone.path=DIR method=ours`` on a tiny folder."""
    ref, _, folder = pairs["vit32"]
    root = tmp_path / "data"
    make_flickr_split(root)  # rows 0 and 1 (limit=2) are both of image 1000
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "grounding.eval", "split=flickr_s1", "backbone=hf",
                        f"backbone.path={folder}", "method=ours", f"data_root={root}", "limit=2",
                        "method.n_segments=[30]", "cache.enabled=false", "progress=false", f"hydra.run.dir={run}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 2 and metrics["params"]["alpha"] == 0.9  # vit_b32's paper α
    assert metrics.get("backbone_label", f"hf:{folder.name}") == f"hf:{folder.name}"
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    loc = Localizer(ref, "ours", n_segments=[30])
    img = np.asarray(Image.open(root / "flickr30k-images" / "1000.jpg"))
    for p in preds:
        assert p["pred_box"] == pytest.approx(list(loc(img, p["phrase"]).box))


def test_preflight_checks_the_folder_before_loading(pairs, siglip):
    from grounding.config import compose
    from grounding.evaluation.evaluate import preflight

    folder = pairs["vit32"][2]
    with pytest.raises(BackboneError, match="needs backbone.path=DIR"):
        preflight(compose("config", ["backbone=hf_vit_b16"]))
    with pytest.raises(BackboneError, match="openai/clip-vit-base-patch16.*hub id"):
        preflight(compose("config", ["backbone=hf_vit_b16", "backbone.path=openai/clip-vit-base-patch16"]))
    with pytest.raises(BackboneError, match="holds a CLIPModel but the preset is for a SiglipModel"):
        preflight(compose("config", ["backbone=hf_siglip_b16", f"backbone.path={folder}"]))
    cfg = compose("config", ["backbone=hf", f"backbone.path={siglip[2]}", "method=maskclip"])
    assert (cfg.backbone.key, cfg.backbone.kind) == ("vit_b32", "vit")
    preflight(cfg, files=False)
    preflight(compose("config", ["backbone=hf_vit_b16", "backbone.path=/no/such/folder"]), files=False)


def test_tables_name_hf_backbones_by_folder(pairs):
    from grounding.evaluation.runner import backbone_label

    folder = pairs["vit16"][2]
    assert backbone_label({"library": "hf", "key": "vit_b16", "path": str(folder)}) == "hf:clip-tiny-vit16"
    assert backbone_label({"library": "openai", "key": "vit_b16"}) == "vit_b16"


def test_siglip_maskclip_from_transformers_own_modules(siglip):
    """Oracle for the prefix-free path: MaskCLIP's last block written with transformers' own modules on its own
    hidden states (no class token anywhere) equals grounding.methods.maskclip.patch_tokens on the adapter."""
    from grounding.methods.maskclip import patch_tokens

    model, hb, _ = siglip
    vm = model.vision_model
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h = vm(pixel_values=x, output_hidden_states=True).hidden_states[-2]  # input of the last layer
        last = vm.encoder.layers[-1]
        h = h + last.self_attn.out_proj(last.self_attn.v_proj(last.layer_norm1(h)))
        want = vm.post_layernorm(h + last.mlp(last.layer_norm2(h)))
        torch.testing.assert_close(patch_tokens(hb.visual, x), want, atol=1e-5, rtol=1e-5)


def test_hf_is_a_library_of_the_adapter_kind(pairs):
    """The five functions, found by the registry's convention; parse/describe/preflight/label torch-free."""
    from grounding.models import registry
    from grounding.models.library import missing_functions

    folder = pairs["vit16"][2]
    lib = registry.library("hf")
    assert not missing_functions(lib) and lib.__name__ == "grounding.models.hf_backbone"
    cfg = registry.config_from_spec(f"hf:{folder}")
    assert cfg["library"] == "hf" and cfg["path"] == str(folder)
    assert registry.describe(cfg) == {"key": "vit_b16", "kind": "vit"}
    assert registry.label(cfg) == "hf:clip-tiny-vit16"
    with pytest.raises(BackboneError, match="pretrained: not an option of hf"):
        registry.config_from_spec(f"hf:{folder}", pretrained="/x.pt")
    code = ("import sys; from grounding.models import registry; c = registry.config_from_spec(sys.argv[1]); "
            "registry.describe(c); registry.preflight(c); registry.label(c); assert 'torch' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code, f"hf:{folder}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_end_token_index_is_where_transformers_pools(pairs, siglip):
    import clip

    ref, hb, _ = pairs["vit32"]
    for phrase in ["a dog", "the man in a red shirt"]:
        assert int(hb.end_token_index(hb.tokenize(phrase))[0]) == int(ref.end_token_index(clip.tokenize([phrase]))[0])
    sb = siglip[1]
    assert int(sb.end_token_index(sb.tokenize("a dog"))[0]) == 15  # SigLIP pools the last position
    assert sb.has_class_token is False and hb.has_class_token is True
    assert hb.logit_scale == pytest.approx(float(hb.model.hf.logit_scale.exp()))


# ------------------------------------------------------------------------------ non-224 inputs (the model's own size)
@pytest.fixture(scope="module")
def pair_320(tmp_path_factory):
    """A ViT-B/32-like tower at 320 px (10×10 grid) as OpenAI Backbone and as a transformers CLIPModel folder."""
    model = tiny_clip("vit", patch_size=32, seed=43, vision_layers=2, vision_width=64, embed_dim=32, image_resolution=320)
    folder = save_hf_clip(model, tmp_path_factory.mktemp("hf_vit32_320") / "clip-tiny-vit32-320")
    return Backbone("tiny-vit32-320", model, "cpu", torch.float32), load_backbone(f"hf:{folder}"), folder


@pytest.mark.parametrize("method", TRAINING_FREE + ("crop_rank",))
def test_non_224_folder_same_maps_and_boxes_as_openai_clip(method, pair_320, image):
    """Cross-library oracle at the model's own input size: the patch family (score map on the 10×10 grid
    upsampled to 320) and Crop & Rank (crops resized to 320) agree between transformers and OpenAI's clip."""
    ref, hb, _ = pair_320
    assert hb.input_size == ref.input_size == 320 and hb.key == ref.key == "vit_b32_320"
    a, b = localize_both(ref, hb, method, image)
    if method != "crop_rank":
        assert a.score_map.shape == (320, 320)
        assert_same_map(a, b)
    assert b.box == a.box


@pytest.fixture(scope="module")
def siglip_288(tmp_path_factory):
    """A tiny SigLIP folder at 288 px, patch 32 (9×9 grid): served like a 224 px one."""
    return tiny_siglip(tmp_path_factory, 288, 1, "siglip-tiny-288")


@pytest.mark.parametrize("method", ("maskclip", "naclip", "crop_rank"))
def test_non_224_siglip_folder_runs_patch_methods_and_crop_rank(method, siglip_288, image):
    """No 224-only refusal any more: a 288 px SigLIP runs on its own grid. Oracle: MaskCLIP's map is the one
    computed from transformers' own modules on the 288 px input (last layer: value path, residual, MLP)."""
    model, hb, _ = siglip_288
    assert hb.input_size == 288 and hb.key == "vit_b32_288"
    params = {"num_proposals": 4} if method == "crop_rank" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loc = Localizer(hb, method, **params)
        out = loc(image, "a woman's face")
    h, w = image.shape[:2]
    x1, y1, x2, y2 = out.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    if method == "crop_rank":
        return
    assert out.score_map.shape == (288, 288) and np.isfinite(out.score_map).all()
    if method == "maskclip":
        from grounding.methods.patch import upsampled_cosine_map
        from grounding.stages.score_map import minmax_normalise, phi

        arr = np.asarray(Image.fromarray(image).resize((288, 288), Image.BICUBIC), dtype=np.float32) / 255.0
        x = torch.from_numpy(((arr - 0.5) / 0.5).transpose(2, 0, 1)[None].copy())
        vm = model.vision_model
        with torch.no_grad():
            hs = vm(pixel_values=x, output_hidden_states=True).hidden_states[-2]
            last = vm.encoder.layers[-1]
            hs = hs + last.self_attn.out_proj(last.self_attn.v_proj(last.layer_norm1(hs)))
            f = vm.post_layernorm(hs + last.mlp(last.layer_norm2(hs)))[0]
        assert f.shape[0] == 81  # the model's own 9×9 grid
        cos = (f / f.norm(dim=-1, keepdim=True)) @ hb.encode_text("a woman's face")
        want = minmax_normalise(phi(upsampled_cosine_map(cos.numpy(), 288), loc.method.params["temperature"]))
        np.testing.assert_allclose(out.score_map, want, atol=1e-4)
