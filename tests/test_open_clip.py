"""open_clip backbones: the same weights through open_clip and through OpenAI's clip give the same maps and boxes.

An OpenAI tiny CLIP (grounding.models.random.tiny_clip) is converted with open_clip's own
``build_model_from_openai_state_dict`` (quick_gelu=True), saved as an open_clip checkpoint (ViT: a ``torch.save``
state dict ``.bin``; ResNet: ``.safetensors``) next to a model-config JSON written from the tiny model's dims, and
loaded back through ``open_clip:<json>`` — open_clip's native VisionTransformer / ModifiedResNet, open_clip's
tokenizer. Every registered method must give the same score map (1e-4) and box on both.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from grounding import Localizer, localize
from grounding.methods.base import method_class, registered_methods
from conftest import make_flickr_split
from proposal_cases import assert_same_map, localize_both
from grounding.methods.resnet_dense import OursResNet
from grounding.models.backbones import Backbone, BackboneError, load_backbone
from grounding.models.open_clip_backbone import open_clip_key
from grounding.models.random import tiny_clip

ROOT = Path(__file__).resolve().parents[1]
TINY = {"vit": dict(kind="vit", patch_size=32, seed=31, vision_layers=2, vision_width=64, embed_dim=32),
        "resnet": dict(kind="resnet", seed=32, vision_width=4, embed_dim=32)}


def _model_config(kind: str) -> dict:
    """The open_clip model config of a tiny_clip (text: width 64, 1 head, 1 layer; vision heads = width // 64)."""
    vision = ({"image_size": 224, "layers": 2, "width": 64, "patch_size": 32, "head_width": 64} if kind == "vit"
              else {"image_size": 224, "layers": [1, 1, 1, 1], "width": 4, "head_width": 64})
    return {"embed_dim": 32, "quick_gelu": True, "vision_cfg": vision,
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1}}


def save_open_clip_pair(openai_model, kind: str, folder: Path, fmt: str):
    """Convert with open_clip's converter, save checkpoint + config JSON; returns (json path, weights path)."""
    from open_clip.model import build_model_from_openai_state_dict

    sd = openai_model.state_dict()
    oc = build_model_from_openai_state_dict(dict(sd), quick_gelu=True, cast_dtype=None)
    oc = oc.float()
    oc.load_state_dict(sd)  # the converter rounds through fp16 (OpenAI's released files are fp16): restore fp32
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / f"tiny_{kind}.json"
    cfg.write_text(json.dumps(_model_config(kind)))
    weights = {k: v.contiguous() for k, v in oc.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = folder / "open_clip_model.safetensors"
        save_file(weights, str(path))
    else:
        path = folder / "open_clip_pytorch_model.bin"
        torch.save(weights, path)
    return cfg, path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """{kind: (OpenAI Backbone, open_clip Backbone, json, weights)} over the same tiny weights."""
    out = {}
    for kind, fmt in (("vit", "bin"), ("resnet", "safetensors")):
        model = tiny_clip(**TINY[kind])
        cfg, path = save_open_clip_pair(model, kind, tmp_path_factory.mktemp(kind), fmt)
        oc = load_backbone(f"open_clip:{cfg}", pretrained=path)
        out[kind] = (Backbone(f"tiny-{kind}", model, "cpu", torch.float32), oc, cfg, path)
    return out


@pytest.fixture(scope="module")
def image():
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((160, 120), Image.BICUBIC))


def test_adapter_reads_open_clip(pairs):
    for kind in ("vit", "resnet"):
        ref, oc, cfg, path = pairs[kind]
        assert oc.library == "open_clip" and ref.library == "openai"
        assert type(oc.visual).__module__.startswith("open_clip")  # open_clip's native tower, not clip's
        assert oc.kind == kind and oc.key == ref.key == open_clip_key(str(cfg))
        assert oc.input_size == 224 and oc.dtype == torch.float32
        assert oc.identity()[:2] == ("file", str(path))
        sd_ref = ref.model.state_dict()
        for k, v in oc.model.state_dict().items():
            if k in sd_ref:
                assert torch.equal(v, sd_ref[k]), k
        x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(oc.encode_image(x), ref.encode_image(x), atol=1e-5, rtol=1e-5)
    assert pairs["vit"][1].key == "vit_b32" and pairs["resnet"][1].key == "rn50"


def test_tokenizer_and_text_match_openai(pairs):
    import clip

    ref, oc = pairs["vit"][:2]
    for phrase in ["a dog", "The man in a RED shirt, left!", "ünïcode café"]:
        assert torch.equal(oc.tokenize(phrase).long(), clip.tokenize([phrase]).long())
        torch.testing.assert_close(oc.encode_text(phrase), ref.encode_text(phrase), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(oc.encode_text_empty(), ref.encode_text_empty(), atol=1e-6, rtol=1e-6)
    long = "a very long phrase " * 30
    with pytest.warns(UserWarning, match="truncated"):
        t = oc.tokenize(long)
    assert torch.equal(t.long(), clip.tokenize([long], truncate=True).long())
    with pytest.raises(ValueError, match="empty"):
        oc.tokenize("  ")


def _kinds(name):
    """The tower kinds a registered method runs on here: ResNet-only methods on the ResNet; crop_rank on both;
    ``ours`` (a factory) on the ViT — on a ResNet it *is* ours_resnet (checked below)."""
    if name == "crop_rank":
        return ("vit", "resnet")
    return ("resnet",) if issubclass(method_class(name), OursResNet) else ("vit",)


CASES = [(m, k) for m in registered_methods() for k in _kinds(m)]


@pytest.mark.parametrize("method,kind", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_same_maps_and_boxes_as_openai_clip(method, kind, pairs, image):
    ref, oc = pairs[kind][:2]
    a, b = localize_both(ref, oc, method, image)
    if a.score_map is not None:
        assert_same_map(a, b)
    if getattr(a, "scores", None) is not None:  # proposal rankers: one score per proposal
        np.testing.assert_allclose(np.asarray(b.scores), np.asarray(a.scores), atol=1e-4)
    assert b.box == a.box


def test_every_method_is_covered_and_ours_dispatches(pairs):
    assert {"ours", "ours_vit", "ours_resnet", "denseclip", "crop_rank", "maskclip", "sclip", "clearclip",
            "naclip", "gem", "clip_surgery"} <= set(registered_methods())
    assert type(method_class("ours")(pairs["resnet"][1])) is OursResNet


def test_api_and_load_backbone_take_pretrained(pairs, image):
    ref, oc, cfg, path = pairs["vit"]
    out = localize(image, "a face", backbone=f"open_clip:{cfg}", pretrained=path, method="maskclip")
    assert out.box == Localizer(ref, "maskclip")(image, "a face").box
    loc = Localizer(f"open_clip:{cfg}", "maskclip", pretrained=str(path))
    assert loc.backbone.library == "open_clip" and loc.params["alpha"] == 0.9  # paper ViT-B/32 Flickr α, by key
    with pytest.raises(BackboneError, match="pretrained=.*open_clip"):
        load_backbone("ViT-B/16", pretrained=path)


def test_weights_never_downloaded_and_errors_name_the_path(pairs, tmp_path):
    cfg = pairs["vit"][2]
    missing = tmp_path / "open_clip_pytorch_model.bin"
    with pytest.raises(BackboneError, match=str(missing)):
        load_backbone(f"open_clip:{cfg}", pretrained=missing)
    with pytest.raises(BackboneError, match="needs pretrained=FILE"):
        load_backbone("open_clip:ViT-H-14")
    with pytest.raises(BackboneError, match="laion2b_s32b_b79k"):  # a tag is not a file: no download
        load_backbone("open_clip:ViT-H-14", pretrained="laion2b_s32b_b79k")
    bad = tmp_path / "w.bin"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneError, match="w.bin"):
        load_backbone(f"open_clip:{cfg}", pretrained=bad)
    other = pairs["resnet"][3]  # ResNet weights for a ViT config: refused, naming both
    with pytest.raises(BackboneError, match="open_clip_model.safetensors.*tiny_vit.json"):
        load_backbone(f"open_clip:{cfg}", pretrained=other)


def test_pickled_code_is_not_executed(pairs, tmp_path):
    cfg = pairs["vit"][2]

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.bin"
    torch.save({"x": Evil()}, path)
    with pytest.raises(BackboneError, match="evil.bin"):
        load_backbone(f"open_clip:{cfg}", pretrained=path)


@pytest.mark.parametrize("arch,what", [("ViT-SO400M-14-SigLIP", "timm trunk"), ("EVA02-L-14", "timm trunk"),
                                       ("convnext_base", "timm trunk"), ("coca_ViT-B-32", "attentional pooling"),
                                       ("xlm-roberta-base-ViT-B-32", "Hugging Face")])
def test_unservable_towers_are_refused_by_name(arch, what, tmp_path):
    w = tmp_path / "open_clip_pytorch_model.bin"
    w.write_bytes(b"")
    with pytest.raises(BackboneError, match=f"{arch}.*{what}"):
        load_backbone(f"open_clip:{arch}", pretrained=w)


def test_custom_attention_config_is_refused(tmp_path):
    cfg = _model_config("vit")
    cfg["vision_cfg"]["scaled_cosine_attn"] = True
    p = tmp_path / "cosine.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(BackboneError, match="cosine.json.*custom attention"):
        open_clip_key(str(p))


def test_keys_of_the_common_models():
    assert [open_clip_key(a) for a in ("ViT-B-16", "ViT-L-14", "ViT-H-14", "ViT-H-14-quickgelu", "ViT-g-14",
                                       "ViT-bigG-14", "RN50", "RN101", "RN50x4", "ViT-L-14-336")] == \
        ["vit_b16", "vit_l14", "vit_h14", "vit_h14", "vit_g14", "vit_bigg14", "rn50", "rn101", "rn50x4",
         "vit_l14_336"]


def test_config_identity_changes_with_the_arch(pairs, tmp_path):
    """The same weights under another config (GELU instead of QuickGELU) are another model: another identity
    (the feature cache must not mix them)."""
    ref, oc, cfg, path = pairs["vit"]
    c = json.loads(Path(cfg).read_text())
    c["quick_gelu"] = False
    other = tmp_path / "gelu.json"
    other.write_text(json.dumps(c))
    assert load_backbone(f"open_clip:{other}", pretrained=path).identity() != oc.identity()


def test_hydra_presets(pairs):
    from grounding.config import compose

    cfg = compose("config", ["backbone=oc_vit_h14"])  # a preset: paper values (borrowed from vit_l14) composed
    assert (cfg.backbone.library, cfg.backbone.arch, cfg.backbone.key) == ("open_clip", "ViT-H-14", "vit_h14")
    assert cfg.method.alpha == 0.75 and cfg.method.temperature == 0.02
    assert compose("config", ["backbone=oc_vit_bigg14"]).method.alpha == 0.75
    assert compose("config", ["backbone=oc_rn50"]).method.high_res is True
    cfg = compose("config", ["backbone=open_clip", "backbone.arch=ViT-bigG-14", "method=maskclip"])
    assert (cfg.backbone.key, cfg.backbone.kind) == ("vit_bigg14", "vit")  # derived from the arch
    assert cfg.method.alpha is None  # filled in from the loaded backbone's key when the method is built
    cfg = compose("config", ["backbone=open_clip", f"backbone.arch={pairs['resnet'][2]}"])
    assert (cfg.backbone.key, cfg.backbone.kind) == ("rn50", "resnet")


def test_preflight_messages(pairs):
    from grounding.config import compose
    from grounding.evaluation.evaluate import preflight
    from grounding.methods.base import ConfigError

    with pytest.raises(ConfigError, match="needs backbone.arch"):
        preflight(compose("config", ["backbone=open_clip"]))
    with pytest.raises(ConfigError, match="backbone.pretrained=FILE is required"):
        preflight(compose("config", ["backbone=open_clip", "backbone.arch=ViT-H-14"]))
    with pytest.raises(BackboneError, match="/no/such/open_clip_pytorch_model.bin"):
        preflight(compose("config", ["backbone=oc_vit_h14", "backbone.pretrained=/no/such/open_clip_pytorch_model.bin"]))
    with pytest.raises(ConfigError, match="EVA02-L-14.*timm"):
        preflight(compose("config", ["backbone=open_clip", "backbone.arch=EVA02-L-14", "backbone.pretrained=x.bin"]))


@pytest.mark.slow
def test_eval_cli_end_to_end(pairs, tmp_path):
    """The documented command, on a tiny open_clip model and a Flickr-S1-layout split."""
    _, oc, cfg, weights = pairs["vit"]
    root = tmp_path / "data"
    make_flickr_split(root)  # rows 0 and 1 (limit=2) are both of image 1000
    run = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "grounding.eval", "split=flickr_s1", "backbone=open_clip",
                        f"backbone.arch={cfg}", f"backbone.pretrained={weights}", f"data_root={root}", "limit=2",
                        "method.n_segments=[30]", "cache.enabled=false", "progress=false", f"hydra.run.dir={run}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] == 2
    ident = json.loads((run / "run.json").read_text())
    blob = json.dumps(ident)
    assert "open_clip" in blob and str(weights) in blob
    assert metrics["params"]["alpha"] == 0.9 and metrics["params"]["n_segments"] == [30]  # vit_b32's paper α
    preds = [json.loads(l) for l in (run / "predictions.jsonl").read_text().splitlines()]
    ref = Localizer(pairs["vit"][0], "ours", n_segments=[30])
    img = np.asarray(Image.open(root / "flickr30k-images" / "1000.jpg"))
    for p in preds:
        assert p["pred_box"] == pytest.approx(list(ref(img, p["phrase"]).box))
