"""``grounding-localize IMAGE "a phrase" [Hydra overrides]``: print the box as JSON, save a figure.

Examples::

    grounding-localize photo.jpg "a dog on the grass" backbone=vit_b16
    grounding-localize photo.jpg "the red car" backbone.name=/path/to/ViT-B-32.pt method.alpha=0.7
    grounding-localize photo.jpg "a man" backbone=rn50x4 method=denseclip device=cuda
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    image_path, phrase, overrides = argv[0], argv[1], argv[2:]
    from ..models.backbones import BackboneError
    from ..config import compose, method_overrides
    from ..api import Localizer
    from ..data.images import to_pil_rgb
    from ..evaluation.viz import save_figure

    cfg = compose("localize", overrides)
    if not Path(image_path).is_file():
        print(f"error: image not found: {image_path}", file=sys.stderr)
        return 2
    try:
        loc = Localizer(cfg.backbone.name, cfg.method.name, device=cfg.device, precision=cfg.precision,
                        family=cfg.family, cache_dir=cfg.backbone.get("cache_dir"),
                        pretrained=cfg.backbone.get("pretrained"), **method_overrides(cfg.method))
    except BackboneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    image = np.asarray(to_pil_rgb(image_path))
    out = loc(image, phrase)
    png = Path(cfg.out) if cfg.out else Path.cwd() / f"{Path(image_path).stem}_localized.png"
    save_figure(png, image, out.score_map, out.box, phrase)
    print(json.dumps({"image": str(image_path), "phrase": phrase, "box": [round(v, 2) for v in out.box],
                      "cell_box": list(out.cell_box), "map_size": list(out.score_map.shape),
                      "backbone": str(cfg.backbone.name), "method": cfg.method.name, "figure": str(png)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
