"""Every Hydra config composes; with no overrides the paper's hyperparameters are used."""
import pytest
from hydra import compose as hydra_compose, initialize_config_dir

from grounding.config import conf_dir, method_overrides
from grounding.methods.hparams import PARAM_NAMES, paper_hparams

GROUPS = {g: sorted(p.stem for p in (conf_dir() / g).glob("*.yaml")) for g in ("backbone", "split", "method")}


def test_groups_are_populated():
    assert {"rn50", "rn50x4", "vit_b32", "vit_b16", "vit_l14", "toy"} <= set(GROUPS["backbone"])
    assert {"flickr_all", "flickr_other", "flickr_s0", "flickr_s1", "vg_s0", "vg_s1", "flickr_val", "flickr_s0_val",
            "flickr_s1_val", "vg_val", "demo"} <= set(GROUPS["split"])
    assert set(GROUPS["method"]) == {"ours", "denseclip", "crop_rank"}


@pytest.fixture(scope="module")
def hydra_ctx():
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        yield


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes(hydra_ctx, group, option):
    cfg = hydra_compose("config", [f"{group}={option}"])
    assert cfg[group].get("name") is not None
    assert cfg.split.iou_threshold == (0.3 if cfg.split.name.startswith("vg") else 0.5)
    if cfg.method.name != "crop_rank":
        assert method_overrides(cfg.method) == {}  # nothing overrides the paper by default


@pytest.mark.parametrize("backbone", GROUPS["backbone"])
@pytest.mark.parametrize("method", ["ours", "denseclip"])
@pytest.mark.parametrize("family", ["flickr", "vg", "demo"])
def test_paper_hparams_for_every_combination(backbone, method, family):
    is_vit = backbone.startswith("vit") or backbone == "toy"
    if method == "denseclip" and is_vit:
        with pytest.raises(ValueError):
            paper_hparams(backbone, method, family)
        return
    hp = paper_hparams(backbone, method, family)
    assert hp["box_search"] == "hierarchical"
    assert {"alpha", "temperature"} <= set(hp) <= set(PARAM_NAMES)
    if is_vit and method == "ours":
        assert hp["upsample"] == 2 and hp["compactness"] == 50 and hp["aggregation"] == "mean"


def test_overrides_reach_method_params(hydra_ctx):
    cfg = hydra_compose("config", ["method.alpha=0.6", "method.temperature=0.02", "backbone.name=/tmp/x.pt"])
    assert method_overrides(cfg.method) == {"alpha": 0.6, "temperature": 0.02}
    assert cfg.backbone.name == "/tmp/x.pt"


def test_paper_values_match_reference_eval_py():
    # spot checks against the reference eval.py (read by hand; independent of hparams.py's layout)
    assert paper_hparams("vit_l14", "ours", "flickr_s1")["alpha"] == 0.75
    assert paper_hparams("vit_l14", "ours", "vg_s0")["temperature"] == 0.01
    assert paper_hparams("vit_b32", "ours", "flickr")["n_segments"] == [100, 150, 200, 250, 300, 350, 400]
    assert paper_hparams("vit_b16", "ours", "vg")["alpha"] == 0.85
    assert paper_hparams("rn50", "ours", "vg")["alpha"] == 0.8
    assert paper_hparams("rn50x4", "denseclip", "vg") == {"high_res": False, "alpha": 0.8, "temperature": 0.03,
                                                          "box_search": "hierarchical"}
    assert len(paper_hparams("vit_l14", "ours", "flickr")["n_segments"]) == 11
