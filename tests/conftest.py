import logging
import os
import sys
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # parity_cases
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # reference-style code the benchmarks use

ROOT = Path(__file__).resolve().parents[1]


def _find_fixtures() -> Path:
    """The real annotation fixtures: $GROUNDING_FIXTURES, else ../shared/fixtures/real next to the checkout,
    else /work/shared/fixtures/real (a clone made elsewhere on the workplace machine)."""
    candidates = [os.environ.get("GROUNDING_FIXTURES"), ROOT.parent / "shared" / "fixtures" / "real",
                  "/work/shared/fixtures/real"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return ROOT.parent / "shared" / "fixtures" / "real"


FIXTURES = _find_fixtures()


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """Tiny CLIP stand-ins saved as plain state-dict files: {reference name: path}."""
    from parity_cases import tiny_checkpoints

    paths, digests = tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))
    return paths, digests


PHRASES = ["a person", "a cup", "the sky", "a cat", "a red thing"]


def make_flickr_split(root: Path) -> Path:
    """Write a Flickr-S1-layout split under ``root``: 6 images × 3 phrases (18 rows); returns the CSV path."""
    import numpy as np
    import skimage.data
    from PIL import Image

    imgs = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    rows = []
    for i in range(6):
        im = np.roll(imgs[i % 3], 40 * i, axis=1)[::2, ::2]
        p = root / "flickr30k-images" / f"{1000 + i}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(im)).save(p)
        h, w = im.shape[:2]
        for k in range(3):
            box = [int(w * 0.1 * k), int(h * 0.2), int(w * (0.5 + 0.1 * k)), int(h * 0.9)]
            rows.append(f'{1000 + i},"{box}",{PHRASES[(i + k) % 5]}')
    csv = root / "ds_csv_ann" / "flickr30k_c1" / "csv_dir" / "test.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text("img_id,bbox,query\n" + "\n".join(rows) + "\n")
    return csv


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    """A Flickr-S1-layout split (6 images × 3 phrases) and a tiny ViT checkpoint: (data_root, checkpoint).
    Shared by every test: a test that alters a file restores it, or works on a copy."""
    import torch

    from grounding.models.random import tiny_clip

    root = tmp_path_factory.mktemp("data")
    make_flickr_split(root)
    ckpt = root / "tiny_vit.pt"
    torch.save(tiny_clip("vit", patch_size=32, seed=21).state_dict(), ckpt)
    return root, ckpt


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """Hydra's in-process runs add root handlers bound to that test's captured stderr; drop them afterwards,
    so a later test's log lines never go to a closed stream ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)

