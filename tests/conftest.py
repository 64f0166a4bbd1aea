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
