"""The method protocol of grounding/methods/base.py, as the runner uses it: duck-typed plug-ins (no base class),
refused in one line when a required piece is missing; optional hooks read with their documented defaults."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from grounding.evaluation.evaluator import GroundingEvaluator
from grounding.evaluation.runner import read_predictions, run_split
from grounding.methods.base import OPTIONAL_HOOKS, REQUIRED, ConfigError, MethodProtocol, check_method, hook

ROOT = Path(__file__).resolve().parents[1]
IMAGES = sorted((ROOT / "data" / "demo-images").glob("*.png"))[:2]


class Corner:
    """Duck-typed: the top-left quarter; ``prepare`` returns a tuple; with proposals, the first one."""

    name = "corner"

    def __init__(self, needs_proposals=False):
        self.params = {}
        self.needs_proposals = needs_proposals
        self.seen = []

    def prepare(self, image, **kw):
        self.seen.append((type(image), kw))
        return image.size + (kw.get("proposals"),)

    def localize_prepared(self, prepared, phrase):
        w, h, proposals = prepared
        if proposals is not None:
            return SimpleNamespace(box=tuple(proposals[0]), score_map=None, index=0, scores=[1.0])
        return SimpleNamespace(box=(0, 0, w / 2, h / 2), score_map=None)


def _rows(proposals=None):
    out = []
    for k, p in enumerate(IMAGES * 2):
        with Image.open(p) as im:
            w, h = im.size
        out.append(SimpleNamespace(index=k, image_path=str(p), gt_box=(0.0, 0.0, w / 2, h / 2), phrase=f"thing {k}",
                                   csv_row=k + 1, error=None, proposals=proposals))
    return out


def _run(method, rows, tmp_path):
    return run_split(method, rows, tmp_path / "run", identity={"split": {"name": "t"}}, evaluator=GroundingEvaluator(),
                     progress=False, save_maps=False)


def test_a_duck_typed_method_runs_and_its_predictions_are_its_boxes(tmp_path):
    m = Corner()
    metrics = _run(m, _rows(), tmp_path)
    assert metrics["n"] == 4 and metrics["accuracy"] == 1.0 and metrics["n_skipped"] == 0
    assert all(issubclass(t, Image.Image) and kw == {} for t, kw in m.seen) and len(m.seen) == 2  # once per image
    for r in read_predictions(tmp_path / "run" / "predictions.jsonl"):
        w, h = r["image_size"]
        assert r["pred_box"] == [0.0, 0.0, w / 2, h / 2]
    assert isinstance(m, MethodProtocol)


def test_proposal_rankers_get_the_rows_proposals(tmp_path):
    m = Corner(needs_proposals=True)
    metrics = _run(m, _rows(proposals=[[1.0, 2.0, 3.0, 4.0]]), tmp_path)
    assert all(kw == {"proposals": [[1.0, 2.0, 3.0, 4.0]]} for _, kw in m.seen)
    assert [r["pred_box"] for r in read_predictions(tmp_path / "run" / "predictions.jsonl")] == [[1.0, 2.0, 3.0, 4.0]] * 4
    assert metrics["n"] == 4


@pytest.mark.parametrize("missing", REQUIRED)
def test_a_method_missing_a_required_piece_is_refused_in_one_line(missing):
    m = Corner()
    if missing in ("name", "params"):
        setattr(m, missing, None) if missing == "params" else setattr(m, "name", "")
        want = missing
    else:
        cls = type("Broken", (), {k: getattr(Corner, k) for k in ("name", "prepare", "localize_prepared")
                                  if k != missing})
        m = cls()
        m.params = {}
        want = missing
    with pytest.raises(ConfigError) as e:
        check_method(m, "my_method")
    msg = str(e.value)
    assert "\n" not in msg and "my_method" in msg and want in msg


def test_optional_hooks_have_one_name_and_a_default():
    assert hook(object(), "needs_proposals") is False and hook(object(), "tuned") is True
    assert hook(object(), "preload") is None and hook(object(), "prepare_features") is None
    assert set(OPTIONAL_HOOKS) == {"PARAMS", "paper_defaults", "needs_proposals", "preload", "prepare_features", "default_params", "validate",
                                   "tuned", "set_split_phrases"}
    assert hook(object(), "set_split_phrases") is None
    with pytest.raises(KeyError):
        hook(object(), "attach")  # not a hook: the four verbs of one stage are gone


def test_a_bad_box_is_a_row_error_not_a_traceback(tmp_path):
    m = Corner()
    m.localize_prepared = lambda prepared, phrase: SimpleNamespace(box=(1, 2, 3), score_map=None)
    with pytest.raises(Exception) as e:
        _run(m, _rows(), tmp_path)
    assert "row 0 (annotation row 1)" in str(e.value) and "not 4" in str(e.value)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["split"] == {"name": "t"}


def test_a_subclass_that_does_not_implement_localize_prepared_is_refused():
    from grounding.methods.base import Method

    class Half(Method):
        name = "half"

        def prepare(self, image):
            return image.size

    with pytest.raises(ConfigError, match="'half'.*localize_prepared \\(not implemented\\)"):
        check_method(Half())
