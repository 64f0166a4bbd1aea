"""Reduced precision, as a CUDA run uses it (fp16 by default there, bf16 on request), exercised on the CPU.

No GPU is available to this project, so the dtype handling of the GPU path is checked here: the
backbone is cast as ``clip.load`` casts it on CUDA (LayerNorm/BatchNorm/embeddings stay fp32) and the
whole pipeline must run and agree with fp32. (Users cannot ask for fp16 on the CPU; the test builds the
backbone itself.)
"""
import numpy as np
import pytest
import skimage.data
import torch

from grounding.models.backbones import Backbone, cast_to_precision, resolve_precision
from grounding.stages.box_search import box_objective
from grounding.methods.crop_rank import CropRank
from grounding.api import Localizer
from grounding.models.random import tiny_clip

SPECS = {"vit": dict(kind="vit", patch_size=32, seed=21), "resnet": dict(kind="resnet", seed=22)}


def _backbone(kind, dtype):
    return Backbone(name=f"tiny-{kind}", model=cast_to_precision(tiny_clip(**SPECS[kind]), dtype),
                    device=torch.device("cpu"), dtype=dtype)


def test_cast_matches_clip_load_on_cuda():
    m = cast_to_precision(tiny_clip("vit", seed=1), torch.float16)
    assert m.visual.conv1.weight.dtype == torch.float16 and m.visual.proj.dtype == torch.float16
    assert m.visual.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.float16
    assert m.visual.ln_pre.weight.dtype == torch.float32  # CLIP's LayerNorm runs in fp32
    assert m.visual.positional_embedding.dtype == torch.float32
    r = cast_to_precision(tiny_clip("resnet", seed=1), torch.bfloat16)
    assert r.visual.conv1.weight.dtype == torch.bfloat16 and r.visual.bn1.weight.dtype == torch.float32
    assert resolve_precision("bf16", "cuda") == torch.bfloat16


FP16, BF16 = torch.float16, torch.bfloat16


# (the dilated ResNet in fp16 takes ~30 s on a CPU at 224 px; it is checked on a small input below)
@pytest.mark.parametrize("kind,method,dtype", [("vit", "ours", FP16), ("vit", "ours", BF16), pytest.param("resnet", "ours", BF16, marks=pytest.mark.slow),
                                               ("resnet", "denseclip", FP16), ("resnet", "denseclip", BF16)])
def test_reduced_precision_pipeline_agrees_with_fp32(kind, method, dtype):
    img = skimage.data.coffee()
    params = dict(n_segments=[40, 80]) if kind == "vit" else {}
    ref = Localizer(_backbone(kind, torch.float32), method, **params)
    low = Localizer(_backbone(kind, dtype), method, **params)
    phrase = "a cup of coffee"
    a, b = ref(img, phrase), low(img, phrase)
    assert b.score_map.dtype == a.score_map.dtype and np.isfinite(b.score_map).all()
    ca, cb = ref.cosines(ref.prepare(img), phrase), low.cosines(low.prepare(img), phrase)
    tol = 2e-3 if dtype == torch.float16 else 1.6e-2  # cosines, absolute: ~2 ulps of fp16 / bf16 at 1
    assert np.abs(ca - cb).max() < tol
    # the box found on the low-precision map is (near) optimal on the fp32 map
    alpha = ref.params["alpha"]
    assert box_objective(a.score_map, b.cell_box, alpha) >= box_objective(a.score_map, a.cell_box, alpha) - 0.05


def test_dilated_resnet_in_fp16_small_input():
    from grounding.methods import resnet_dense

    x = torch.randn(1, 3, 64, 64)
    a = resnet_dense.resnet_dense_embeddings(_backbone("resnet", torch.float32).model.visual, x, high_res=True, pad=16)
    b = resnet_dense.resnet_dense_embeddings(_backbone("resnet", FP16).model.visual, x.half(), high_res=True, pad=16)
    assert b.dtype == FP16 and a.shape == b.shape
    cos = torch.nn.functional.cosine_similarity(a, b.float(), dim=1)
    assert cos.min() > 0.999


def test_crop_rank_runs_in_fp16():
    img = skimage.data.coffee()
    a = CropRank(_backbone("vit", torch.float32), num_proposals=8)(img, "a cup")
    b = CropRank(_backbone("vit", torch.float16), num_proposals=8)(img, "a cup")
    assert a.box == b.box
