"""Ours and DenseCLIP, ResNet (paper §3.3, §4.4): per-pixel embeddings from CLIP's ResNet.

The attention pool of CLIP's ResNet reduces, per position, to its value and output projections
(:func:`value_path_embeddings`, Eq. 13). "ours" converts the strided trunk to a dilated one
(:func:`dilate_resnet_trunk`) so the map keeps the input resolution; DenseCLIP keeps the strided,
1/32-resolution map.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..stages.score_map import phi
from .base import BOX_PARAMS, Param, register_method
from .dense import DenseMethod, Prepared


class DilatedAvgPool2d(nn.Module):
    """``AvgPool2d(k)`` made dense: stride 1, taps ``dilation`` apart, no padding (output shrinks
    by ``(k-1)·dilation``). On the stride lattice it equals the strided pooling."""

    def __init__(self, kernel: int, dilation: int):
        super().__init__()
        self.kernel, self.dilation = int(kernel), int(dilation)

    def forward(self, x):
        k, d = self.kernel, self.dilation
        span = (k - 1) * d
        h, w = x.shape[-2] - span, x.shape[-1] - span
        acc = 0
        for i in range(k):
            for j in range(k):
                acc = acc + x[..., i * d:i * d + h, j * d:j * d + w]
        return acc / (k * k)

    def extra_repr(self):
        return f"kernel={self.kernel}, dilation={self.dilation}"


def _densify_conv(conv: nn.Conv2d, rate: int) -> int:
    """Turn a (possibly strided) conv at cumulative stride ``rate`` into a stride-1 dilated conv."""
    stride = int(conv.stride[0])
    k = int(conv.kernel_size[0])
    conv.stride = (1, 1)
    conv.dilation = (rate, rate)
    conv.padding = ((k - 1) // 2 * rate,) * 2
    return rate * stride


def _densify_pool(pool: nn.Module, rate: int) -> Tuple[nn.Module, int]:
    if isinstance(pool, nn.AvgPool2d):
        k = pool.kernel_size if isinstance(pool.kernel_size, int) else pool.kernel_size[0]
        return DilatedAvgPool2d(k, rate), rate * k
    return pool, rate


def dilate_resnet_trunk(visual) -> nn.Module:
    """Copy of CLIP's ModifiedResNet with every stride replaced by dilation (paper §4.4).

    Pretrained weights are unchanged. Walking the network with the cumulative stride ``rate``:
    a stride-s conv becomes stride 1 with dilation ``rate``; a k×k conv after it uses dilation
    ``rate``; each ``AvgPool2d(k)`` becomes :class:`DilatedAvgPool2d` with dilation ``rate``.
    On the lattice ``32·i`` the output equals the strided trunk's output ``i``.
    """
    v = copy.deepcopy(visual)
    rate = 1
    for conv in (v.conv1, v.conv2, v.conv3):
        rate = _densify_conv(conv, rate)
    v.avgpool, rate = _densify_pool(v.avgpool, rate)
    for layer in (v.layer1, v.layer2, v.layer3, v.layer4):
        for block in layer:
            if not all(hasattr(block, a) for a in ("conv2", "avgpool", "downsample")):
                raise ValueError(f"{type(block).__name__} is not a CLIP Bottleneck (conv2, avgpool, downsample)")
            block_rate = rate
            _densify_conv(block.conv2, block_rate)  # 3x3, stride 1 in CLIP's bottleneck
            block.avgpool, rate = _densify_pool(block.avgpool, block_rate)
            if block.downsample is not None and isinstance(block.downsample[0], nn.AvgPool2d):
                block.downsample[0], _ = _densify_pool(block.downsample[0], block_rate)
    return v


def _stem_activation(visual, i: int) -> nn.Module:
    """The ReLU after stem conv ``i``: ``relu{i}`` in OpenAI's ModifiedResNet, ``act{i}`` in open_clip's."""
    act = getattr(visual, f"relu{i}", None) or getattr(visual, f"act{i}", None)
    if act is None:
        raise ValueError(f"{type(visual).__name__} has neither relu{i} nor act{i}: not a CLIP ModifiedResNet")
    return act


def resnet_trunk(visual, x: torch.Tensor) -> torch.Tensor:
    """CLIP ResNet forward up to (not including) the attention pool: (N, C, h, w). The stem (conv1..3, bn1..3,
    their ReLUs, avgpool), layer1..4 and their Bottlenecks are named alike in OpenAI's and open_clip's
    ModifiedResNet; only the stem ReLUs differ (:func:`_stem_activation`)."""
    x = x.to(visual.conv1.weight.dtype)
    for i in (1, 2, 3):
        conv, bn = getattr(visual, f"conv{i}"), getattr(visual, f"bn{i}")
        x = _stem_activation(visual, i)(bn(conv(x)))
    x = visual.avgpool(x)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)
    return x


def value_path_embeddings(attnpool: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 13: per position, the attention pool reduces to c_proj(v_proj(x)). (N,C,h,w)→(N,E,h,w)."""
    x = features.permute(0, 2, 3, 1)
    x = F.linear(x, attnpool.v_proj.weight, attnpool.v_proj.bias)
    x = F.linear(x, attnpool.c_proj.weight, attnpool.c_proj.bias)
    return x.permute(0, 3, 1, 2)


RESNET_PAD = 64  # the reference's zero pad (in normalised-image space) against border effects


@torch.no_grad()
def resnet_dense_embeddings(visual, image: torch.Tensor, *, high_res: bool = True,
                            dilated_visual: Optional[nn.Module] = None, pad: int = RESNET_PAD) -> torch.Tensor:
    """Per-pixel embeddings (1, E, H, W) for one normalised image (1, 3, H, W).

    high_res=True ("ours"): dilated trunk, full-resolution map. high_res=False ("DenseCLIP"): the
    strided map (H/32). Both: pad by 64 zeros, crop the centre, bilinearly resize to H×W (as the reference).
    """
    h, w = image.shape[-2:]
    trunk = (dilated_visual if dilated_visual is not None else dilate_resnet_trunk(visual)) if high_res else visual
    x = F.pad(image.to(visual.conv1.weight.dtype), (pad, pad, pad, pad))
    feats = value_path_embeddings(visual.attnpool, resnet_trunk(trunk, x))
    th, tw = (h, w) if high_res else (h // 32, w // 32)
    oy, ox = (feats.shape[-2] - th) // 2, (feats.shape[-1] - tw) // 2
    feats = feats[..., oy:oy + th, ox:ox + tw]
    return F.interpolate(feats, size=(h, w), mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------- the methods
RESNET_PARAMS = dict(BOX_PARAMS, high_res=Param("bool", "dilated full-resolution trunk (ours) or strided (DenseCLIP)",
                                                 feature=True))


@register_method("ours_resnet")
class OursResNet(DenseMethod):
    """Ours on a ResNet: the attention pool's value path on the dilated trunk; the map is φ per pixel."""

    PARAMS = RESNET_PARAMS
    feature_dim = 1
    paper_defaults = "ours"

    def __init__(self, backbone=None, **kwargs):
        super().__init__(backbone, **kwargs)
        self._dilated = None

    def features(self, prepared: Prepared) -> torch.Tensor:
        visual = self.backbone.visual
        high_res = bool(prepared.params["high_res"])
        if high_res and self._dilated is None:
            self._dilated = dilate_resnet_trunk(visual)
        return resnet_dense_embeddings(visual, self.input_tensor(prepared), high_res=high_res,
                                       dilated_visual=self._dilated)

    def score_map_from_cosines(self, prepared: Prepared, cos, params):
        return phi(cos, params["temperature"])  # not normalised, as the reference


@register_method("denseclip")
class DenseCLIP(OursResNet):
    """DenseCLIP baseline: the value path on the strided (1/32) map, bilinearly resized."""

    paper_defaults = "denseclip"
