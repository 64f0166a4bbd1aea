"""Visual-prompt proposal rankers: ReCLIP's isolated scoring, Red-Circle and FGVP's blurred box (issue #22).

Each proposal box is shown to CLIP in one or more *representations* and scored against the prompted
expression; the proposal with the highest summed logit wins. Written from a reading of
allenai/reclip @ 3ed4f47 (``executor.py`` ``Executor.tensorize_inputs`` / ``ClipExecutor``,
``interpreter.py`` ``Environment.filter``) and ylingfeng/FGVP @ 80b067b (``fgvp-reclip/executor.py``,
``fine_grained_visual_prompt.py``, ``transforms.py``), and checked against their code by goldens
(``scripts/proposal_parity/``, ``tests/test_visual_prompt.py``).

Representations (``representations=[…]``, any subset):

- ``crop`` (ReCLIP): ``PIL.Image.crop`` of the box clamped to the image (Pillow rounds the float
  corners), squashed to R×R with PIL bicubic, CLIP mean/std;
- ``blur`` (ReCLIP): the whole image blurred with PIL ``GaussianBlur(100)``, the box (``ImageDraw``'s
  truncated, inclusive corners) pasted back sharp, squashed to R×R bicubic;
- ``circle`` (Red-Circle, FGVP's implementation) and ``blur_box_mask`` (FGVP's "blur reverse box
  mask"): the image resized to 384 on its shorter side (PIL bilinear), boxes scaled in float32 and
  clamped to ``[0, w-1]×[0, h-1]``; a red cv2 ellipse (thickness 2, LINE_8) inscribed in the box, or the
  resized image blurred outside the truncated inclusive box; then ``(x − 255·mean)/(255·std)`` and two
  non-antialiased bilinear resizes, to 384×384 and to R×R.

Scores: ``logit_scale.exp() · cos(text, image)`` per model, proposal and representation, summed over
the models (main backbone + ``ensemble``); with ``subtract`` the caption bank's mean logit is taken off
per representation (FGVP's score subtraction); then the sum (or max) over representations gives
``.scores``; ``.probs`` is their softmax and ``.index`` the first argmax.

The image side (:meth:`VisualPromptRanker.image_side`: every proposal's renders and embeddings) depends
only on the image and the proposals, and is reused for every expression of that image.

On the proposal seat (:mod:`grounding.methods.proposal`) as ``method=reclip|red_circle|fgvp_box``
(:class:`VisualPromptMethod`): the seat clips and memoises, :class:`VisualPromptRanker` computes (its
numbers unchanged). Isolated scoring only: ReCLIP's spaCy relation resolver and FGVP's SAM masks are not here.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFilter

from ..data.images import CLIP_MEAN, CLIP_STD, ImageLike, to_pil_rgb
from .base import ConfigError, Param, positive, register_method, validate_params
from .proposal import ProposalMethod

REPRESENTATIONS = ("crop", "blur", "circle", "blur_box_mask")
AGGREGATORS = ("sum", "max")
PRESETS = {"reclip": ("crop", "blur"), "red_circle": ("crop", "circle"), "fgvp_box": ("crop", "blur_box_mask")}
BLUR_RADIUS = 100  # ReCLIP's --blur_std_dev / FGVP's blur_std_dev (PIL radius = sigma)
FGVP_SIZE = 384  # FGVP's --clip_image_size / --clip_crop_pct (1.0)
RED = (255, 0, 0)  # FGVP's str2rgb("red"), drawn on RGB data
CIRCLE_THICKNESS = 2
BANK_SIZE = 500  # FGVP main.py: 500 expressions of the split


def prompt(expression: str) -> str:
    """ReCLIP's and FGVP's text prompt (``ClipExecutor.preprocess_text`` / ``--text_prompt``)."""
    return "a photo of " + expression.lower()


# ----------------------------------------------------------------------------------- backbone access


@dataclass
class ClipParts:
    """What the rankers need from one loaded CLIP: the only place that knows the backbone adapter."""

    encode_image: object  # (N, 3, R, R) normalised → (N, E)
    encode_tokens: object  # (T, context) tokens → (T, E)
    tokenize: object  # str → (1, context)
    logit_scale: torch.Tensor  # exp() of the learned scale, fp32 scalar
    size: int  # R
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    device: torch.device
    dtype: torch.dtype


def clip_parts(backbone) -> ClipParts:
    """A :class:`grounding.models.backbones.Backbone` → :class:`ClipParts`."""
    model = backbone.model
    return ClipParts(
        encode_image=lambda x: backbone.encode_image(x).float(),
        encode_tokens=lambda t: model.encode_text(t.to(backbone.device)).float(),
        tokenize=backbone.tokenize,
        logit_scale=model.logit_scale.detach().float().exp().cpu(),
        size=int(backbone.input_size),
        mean=tuple(getattr(backbone, "mean", CLIP_MEAN)), std=tuple(getattr(backbone, "std", CLIP_STD)),
        device=backbone.device, dtype=backbone.dtype)


# ----------------------------------------------------------------------------------- ReCLIP renders


def clamp_box(box: Sequence[float], width: int, height: int) -> Tuple[float, float, float, float]:
    """ReCLIP's box (``enlarge_boxes`` 0): ``(max(x1, 0), max(y1, 0), min(x2, W), min(y2, H))``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)


def render_crop(image: Image.Image, box: Sequence[float]) -> Image.Image:
    """ReCLIP ``crop``: Pillow's crop of the clamped box (Pillow rounds the float corners)."""
    return image.crop(clamp_box(box, *image.size))


def render_blur(image: np.ndarray, blurred: np.ndarray, box: Sequence[float]) -> Image.Image:
    """ReCLIP ``blur``: ``blurred`` (the whole image under GaussianBlur(100)) with the box pasted back sharp;
    the box's pixels are those ``ImageDraw.rectangle`` fills for the clamped float corners."""
    mask = Image.new("L", (image.shape[1], image.shape[0]), 0)
    b = clamp_box(box, image.shape[1], image.shape[0])
    ImageDraw.Draw(mask).rectangle([b[:2], b[2:]], fill=255)
    keep = np.asarray(mask)[..., None] > 0
    return Image.fromarray(np.where(keep, image, blurred))


def squash(images: List[Image.Image], size: int, mean, std) -> torch.Tensor:
    """CLIP's preprocess with ReCLIP's square resize: PIL bicubic to size×size, /255, (x − mean)/std."""
    arr = np.stack([np.asarray(im.resize((size, size), Image.BICUBIC).convert("RGB")) for im in images])
    t = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0)
    return (t - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# ------------------------------------------------------------------------------------- FGVP renders


def fgvp_resize(image: Image.Image, short: float = FGVP_SIZE) -> np.ndarray:
    """FGVP ``ResizeShortestSide(384)``: ``int(side·384/min(h, w) + 0.5)``, PIL bilinear (antialiased)."""
    w, h = image.size
    scale = short * 1.0 / min(h, w)
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    return np.asarray(image.resize((new_w, new_h), Image.BILINEAR))


def fgvp_boxes(boxes: np.ndarray, old_hw: Tuple[int, int], new_hw: Tuple[int, int]) -> torch.Tensor:
    """Boxes as FGVP sees them after its resize: float32, x·new_w/old_w, y·new_h/old_h, clamped to
    ``[0, new_w − 1] × [0, new_h − 1]`` (``apply_boxes_torch`` + ``boxes_to_circles``)."""
    b = torch.tensor(np.asarray(boxes, dtype=np.float64).tolist(), dtype=torch.float32).reshape(-1, 4)
    b[:, 0::2] = b[:, 0::2] * (new_hw[1] / old_hw[1])
    b[:, 1::2] = b[:, 1::2] * (new_hw[0] / old_hw[0])
    b[:, 0::2] = torch.clamp(b[:, 0::2], 0, new_hw[1] - 1)
    b[:, 1::2] = torch.clamp(b[:, 1::2], 0, new_hw[0] - 1)
    return b


def render_circle(image: np.ndarray, box: torch.Tensor) -> np.ndarray:
    """Red-Circle as FGVP draws it: cv2 ellipse inscribed in the box (centre and half-axes truncated)."""
    w, h = box[2] - box[0], box[3] - box[1]
    centre = torch.stack([box[0] + 0.5 * w, box[1] + 0.5 * h]).numpy().astype(int)
    axes = (torch.stack([w, h]) / 2).numpy().astype(int)
    return cv2.ellipse(image.copy(), tuple(int(v) for v in centre), tuple(int(v) for v in axes), 0, 0, 360,
                       color=RED, thickness=CIRCLE_THICKNESS)


def render_blur_box_mask(image: np.ndarray, blurred: np.ndarray, box: torch.Tensor) -> np.ndarray:
    """FGVP ``blur_box_mask``: blurred outside the truncated box, both ends inclusive."""
    x1, y1, x2, y2 = (int(v) for v in box.int().tolist())
    out = blurred.copy()
    out[y1:y2 + 1, x1:x2 + 1] = image[y1:y2 + 1, x1:x2 + 1]
    return out


def fgvp_normalise(images: np.ndarray, mean, std) -> torch.Tensor:
    """(N, h, w, 3) uint8 → ``(x − 255·mean)/(255·std)``, then bilinear (no antialias) to 384×384."""
    t = torch.from_numpy(images).float().permute(0, 3, 1, 2)
    m = torch.tensor(mean).view(-1, 1, 1) * 255.0
    s = torch.tensor(std).view(-1, 1, 1) * 255.0
    return F.interpolate((t - m) / s, (FGVP_SIZE, FGVP_SIZE), mode="bilinear", align_corners=False)


# ------------------------------------------------------------------------------------ both sides


@dataclass
class ImageSide:
    """Everything about one (image, proposal set) that does not depend on the expression."""

    proposals: np.ndarray  # (N, 4) pixel corners, as given
    representations: Tuple[str, ...]
    embeddings: List[torch.Tensor]  # per model: (n_reps, N, E), L2-normalised, fp32
    scales: List[torch.Tensor]  # per model: logit_scale.exp()


@dataclass
class ProposalRanking:
    """A ranker's answer: the chosen proposal, its position, the summed logits and their softmax."""

    box: Tuple[float, float, float, float]
    index: int
    scores: np.ndarray  # (N,) summed logits before the softmax
    probs: np.ndarray  # (N,) softmax over proposals
    phrase: str = ""
    score_map: None = None


class Renders:
    """A proposal set's renders, model-independent; :meth:`batch` gives one representation's CLIP input."""

    def __init__(self, image: ImageLike, proposals: np.ndarray, representations: Sequence[str]):
        self.pil = to_pil_rgb(image)
        self.arr = np.asarray(self.pil)
        self.proposals = proposals
        self._fgvp = None
        if "blur" in representations:
            self.blurred = np.asarray(self.pil.filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))

    def pil_images(self, rep: str) -> List[Image.Image]:
        if rep == "crop":
            return [render_crop(self.pil, b) for b in self.proposals]
        return [render_blur(self.arr, self.blurred, b) for b in self.proposals]

    def fgvp_images(self, rep: str) -> np.ndarray:
        if self._fgvp is None:
            small = fgvp_resize(self.pil)
            boxes = fgvp_boxes(self.proposals, self.arr.shape[:2], small.shape[:2])
            self._fgvp = (small, boxes, None)
        small, boxes, blurred = self._fgvp
        if rep == "circle":
            return np.stack([render_circle(small, b) for b in boxes])
        if blurred is None:
            blurred = np.asarray(Image.fromarray(small).filter(ImageFilter.GaussianBlur(BLUR_RADIUS)))
            self._fgvp = (small, boxes, blurred)
        return np.stack([render_blur_box_mask(small, blurred, b) for b in boxes])

    def batch(self, rep: str, parts: ClipParts, cache: Dict) -> torch.Tensor:
        """(N, 3, R, R) normalised input for one model (renders shared across models of equal R)."""
        if rep in ("crop", "blur"):
            key = (rep, parts.size, parts.mean, parts.std)
            if key not in cache:
                cache[key] = squash(self.pil_images(rep), parts.size, parts.mean, parts.std)
            return cache[key]
        key = (rep, parts.mean, parts.std)
        if key not in cache:
            cache[key] = fgvp_normalise(self.fgvp_images(rep), parts.mean, parts.std)
        return F.interpolate(cache[key], (parts.size, parts.size), mode="bilinear", align_corners=False)


@torch.no_grad()
def embed_batches(parts: ClipParts, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """L2-normalised image embeddings (N, E) of a normalised batch, ``batch_size`` at a time."""
    out = [parts.encode_image(x[i:i + batch_size].to(device=parts.device, dtype=parts.dtype)).cpu()
           for i in range(0, len(x), batch_size)]
    e = torch.cat(out)
    return e / e.norm(dim=-1, keepdim=True)


@torch.no_grad()
def encode_texts(parts: ClipParts, texts: Sequence[str]) -> torch.Tensor:
    """L2-normalised text embeddings (T, E) of already prompted texts."""
    tokens = torch.cat([parts.tokenize(t) for t in texts])
    e = parts.encode_tokens(tokens).cpu()
    return e / e.norm(dim=-1, keepdim=True)


def combine(side: ImageSide, query: List[torch.Tensor], bank_mean: Optional[List[torch.Tensor]],
            aggregator: str) -> torch.Tensor:
    """Scores (N,): Σ_models logit_scale·cos per representation and proposal, minus the caption bank's mean
    logit when ``bank_mean`` is given (FGVP ``--score_subtracting``, before the representations are
    combined; the mean of logits is the logit of the mean embedding), then sum or max over representations."""
    total = sum(s * (e @ q) for e, s, q in zip(side.embeddings, side.scales, query))  # (n_reps, N)
    if bank_mean is not None:
        total = total - sum(s * (e @ m) for e, s, m in zip(side.embeddings, side.scales, bank_mean))
    return total.sum(0) if aggregator == "sum" else total.max(0).values


def draw_caption_bank(expressions: Sequence[str], seed: int, size: int = BANK_SIZE) -> List[str]:
    """The subtraction bank: ``size`` distinct expressions of the split drawn with ``seed`` (FGVP draws 500
    without a seed). The expressions are sorted first, so the bank does not depend on row order."""
    pool = sorted(set(expressions))
    rng = np.random.default_rng([int(seed), zlib.crc32("caption_bank".encode())])
    return [pool[i] for i in sorted(rng.choice(len(pool), min(size, len(pool)), replace=False))]


def check_options(representations, aggregator, subtract, caption_bank) -> Tuple[str, ...]:
    """One-line :class:`ConfigError` for a bad option; returns the representations as a tuple."""
    reps = (representations,) if isinstance(representations, str) else tuple(representations or ())
    bad = [r for r in reps if r not in REPRESENTATIONS]
    if not reps or bad or len(set(reps)) != len(reps):
        raise ConfigError(f"method.representations={list(reps)}: give a non-empty subset of "
                          f"{list(REPRESENTATIONS)} without repeats")
    if aggregator not in AGGREGATORS:
        raise ConfigError(f"method.aggregator={aggregator!r}: use one of {list(AGGREGATORS)}")
    if subtract and caption_bank is not None and len(caption_bank) == 0:
        raise ConfigError("method.subtract=true with an empty caption_bank: give expressions or leave it null "
                          "to draw the split's with method.subtract_seed")
    return reps


class VisualPromptRanker:
    """ReCLIP / Red-Circle / FGVP ranking of given proposals (presets ``reclip``, ``red_circle``, ``fgvp_box``).

    ``backbone``: the main :class:`~grounding.models.backbones.Backbone`; ``ensemble``: more backbones (loaded
    ones or spellings for ``load_backbone``, checkpoint paths included) whose logits are summed with it;
    ``representations`` a subset of :data:`REPRESENTATIONS`; ``aggregator`` ``sum`` | ``max``;
    ``subtract``: FGVP's score subtraction with ``caption_bank`` (raw expressions, prompted like the query)
    or, when it is None, a bank the caller draws from the split with :func:`draw_caption_bank` and
    ``subtract_seed`` and sets with :meth:`set_caption_bank`.
    """

    def __init__(self, backbone=None, *, name: str = "reclip", representations: Optional[Sequence[str]] = None,
                 aggregator: str = "sum", ensemble: Sequence = (), subtract: bool = False,
                 subtract_seed: int = 0, caption_bank: Optional[Sequence[str]] = None, bank_size: int = BANK_SIZE,
                 batch_size: int = 32, device="cpu", precision: str = "auto", **_seat):
        reps = representations if representations is not None else PRESETS.get(name)
        self.representations = check_options(reps, aggregator, subtract, caption_bank)
        self.name, self.aggregator, self.subtract = name, aggregator, bool(subtract)
        self.subtract_seed, self.bank_size, self.batch_size = int(subtract_seed), int(bank_size), int(batch_size)
        self.ensemble_spec = list(ensemble or ())
        self.caption_bank = None if caption_bank is None else list(caption_bank)
        self.device, self.precision = device, precision
        self.backbone = backbone
        self._parts: Optional[List[ClipParts]] = None
        self._bank_mean: Optional[List[torch.Tensor]] = None

    def identity(self) -> dict:
        """What changes a prediction (for the run identity)."""
        return dict(name=self.name, representations=list(self.representations), aggregator=self.aggregator,
                    ensemble=[str(getattr(e, "source", None) or getattr(e, "name", e)) for e in self.ensemble_spec],
                    subtract=self.subtract, subtract_seed=self.subtract_seed if self.subtract else None,
                    caption_bank=self.caption_bank if self.subtract else None, bank_size=self.bank_size)

    def models(self) -> List[ClipParts]:
        """The main backbone's and the ensemble's :class:`ClipParts` (ensemble loaded on first use)."""
        if self._parts is None:
            from ..models.backbones import Backbone, load_backbone

            extra = [e if isinstance(e, Backbone) else load_backbone(e, device=self.device, precision=self.precision)
                     for e in self.ensemble_spec]
            self._parts = [clip_parts(b) for b in [self.backbone, *extra]]
        return self._parts

    def set_caption_bank(self, expressions: Sequence[str]) -> None:
        """Use ``expressions`` (raw; prompted here) as the subtraction bank."""
        self.caption_bank, self._bank_mean = list(expressions), None

    def image_side(self, image: ImageLike, proposals) -> ImageSide:
        """Every proposal's renders and their embeddings, per model: computed once per (image, proposals)."""
        boxes = np.asarray(proposals, dtype=np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            raise ConfigError("no proposals to rank: give at least one [x1, y1, x2, y2] box")
        renders, cache = Renders(image, boxes, self.representations), {}
        parts = self.models()
        embeddings = [torch.stack([embed_batches(p, renders.batch(r, p, cache), self.batch_size)
                                   for r in self.representations]) for p in parts]
        return ImageSide(boxes, self.representations, embeddings, [p.logit_scale for p in parts])

    def bank_mean(self) -> Optional[List[torch.Tensor]]:
        if not self.subtract:
            return None
        if self.caption_bank is None:
            raise ConfigError("method.subtract=true needs a caption bank: caption_bank=[…] or "
                              "set_caption_bank(draw_caption_bank(split expressions, subtract_seed))")
        if self._bank_mean is None:
            texts = [prompt(e) for e in self.caption_bank]
            self._bank_mean = [encode_texts(p, texts).mean(0) for p in self.models()]
        return self._bank_mean

    def rank(self, side: ImageSide, phrase: str) -> ProposalRanking:
        """Score ``phrase`` against a prepared :class:`ImageSide`."""
        query = [encode_texts(p, [prompt(phrase)])[0] for p in self.models()]
        scores = combine(side, query, self.bank_mean(), self.aggregator)
        probs = scores.float().softmax(dim=-1).numpy()
        index = int(np.argmax(probs))
        box = tuple(float(v) for v in side.proposals[index])
        return ProposalRanking(box, index, scores.numpy().astype(np.float64), probs.astype(np.float64), phrase)

    def __call__(self, image: ImageLike, phrase: str, proposals) -> ProposalRanking:
        return self.rank(self.image_side(image, proposals), phrase)


def localize_proposals(image: ImageLike, phrase: str, *, backbone, method: str = "reclip", proposals,
                       ensemble: Sequence = (), caption_bank: Optional[Sequence[str]] = None,
                       representations: Optional[Sequence[str]] = None, **params) -> ProposalRanking:
    """``grounding.localize(..., method='reclip'|'red_circle'|'fgvp_box', proposals=…)`` for these rankers:
    ``subtract`` defaults to true when a ``caption_bank`` is given. ``backbone``: a loaded Backbone."""
    params.setdefault("subtract", caption_bank is not None)
    ranker = VisualPromptRanker(backbone, name=method, representations=representations, ensemble=ensemble,
                                caption_bank=caption_bank, **params)
    return ranker(image, phrase, proposals)


# ------------------------------------------------------------------------------- the proposal seat

LIST_PARAMS = ("representations", "ensemble", "caption_bank")


def check_lists(name: str, representations, ensemble, caption_bank) -> dict:
    """The list-valued options (one-line :class:`ConfigError`s), as plain lists."""
    reps = check_options(PRESETS.get(name) if representations is None else representations, "sum", False, None)
    for key, v in (("ensemble", ensemble), ("caption_bank", caption_bank)):
        if v is not None and (isinstance(v, str) or not all(isinstance(x, str) or key == "ensemble" for x in v)):
            raise ConfigError(f"method.{key}={v!r}: expected a list of "
                              f"{'backbones (names, config keys or checkpoint paths)' if key == 'ensemble' else 'expressions'}")
    return {"representations": list(reps), "ensemble": list(ensemble or ()),
            "caption_bank": None if caption_bank is None else list(caption_bank)}


@dataclass(frozen=True)
class ListParam(Param):
    """A list-valued option (checked by :func:`check_lists`, not by :func:`validate_params`)."""

    def coerce(self, key, value):
        return value

    def describe(self) -> str:
        return "a list"


class VisualPromptMethod(ProposalMethod):
    """ReCLIP / Red-Circle / FGVP prompts on the proposal seat: ``image_side`` = every proposal's renders and
    embeddings (all representations, all models), ``score`` = the summed logits, ``probs`` = their softmax.
    ``set_split_phrases`` (optional hook) draws the subtraction bank from the split with ``subtract_seed``."""

    PARAMS = {
        "representations": ListParam("list", "any subset of crop, blur, circle, blur_box_mask (null: the preset)"),
        "ensemble": ListParam("list", "more backbones whose logits are summed with the main one, e.g. [rn50x16]",
                              default=()),
        "caption_bank": ListParam("list", "explicit subtraction bank (raw expressions, prompted like the query)"),
        "aggregator": Param("str", "sum | max over representations", choices=AGGREGATORS, default="sum"),
        "subtract": Param("bool", "FGVP's score subtraction (mean logit of a caption bank, per representation)",
                          default=False),
        "subtract_seed": Param("int", "seed of the bank drawn from the split's expressions (when caption_bank is "
                                      "null)", default=0),
        "bank_size": Param("int", "expressions in the drawn bank", positive, "(> 0)", default=BANK_SIZE),
        "batch_size": Param("int", "renders embedded per forward pass", positive, "(> 0)", default=32),
    }

    @classmethod
    def preset(cls, name: str) -> dict:
        """The ``PARAMS`` of the preset ``name``: its representations (:data:`PRESETS`) as the default."""
        reps = cls.PARAMS["representations"]
        return {**cls.PARAMS, "representations": ListParam(reps.kind, reps.doc, default=PRESETS[name])}

    @classmethod
    def validate(cls, params, backbone_kind=None) -> dict:
        lists = check_lists(cls.name, *(params.get(k) for k in LIST_PARAMS))
        return {**validate_params(cls.name, cls.PARAMS, params), **lists}

    def __init__(self, backbone=None, *, representations=None, ensemble=(), caption_bank=None, precision="auto",
                 **kwargs):
        if caption_bank is not None and kwargs.get("subtract") is None:
            kwargs["subtract"] = True  # a bank given without subtract: subtract with it (the API's caption_bank=)
        super().__init__(backbone, precision=precision, **kwargs)
        lists = check_lists(self.name, representations, ensemble, caption_bank)
        p = self.params
        self.ranker = VisualPromptRanker(self.backbone, name=self.name, representations=lists["representations"],
                                         aggregator=p["aggregator"], ensemble=lists["ensemble"],
                                         subtract=p["subtract"], subtract_seed=p["subtract_seed"],
                                         caption_bank=lists["caption_bank"], bank_size=p["bank_size"],
                                         batch_size=p["batch_size"], device=self.device, precision=precision)
        p.update(lists, ensemble=self.ranker.identity()["ensemble"])

    representations = property(lambda self: self.ranker.representations)
    aggregator = property(lambda self: self.ranker.aggregator)
    subtract = property(lambda self: self.ranker.subtract)

    def identity(self) -> dict:
        return self.ranker.identity()

    def set_split_phrases(self, phrases) -> None:
        """The optional hook: with ``subtract`` and no explicit bank, draw it from the split's expressions."""
        if self.ranker.subtract and self.params.get("caption_bank") is None:
            self.ranker.set_caption_bank(draw_caption_bank(phrases, self.ranker.subtract_seed, self.ranker.bank_size))

    def image_side(self, image, proposals) -> ImageSide:
        return self.ranker.image_side(image, proposals.given)  # the authors clamp the boxes themselves

    def score(self, features, proposals, phrase, prepared) -> np.ndarray:
        return self.ranker.rank(features, phrase).scores

    def probs(self, scores) -> np.ndarray:
        """Softmax over the usable proposals, in float32 as :meth:`VisualPromptRanker.rank`."""
        return torch.from_numpy(np.asarray(scores, dtype=np.float32)).softmax(dim=-1).numpy().astype(np.float64)

    def choose(self, scores, proposals) -> int:
        return int(np.argmax(self.probs(scores)))  # the ranker's argmax (first on ties)

    def localize_prepared(self, prepared, phrase: str, **overrides):
        out = super().localize_prepared(prepared, phrase, **overrides)
        if out.probs is not None and len(out.probs) != prepared.n_given:  # one per given box (0 for dropped)
            full = np.zeros(prepared.n_given)
            full[prepared.proposal_set.index] = out.probs
            out.probs = full
        return out


@register_method("reclip")
class ReCLIP(VisualPromptMethod):
    """ReCLIP's isolated proposal scoring: ``[crop, blur]``."""

    PARAMS = VisualPromptMethod.preset("reclip")


@register_method("red_circle")
class RedCircle(VisualPromptMethod):
    """Red-Circle as FGVP implements it: ``[crop, circle]``."""

    PARAMS = VisualPromptMethod.preset("red_circle")


@register_method("fgvp_box")
class FGVPBox(VisualPromptMethod):
    """FGVP's blur reverse box mask: ``[crop, blur_box_mask]``."""

    PARAMS = VisualPromptMethod.preset("fgvp_box")
