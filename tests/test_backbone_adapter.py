"""The backbone-library seat: no import cycle through grounding/models (imports inside functions count), no
library named outside its module, and an out-of-tree library (duck-typed: no class of ours) plugged in
from a test runs ``localize`` end to end."""
import ast
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import grounding
from grounding.data.images import CLIP_MEAN, CLIP_STD
from grounding.models import registry
from grounding.models.random import tiny_clip

PKG = Path(grounding.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
    """Module → grounding modules it imports, from every import statement wherever it stands."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != mod}
        graph[mod] = edges
    return graph


def cycles_through(graph, nodes):
    """Strongly connected components (size > 1) containing any of ``nodes``."""
    from test_architecture import strongly_connected  # the one Tarjan of the suite

    return [sorted(c) for c in strongly_connected(graph) if c & set(nodes)]


def test_the_graph_sees_lazy_imports():
    g = import_graph()
    assert "grounding.models.checkpoint" in g["grounding.models.openai_backbone"]  # an import inside load()
    fake = dict(g, **{"grounding.models.registry": g["grounding.models.registry"] | {"grounding.models.toy"},
                      "grounding.models.toy": g["grounding.models.toy"] | {"grounding.models.registry"}})
    assert cycles_through(fake, ["grounding.models.toy"])  # the check can fail


def test_no_import_cycle_through_models():
    g = import_graph()
    models = [m for m in g if m.startswith("grounding.models")]
    assert cycles_through(g, models) == []


def test_registry_imports_no_library():
    g = import_graph()
    libs = {m for m in g if m.startswith("grounding.models.") and m.split(".")[-1] in
            ("openai_backbone", "checkpoint", "open_clip_backbone", "toy", "registered", "adapter")}
    assert not (g["grounding.models.registry"] & libs)
    assert not (g["grounding.models.library"] & libs)


CALLERS = ["api.py", "cli/localize.py", "config.py", "evaluation/evaluate.py", "evaluation/runner.py",
           "evaluation/tables.py"]
LIBRARY_WORDS = re.compile(r"open_clip|OPEN_CLIP|openai|clip\.model|import clip|from clip|\btoy\b|"
                           r"library\W*==|== *[\"']registered")


@pytest.mark.parametrize("rel", CALLERS)
def test_callers_name_no_library(rel):
    text = (PKG / rel).read_text()
    hits = [f"{rel}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1) if LIBRARY_WORDS.search(line)]
    assert hits == []


def test_the_grep_catches_a_library_name():
    assert LIBRARY_WORDS.search('if b.get("library") == "open_clip":') and LIBRARY_WORDS.search("toy")


# ------------------------------------------------------------------ an out-of-tree library, duck-typed
class TinyAdapter:
    """A loaded backbone that is not our Backbone: only the names of the adapter contract."""

    def __init__(self, model, device):
        self.model, self.device, self.dtype, self.name = model, torch.device(device), torch.float32, "tinylib:seed3"
        self.kind, self.key, self.input_size, self.patch_size = "vit", "vit_b32", 224, 32
        self.mean, self.std = CLIP_MEAN, CLIP_STD
        self.has_class_token, self.logit_scale = True, 100.0
        self.visual = model.visual
        self.encoded = []

    def identity(self):
        return ("tinylib", "seed3")

    def tokenize(self, phrase, allow_empty=False):
        import clip

        return clip.tokenize([phrase])

    @torch.no_grad()
    def encode_text(self, phrase):
        self.encoded.append(phrase)
        e = self.model.encode_text(self.tokenize(phrase)).float()[0]
        return e / e.norm()

    @torch.no_grad()
    def encode_text_empty(self):
        e = self.model.encode_text(self.tokenize("", allow_empty=True)).float()[0]
        return e / e.norm()

    @torch.no_grad()
    def encode_image(self, x):
        return self.model.encode_image(x.float())


class TinyLibrary:
    """The five functions, written from the contract only."""

    calls = []

    def parse(self, spec, **options):
        return {"library": "tinylib", "name": f"tinylib:{spec}", "seed": int(spec)}

    def describe(self, cfg):
        return {"key": "vit_b32", "kind": "vit"}

    def preflight(self, cfg, files=True):
        self.calls.append("preflight")
        if int(cfg.get("seed", -1)) < 0:
            raise ValueError("tinylib: seed must be >= 0")

    def load(self, cfg, *, device, precision):
        self.calls.append("load")
        return TinyAdapter(tiny_clip("vit", patch_size=32, seed=int(cfg["seed"])), device)

    def label(self, cfg):
        return f"{cfg.get('key')} (tinylib seed {cfg.get('seed')})"


@pytest.fixture
def tinylib():
    registry.register_library("tinylib", TinyLibrary())
    yield
    registry.unregister_library("tinylib")


def test_out_of_tree_library_runs_localize_end_to_end(tinylib):
    from grounding import Localizer, localize
    from grounding.evaluation.runner import backbone_label
    from grounding.models.adapter import Backbone

    TinyLibrary.calls.clear()
    image = (np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)
    out = localize(image, "a red square", backbone="tinylib:3", method="ours")
    assert TinyLibrary.calls == ["preflight", "load"]
    x1, y1, x2, y2 = out.box
    assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96 and out.score_map.ndim == 2
    ours = Localizer(Backbone("tiny", tiny_clip("vit", patch_size=32, seed=3), "cpu", torch.float32), "ours")
    ref = ours(image, "a red square")  # the same weights through our adapter: the same box and map
    assert out.box == ref.box and np.allclose(out.score_map, ref.score_map, atol=1e-6)
    loc = Localizer("tinylib:3", "maskclip")
    assert type(loc.backbone).__name__ == "TinyAdapter" and loc.params["alpha"] == 0.9  # vit_b32's, by key
    assert loc(image, "a red square").box == localize(image, "a red square", backbone="tinylib:3",
                                                      method="maskclip").box
    assert "a red square" in loc.backbone.encoded
    assert backbone_label({"library": "tinylib", "key": "vit_b32", "seed": 3}) == "vit_b32 (tinylib seed 3)"
    assert backbone_label({"library": "gone", "key": "vit_b32"}) == "vit_b32"  # not importable here: its key


def test_a_library_missing_a_function_is_refused_in_one_line():
    from grounding.models.names import BackboneError

    class Half:
        def parse(self, spec, **o):
            return {}

    registry.register_library("halflib", Half())
    try:
        with pytest.raises(BackboneError, match="halflib.*lacks describe, preflight, load, label"):
            registry.library("halflib")
    finally:
        registry.unregister_library("halflib")
    with pytest.raises(BackboneError, match="did you mean 'open_clip'"):
        registry.library("open-clip")


def test_yaml_facts_come_from_the_library(tinylib):
    from omegaconf import OmegaConf

    import grounding.config  # noqa: F401  (registers the ${backbone:...} resolver)

    node = OmegaConf.create({"backbone": {"library": "tinylib", "seed": 3, "key": "${backbone:key}",
                                          "kind": "${backbone:kind}"}})
    assert (node.backbone.key, node.backbone.kind) == ("vit_b32", "vit")


def test_a_tower_without_class_token():
    """Room for towers without a class token (SigLIP): the tower operations keep every token as a patch
    token, and ours-ViT (region tokens on the class token) refuses such a backbone by name."""
    from grounding.methods.base import method_class
    from grounding.models import vit
    from grounding.models.adapter import Backbone

    model = tiny_clip("vit", patch_size=32, seed=5)
    x = torch.randn(1, 3, 224, 224)
    with_cls = vit.last_block_replaced(model.visual, x, vit.block_forward)
    model.visual.class_embedding = None
    model.visual.positional_embedding = torch.nn.Parameter(model.visual.positional_embedding[1:].clone())
    assert vit.prefix_tokens(model.visual) == 0
    without = vit.last_block_replaced(model.visual, x, vit.block_forward)
    assert without.shape == with_cls.shape == (1, 49, 32) and not torch.allclose(without, with_cls)
    bb = Backbone("no-cls", model, "cpu", torch.float32)
    assert not bb.has_class_token and bb.kind == "vit"
    with pytest.raises(ValueError, match="class token.*no-cls"):
        method_class("ours")(bb)
    assert method_class("maskclip")(bb).params["alpha"] == 0.9
