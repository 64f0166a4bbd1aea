"""``proposals=detector``: a torchvision detection model (``proposals.arch=fasterrcnn_resnet50_fpn_v2``,
``maskrcnn_resnet50_fpn``, ``retinanet_resnet50_fpn``, …) run on each image; boxes above
``score_threshold``, the ``top_k`` best, with their scores and label names.

Weights are never downloaded: the model is built with ``weights=None, weights_backbone=None`` and the
state dict of ``proposals.weights=FILE`` is loaded with ``torch.load(weights_only=True)``. Label names come
from torchvision's metadata of that architecture's weights (the COCO categories; no download) or from
``proposals.labels=FILE`` (a JSON list, or one name per line; index = the model's label id).
"""
from __future__ import annotations

import json
import os
from typing import List, Optional

import numpy as np

from .base import ProposalError, ProposalSet, ProposalSource, file_sha256


def label_names(arch: str, labels_file: Optional[str] = None) -> List[str]:
    """The model's label id → name list: ``labels_file``, or torchvision's weights metadata for ``arch``."""
    if labels_file:
        try:
            text = open(labels_file).read()
        except OSError as e:
            raise ProposalError(f"proposals.labels={labels_file}: {e.strerror or e}") from None
        try:
            names = json.loads(text)
        except ValueError:
            names = [line.strip() for line in text.splitlines() if line.strip()]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ProposalError(f"proposals.labels={labels_file}: expected a JSON list of names or one name per line")
        return names
    from torchvision.models import get_model_weights

    try:
        return list(get_model_weights(arch).DEFAULT.meta["categories"])
    except (ValueError, KeyError, AttributeError) as e:
        raise ProposalError(f"proposals.arch={arch}: no label names in torchvision's metadata ({e}); "
                            f"give proposals.labels=FILE") from None


def check_arch(arch: str) -> None:
    from torchvision.models import list_models
    from torchvision.models import detection

    known = list_models(module=detection)
    if arch not in known:
        raise ProposalError(f"proposals.arch={arch!r}: not a torchvision detection model; one of {', '.join(known)}")


class TorchvisionDetector(ProposalSource):
    name = "detector"

    def __init__(self, arch="fasterrcnn_resnet50_fpn_v2", weights=None, labels=None, score_threshold=0.3,
                 top_k=50, device="cpu", **params):
        super().__init__(arch=arch, weights=weights, labels=labels, score_threshold=score_threshold, top_k=top_k,
                         **params)
        check_arch(str(arch))
        if not weights or not os.path.isfile(str(weights)):
            raise ProposalError(f"proposals.weights={weights}: a torchvision state-dict file is required (weights "
                                f"are never downloaded), e.g. fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth")
        if not (isinstance(top_k, int) and top_k > 0) or not 0 <= float(score_threshold) < 1:
            raise ProposalError(f"proposals.top_k={top_k!r} / proposals.score_threshold={score_threshold!r}: "
                                f"expected an integer > 0 and a number in [0, 1)")
        self.arch, self.weights, self.device = str(arch), str(weights), device
        self.names = label_names(self.arch, labels)
        self.score_threshold, self.top_k = float(score_threshold), int(top_k)
        self.model = None

    def identity(self):
        out = {"weights_sha256": file_sha256(self.weights)}
        if self.params.get("labels"):
            out["labels_sha256"] = file_sha256(self.params["labels"])
        return out

    def load(self):
        import torch
        from torchvision.models import get_model

        model = get_model(self.arch, weights=None, weights_backbone=None, num_classes=len(self.names))
        try:
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 — an untrusted or corrupt file
            raise ProposalError(f"proposals.weights={self.weights}: not a state dict torch can read safely "
                                f"({type(e).__name__}: {str(e)[:120]})") from None
        state = state.get("model", state) if isinstance(state, dict) else state
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as e:
            raise ProposalError(f"proposals.weights={self.weights} does not fit {self.arch} with "
                                f"{len(self.names)} classes ({str(e).splitlines()[0][:160]})") from None
        self.model = model.eval().to(self.device)
        return self.model

    def detect(self, image: np.ndarray) -> ProposalSet:
        """Boxes of an RGB uint8 image, best first (the model's order), thresholded and cut to top_k."""
        import torch

        model = self.model or self.load()
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255).to(self.device)
        with torch.no_grad():
            out = model([x])[0]
        scores = out["scores"].cpu().numpy().astype(np.float64)
        keep = np.flatnonzero(scores >= self.score_threshold)[: self.top_k]
        labels = out["labels"].cpu().numpy()[keep]
        names = [self.names[i] if 0 <= i < len(self.names) else str(i) for i in labels]
        boxes = out["boxes"].cpu().numpy().astype(np.float64)[keep].reshape(-1, 4)
        good = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return ProposalSet(boxes[good], scores[keep][good], [n for n, g in zip(names, good) if g],
                           dropped=int((~good).sum()))

    def for_image(self, image_path) -> ProposalSet:
        from ..data.images import to_pil_rgb

        arr = np.asarray(to_pil_rgb(image_path))
        got = self.detect(arr)
        if len(got) == 0:  # nothing above the threshold: the whole image, as for a detections file
            h, w = arr.shape[:2]
            return ProposalSet(np.array([[0.0, 0.0, w, h]]), np.array([0.0]), ["object"], got.dropped,
                               meta={"whole_image": True})
        return got
