import sys
import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # parity_cases

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "real"


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory):
    """Tiny CLIP stand-ins saved as plain state-dict files: {reference name: path}."""
    from parity_cases import tiny_checkpoints

    paths, digests = tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))
    return paths, digests
