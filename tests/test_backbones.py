"""Backbone loading: names resolve to the clip cache, files load as TorchScript or state dict."""
import pytest
import torch

from grounding.models.backbones import (BackboneError, backbone_key, default_cache_dir, load_backbone, read_state_dict,
                                 resolve_checkpoint, resolve_precision)
from grounding.models.random import tiny_clip


def test_missing_weights_error_names_file_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDING_CLIP_CACHE", str(tmp_path))
    with pytest.raises(BackboneError) as e:
        load_backbone("ViT-B/16")
    msg = str(e.value)
    assert str(tmp_path / "ViT-B-16.pt") in msg and "clip.load" in msg


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("GROUNDING_CLIP_CACHE", raising=False)
    assert default_cache_dir() == default_cache_dir("~/.cache/clip")
    monkeypatch.setenv("GROUNDING_CLIP_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert default_cache_dir(tmp_path / "arg") == tmp_path / "arg"


def test_name_resolves_in_cache(tmp_path):
    sd = tiny_clip("vit", patch_size=32).state_dict()
    torch.save(sd, tmp_path / "ViT-B-32.pt")
    assert resolve_checkpoint("ViT-B/32", tmp_path) == tmp_path / "ViT-B-32.pt"
    bb = load_backbone("ViT-B/32", cache_dir=tmp_path)
    assert bb.kind == "vit" and bb.patch_size == 32 and backbone_key(bb) == "vit_b32"


def test_unknown_name_lists_choices():
    with pytest.raises(BackboneError, match="neither a known model .*vit_b16.*toy"):
        resolve_checkpoint("ViT-Q/7")


def test_config_keys_and_openai_names_alike(tmp_path):
    import clip

    from grounding.models.names import OPENAI_FILES, canonical_name

    # the torch-free file table is OpenAI's own
    assert OPENAI_FILES == {k: v.rsplit("/", 1)[-1] for k, v in clip.clip._MODELS.items()}
    assert canonical_name("vit_b16") == canonical_name("ViT-B/16") == "ViT-B/16"
    assert canonical_name("vit_l14_336") == "ViT-L/14@336px" and canonical_name("RN50x4") == "RN50x4"
    torch.save(tiny_clip("vit", patch_size=32).state_dict(), tmp_path / "ViT-B-32.pt")
    assert load_backbone("vit_b32", cache_dir=tmp_path).key == load_backbone("ViT-B/32", cache_dir=tmp_path).key


def test_state_dict_and_torchscript_give_same_model(tmp_path):
    model = tiny_clip("resnet", seed=1)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    image, text = torch.randn(1, 3, 224, 224), torch.randint(0, 49408, (1, 77))
    traced = torch.jit.trace(model, (image, text), check_trace=False)
    traced.save(str(tmp_path / "jit.pt"))
    a = load_backbone(tmp_path / "sd.pt")
    b = load_backbone(tmp_path / "jit.pt")
    assert a.kind == b.kind == "resnet"
    with torch.no_grad():
        torch.testing.assert_close(a.model.encode_image(image), b.model.encode_image(image))
    # weights pass through clip's build_model, which rounds to fp16 as OpenAI's files are stored
    w = model.visual.conv1.weight
    torch.testing.assert_close(a.model.visual.conv1.weight, w.half().float())


def test_corrupt_and_non_clip_files(tmp_path):
    bad = tmp_path / "bad.pt"
    model = tiny_clip("vit")
    torch.save(model.state_dict(), bad)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated
    with pytest.raises(BackboneError, match="bad.pt"):
        read_state_dict(bad)
    other = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(BackboneError, match="not a CLIP checkpoint"):
        read_state_dict(other)


def test_pickled_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"text_projection": torch.zeros(2), "obj": object()}, p)
    with pytest.raises(BackboneError):
        read_state_dict(p)  # weights_only=True refuses arbitrary objects


def test_precision_rules():
    assert resolve_precision("auto", "cpu") == torch.float32
    assert resolve_precision("auto", "cuda") == torch.float16
    assert resolve_precision("fp32", "cuda") == torch.float32
    with pytest.raises(ValueError):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError):
        resolve_precision("int8", "cpu")
