"""Every Hydra config composes; with no overrides the composed config holds the paper's numbers."""
import pytest
from omegaconf import OmegaConf

from grounding.config import compose, conf_dir, options, run_dir_name, run_spec
from grounding.data.splits import split_info, split_names
from grounding.evaluation.evaluate import validate_method_config
from grounding.methods.base import ConfigError, method_class, registered_methods
from grounding.methods.hparams import paper_hparams

GROUPS = {g: options(g) for g in ("backbone", "split", "method", "family", "experiment")}


def test_groups_are_populated():
    assert {"rn50", "rn50x4", "vit_b32", "vit_b16", "vit_l14", "toy"} <= set(GROUPS["backbone"])
    assert {"flickr_all", "flickr_other", "flickr_s0", "flickr_s1", "vg_s0", "vg_s1", "flickr_val", "flickr_s0_val",
            "flickr_s1_val", "vg_val", "demo"} <= set(GROUPS["split"])
    assert {"ours", "denseclip", "crop_rank"} <= set(GROUPS["method"])
    assert set(GROUPS["split"]) == set(split_names())


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes(group, option):
    extra = []
    if group == "method" and option in ("denseclip",):
        extra = ["backbone=rn50"]
    if group == "backbone" and option == "open_clip":
        extra = ["backbone.arch=ViT-B-16"]  # mandatory: key and kind derive from it
    if group == "backbone" and option == "hf":  # key and kind derive from a model folder: tests/test_hf_backbone.py
        pytest.skip("backbone=hf needs backbone.path=DIR (a transformers folder); composed in test_hf_backbone.py")
    cfg = compose("config", [f"{group}={option}", *extra])
    assert cfg.split.name and cfg.method.name and cfg.backbone.key and cfg.family.name
    info = split_info(cfg.split.name)
    # the split's YAML picks the family; a family= on the command line wins (borrow another's values)
    assert cfg.family.name == (option if group == "family" else info.family)
    assert 0 < cfg.split.iou_threshold < 1 and cfg.split.iou_compare in (">", ">=")
    assert "_target_" in cfg.split.loader and "_target_" in cfg.method
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


@pytest.mark.parametrize("split", ["flickr_s1", "vg_s0", "refcoco_testA", "demo"])
@pytest.mark.parametrize("backbone", ["vit_l14", "vit_b16", "vit_b32", "rn50", "rn50x4", "toy"])
def test_composed_config_holds_the_paper_numbers(split, backbone):
    cfg = compose("config", [f"split={split}", f"backbone={backbone}"])
    family = split_info(split).family
    expected = paper_hparams(backbone, "ours", family)
    got = {k: v for k, v in OmegaConf.to_container(cfg.method).items() if k in expected}
    assert got == expected
    cls = method_class("ours")
    cls.validate({k: v for k, v in OmegaConf.to_container(cfg.method).items()
                  if k not in ("_target_", "name")}, cfg.backbone.kind)


def test_overrides_reach_method_params():
    cfg = compose("config", ["method.alpha=0.6", "method.temperature=0.02", "backbone.name=/tmp/x.pt"])
    assert cfg.method.alpha == 0.6 and cfg.method.temperature == 0.02 and cfg.backbone.name == "/tmp/x.pt"


def test_unknown_key_is_rejected_by_composition_and_by_validation():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException):
        compose("config", ["method.alpah=0.3"])
    with pytest.raises(ConfigError, match="window"):
        method_class("ours").validate({"window": 3}, "vit")
    with pytest.raises(ConfigError, match="alpha"):
        method_class("ours").validate({"alpha": "abc"}, "vit")
    with pytest.raises(ConfigError, match="does not apply"):
        method_class("ours").validate({"n_segments": [100]}, "resnet")


@pytest.mark.parametrize("bad", [{"temperature": 0}, {"temperature": -1}, {"alpha": float("nan")},
                                 {"n_segments": []}, {"n_segments": [0, 100]}, {"upsample": 0},
                                 {"upsample": 1.5}, {"box_search": "greedy"}, {"aggregation": "sum"}])
def test_bad_values_are_rejected(bad):
    with pytest.raises(ConfigError):
        method_class("ours").validate(bad, "vit")


def test_run_dir_and_identity_come_from_one_spec():
    a = compose("config", ["split=demo", "backbone=toy"])
    b = compose("config", ["split=demo", "backbone=toy", "method.alpha=0.3"])
    c = compose("config", ["split=demo", "backbone=toy", "limit=5"])
    d = compose("config", ["split=demo", "backbone=toy", "precision=fp32"])
    e = compose("config", ["split=demo", "backbone=toy", "workers=2", "on_error=skip", "cache.enabled=false"])
    names = {run_dir_name(x) for x in (a, b, c, d)}
    assert len(names) == 4  # everything that changes predictions separates directories
    assert run_dir_name(e) == run_dir_name(a) and run_spec(e) == run_spec(a)  # what cannot, does not


def test_every_registered_method_has_a_config_or_is_internal():
    # internal implementations (ours_vit, ours_resnet) are reached through `ours`
    assert set(GROUPS["method"]) - set(registered_methods()) == set()


def test_paper_values_match_reference_eval_py():
    # spot checks against the reference eval.py (read by hand; independent of hparams.py's layout)
    assert paper_hparams("vit_l14", "ours", "flickr")["alpha"] == 0.75
    assert paper_hparams("vit_l14", "ours", "vg")["temperature"] == 0.01
    assert paper_hparams("vit_b32", "ours", "flickr")["n_segments"] == [100, 150, 200, 250, 300, 350, 400]
    assert paper_hparams("vit_b16", "ours", "vg")["alpha"] == 0.85
    assert paper_hparams("rn50", "ours", "vg")["alpha"] == 0.8
    assert paper_hparams("rn50x4", "denseclip", "vg") == {"high_res": False, "alpha": 0.8, "temperature": 0.03,
                                                          "box_search": "hierarchical"}
    assert len(paper_hparams("vit_l14", "ours", "flickr")["n_segments"]) == 11
    assert conf_dir().is_dir()


def test_each_method_has_one_name():
    """conf/method/NAME.yaml's file name is the method's name in the config; its class's registered name must
    agree (checked at config time: a YAML copied under another file name is refused in one line)."""
    from hydra.utils import get_object

    for option in options("method"):
        node = OmegaConf.load(conf_dir() / "method" / f"{option}.yaml")
        assert "name" not in node and get_object(node._target_).name == option, option
    cfg = compose("config", ["split=demo", "backbone=toy", "method.name=other"])
    with pytest.raises(ConfigError, match="method=other .its YAML's file name. but grounding.methods.ours.Ours is "
                                          "registered as 'ours'; rename the YAML to method/ours.yaml"):
        validate_method_config(cfg)


def test_every_family_config_has_paper_values():
    from grounding.methods import hparams

    assert set(options("family")) == set(hparams.FAMILIES)


def _impl(cls, backbone):
    from grounding.methods.ours import _BY_KIND, Ours

    return _BY_KIND["resnet" if backbone.startswith("rn") else "vit"] if cls is Ours else cls


@pytest.mark.parametrize("option", GROUPS["method"])
def test_method_yaml_sets_values_and_never_redeclares_the_class_keys(option):
    """The key set is declared once, by the class (``PARAMS``), and the name by the file: the YAML holds
    ``_target_`` and only values that differ from a declared default — no null key, no key the class lacks."""
    from hydra.utils import get_object

    node = OmegaConf.load(conf_dir() / "method" / f"{option}.yaml")
    cls = get_object(node._target_)
    assert "name" not in node and cls.name == option  # the registry name (decorator) is the file name
    assert compose("config", [f"method={option}"]).method.name == option
    for key in set(node) - {"_target_"}:
        assert key in cls.PARAMS, (option, key)
        assert node[key] is not None and node[key] != cls.PARAMS[key].default, (option, key)


@pytest.mark.parametrize("family_split", ["flickr_s1", "vg_s0"])
@pytest.mark.parametrize("option", GROUPS["method"])
def test_composed_method_holds_every_class_key_with_its_default(option, family_split):
    """``--cfg job`` shows every key of ``PARAMS`` with the value a run uses when none is given: the class's
    paper table for backbone × family (``paper_defaults``) and each ``Param.default``; the same values as the
    class's ``default_params`` (the Python API, run.json's ``overrides``)."""
    from types import SimpleNamespace

    from hydra.utils import get_object

    family = split_info(family_split).family
    cls = get_object(OmegaConf.load(conf_dir() / "method" / f"{option}.yaml")._target_)
    for backbone in ("vit_b16", "rn50x4"):
        try:
            paper = _impl(cls, backbone).default_params(SimpleNamespace(key=backbone), family)
        except ValueError:
            continue  # no such table for this backbone kind (denseclip on a ViT, the ViT family on a ResNet)
        cfg = compose("config", [f"method={option}", f"backbone={backbone}", f"split={family_split}"])
        got = OmegaConf.to_container(cfg.method)
        assert set(got) == {"_target_", "name"} | set(cls.PARAMS), (option, backbone)
        want = {k: None for k in cls.PARAMS}
        want.update(paper)
        assert {k: got[k] for k in cls.PARAMS} == want, (option, backbone)


def test_an_out_of_tree_class_declares_its_keys_once(tmp_path, monkeypatch):
    """A plug-in class with ``PARAMS`` and a two-line YAML on the search path: its keys take overrides, its
    defaults show in the composed config, a typo'd key fails in composition."""
    from hydra.errors import ConfigCompositionException

    (tmp_path / "method").mkdir()
    (tmp_path / "knobbed_plugin.py").write_text(
        "from grounding.methods.base import Param\n"
        "class Knobbed:\n"
        "    PARAMS = {'scale': Param('float', 'box scale', default=0.5), 'label': Param('str', 'a label')}\n")
    (tmp_path / "method" / "knobbed.yaml").write_text("_target_: knobbed_plugin.Knobbed\nname: knobbed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    search = f"hydra.searchpath=[file://{tmp_path}]"
    cfg = compose("config", [search, "method=knobbed", "method.label=x"])
    assert OmegaConf.to_container(cfg.method) == {"scale": 0.5, "label": "x", "_target_": "knobbed_plugin.Knobbed",
                                                  "name": "knobbed"}
    with pytest.raises(ConfigCompositionException):
        compose("config", [search, "method=knobbed", "method.scael=0.7"])
