"""grounding-localize IMAGE "a phrase" [KEY=VALUE ...]: one image, one phrase -> the box as JSON and a
figure (PNG).

Options (Hydra overrides, after the phrase; defaults in brackets):
  backbone=NAME        {backbones} [vit_l14]
  backbone=LIB:SPEC    a backbone library's own spelling, as in the API's backbone="LIB:SPEC" (see README)
  backbone.name=PATH   a checkpoint file instead of the preset's ~/.cache/clip/<file>
  method=NAME          {methods} [ours]
  family=NAME          whose paper hyperparameters: {families} [flickr]
  proposals.boxes='[[x1,y1,x2,y2],...]'  boxes for a proposal method (crop_rank, dense_rank, det_label); the
                       JSON then holds the chosen box, its index and one score per box
  method.KEY=VALUE     a hyperparameter, e.g. method.alpha=0.7 method.temperature=0.02
  device=cpu|cuda      [cpu]         precision=auto|fp32|fp16|bf16   [auto: fp16 on CUDA, fp32 on CPU]
  out=PATH             the figure [./<image stem>_localized.png]
  --debug              show tracebacks (also HYDRA_FULL_ERROR=1)

Examples:
  grounding-localize photo.jpg "a dog on the grass" backbone=vit_b16
  grounding-localize photo.jpg "the red car" backbone=vit_b32 backbone.name=/path/to/ViT-B-32.pt method.alpha=0.7
  grounding-localize photo.jpg "a man" backbone=rn50x4 method=denseclip device=cuda out=man.png
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List

from ..errors import debug_requested, fail, short_warnings, user_errors


def usage() -> str:
    from ..config import options

    return __doc__.format(backbones=" ".join(options("backbone")), methods=" ".join(options("method")),
                          families=" ".join(options("family")))


def check_image(path: str) -> None:
    """Cheap checks before torch is imported: the path exists, is a file, and PIL can identify it."""
    from PIL import Image, UnidentifiedImageError

    from ..methods.base import ConfigError

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"image not found: {path}")
    if not p.is_file():
        raise ConfigError(f"image path is a directory, not a file: {path}")
    try:
        with Image.open(p) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ConfigError(f"{path} is not an image PIL can read ({type(e).__name__}); give a JPEG/PNG/…") from None


def expand_backbone_spec(overrides: List[str]) -> List[str]:
    """``backbone=LIB:REST`` (the API's spelling, e.g. ``backbone=hf:DIR``) → ``backbone=LIB`` plus the fields
    the library's own ``parse`` gives (``backbone.path=DIR``); every other override as given."""
    from ..models import registry

    out: List[str] = []
    for a in overrides:
        key, _, value = a.partition("=")
        head, colon, rest = value.partition(":")
        if key != "backbone" or not colon or not head.isidentifier() or not registry.known(head):
            out.append(a)
            continue
        node = registry.library(head).parse(rest)
        out += [f"backbone={head}"] + [f"backbone.{k}={v}" for k, v in node.items()
                                       if k not in ("library", "name") and v is not None]
    return out


def run(argv: List[str]) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..config import compose
    from ..eval import _short_hydra_error
    from ..evaluation.evaluate import check_backbone_config, validate_method_config
    from ..models.placement import check_device, check_precision
    from ..methods.base import ConfigError

    image_path, phrase = argv[0], argv[1]
    overrides = expand_backbone_spec([a for a in argv[2:] if a != "--debug"])
    check_image(image_path)
    try:
        cfg = compose("localize", overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(_short_hydra_error(e, overrides)) from None
    check_backbone_config(cfg)  # first: it reads the node unresolved, so a bad path/arch is its one line
    validate_method_config(cfg)
    check_precision(cfg.get("precision", "auto"), cfg.get("device", "cpu"))
    check_device(cfg.get("device", "cpu"))

    import numpy as np

    from ..data.images import to_pil_rgb
    from ..evaluation.evaluate import build_method, load_backbone_for
    from ..evaluation.viz import save_figure

    boxes = proposal_boxes(cfg)
    method = build_method(cfg, load_backbone_for(cfg))
    image = np.asarray(to_pil_rgb(image_path))
    from PIL import Image

    with Image.open(image_path) as im:  # the protocol's prepare(image: PIL.Image)
        out = method.localize_prepared(method.prepare(im, **({"proposals": boxes} if boxes is not None else {})),
                                       phrase)
    if out.box is None:  # every given box outside the image
        raise ConfigError(f"{image_path}: {getattr(out, 'miss', 'no box')}")
    png = Path(cfg.out) if cfg.out else Path.cwd() / f"{Path(image_path).stem}_localized.png"
    save_figure(png, image, out.score_map, out.box, phrase, method=cfg.method.name, backbone=str(cfg.backbone.name))
    print(json.dumps({"image": str(image_path), "phrase": phrase, "box": [round(v, 2) for v in out.box],
                      "cell_box": list(out.cell_box) if getattr(out, "cell_box", None) else None,
                      "map_size": list(out.score_map.shape) if out.score_map is not None else None,
                      "backbone": str(cfg.backbone.name), "method": cfg.method.name,
                      "params": method.params, "figure": str(png),
                      **({"index": out.index, "scores": [float(v) for v in out.scores]} if boxes is not None else {})}))
    return 0


def proposal_boxes(cfg):
    """``proposals.boxes`` for a proposal method (checked before the model loads), else None."""
    from ..methods.base import ConfigError
    from ..proposals.given import GivenBoxes

    from hydra.utils import get_object

    from omegaconf import OmegaConf

    boxes = (cfg.get("proposals") or {}).get("boxes")
    boxes = OmegaConf.to_container(boxes) if OmegaConf.is_config(boxes) else boxes
    needs = getattr(get_object(cfg.method._target_), "needs_proposals", False)
    if boxes is not None and not needs:
        raise ConfigError(f"method={cfg.method.name} does not rank proposals; drop proposals.boxes")
    if boxes is None:
        if needs and not getattr(get_object(cfg.method._target_), "own_proposals", False):
            raise ConfigError(f"method={cfg.method.name} ranks proposals: give proposals.boxes='[[x1,y1,x2,y2],...]'")
        return None
    return GivenBoxes(boxes=list(boxes)).boxes.tolist()


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    short_warnings()
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return 0
    if len([a for a in argv if a != "--debug"]) < 2:
        print(usage(), file=sys.stderr)
        return fail("give an image and a phrase: grounding-localize IMAGE \"a phrase\" [KEY=VALUE ...]")
    try:
        return run(argv)
    except user_errors() as e:
        if debug_requested(argv):
            raise
        return fail(str(e))


if __name__ == "__main__":
    sys.exit(main())
