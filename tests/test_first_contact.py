"""First contact: each common mistake ends in at most 3 lines of stderr, exit code 2 and a hint; --help
answers "what can I run"; the public API returns plain Python numbers."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_IMAGE = ROOT / "data" / "demo-images" / "demo_0000.png"


def _run(args, cwd):
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={k: v for k, v in __import__("os").environ.items() if k != "HYDRA_FULL_ERROR"})


def _localize(*args):
    return [sys.executable, "-m", "grounding.cli.localize", *args]


def _eval(*args):
    return [sys.executable, "-m", "grounding.eval", *args]


@pytest.fixture(scope="module")
def text_as_jpg(tmp_path_factory):
    p = tmp_path_factory.mktemp("bad") / "notes.jpg"
    p.write_text("not an image")
    return p


MISTAKES = [
    ("localize: unknown backbone", lambda t: _localize(str(DEMO_IMAGE), "x", "backbone=vit_b99"), "vit_b16"),
    ("localize: misspelt key", lambda t: _localize(str(DEMO_IMAGE), "x", "method.alpah=0.3"), "alpah"),
    ("localize: text file named .jpg", lambda t: _localize(str(t), "x"), "not an image"),
    ("localize: a directory", lambda t: _localize(str(t.parent), "x"), "directory"),
    ("localize: missing image", lambda t: _localize(str(t.parent / "nope.jpg"), "x"), "not found"),
    ("localize: missing weights", lambda t: _localize(str(DEMO_IMAGE), "x", "backbone=vit_b16",
                                                      f"backbone.cache_dir={t.parent}"), "ViT-B-16.pt"),
    ("localize: no GPU", lambda t: _localize(str(DEMO_IMAGE), "red", "backbone=toy", "device=cuda"), "device=cpu"),
    ("eval: missing data root", lambda t: _eval("split=flickr_s1", "backbone=toy", f"data_root={t.parent}/none"),
     "data_root"),
    ("eval: missing weights", lambda t: _eval("split=demo", "backbone=vit_b32", f"backbone.cache_dir={t.parent}"),
     "ViT-B-32.pt"),
    ("eval: no GPU", lambda t: _eval("split=demo", "backbone=toy", "device=cuda"), "device=cpu"),
    ("eval: unknown method", lambda t: _eval("method=nosuch"), "choose one of"),
    ("eval: misspelt key", lambda t: _eval("method.alpah=0.3"), "alpah"),
    ("eval: bad value", lambda t: _eval("split=demo", "backbone=toy", "method.alpha=abc"), "finite number"),
    ("eval: unknown added key", lambda t: _eval("split=demo", "backbone=toy", "+method.window=3"), "window"),
    ("eval: limit 0", lambda t: _eval("split=demo", "backbone=toy", "limit=0"), ">= 1"),
    ("eval: fp16 on CPU", lambda t: _eval("split=demo", "backbone=toy", "precision=fp16"), "on CPU use fp32"),
    ("localize: fp16 on CPU", lambda t: _localize(str(DEMO_IMAGE), "red", "backbone=toy", "precision=fp16"),
     "on CPU use fp32"),
    ("eval: unknown device", lambda t: _eval("split=demo", "backbone=toy", "device=gpu"), "cpu, cuda or cuda:N"),
    ("eval: bad on_error", lambda t: _eval("split=demo", "backbone=toy", "on_error=ignore"), "raise or skip"),
    ("eval: misspelt knob", lambda t: _eval("split=demo", "backbone=toy", "method=gem", "method.dpeth=3"), "dpeth"),
    ("eval: misspelt inner key", lambda t: _eval("split=demo", "backbone=toy", "method=dense_rank",
                                                 "proposals=selective_search", "method.dense_params={tmp:1}"),
     "unknown key method.tmp for method 'ours'"),
]


def _in_process(argv, monkeypatch, capsys):
    """The entry point's main() in this process (fast); returns (exit code, stderr)."""
    from grounding import eval as app
    from grounding.cli import localize

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    if argv[2] == "grounding.eval":
        monkeypatch.setattr(sys, "argv", ["grounding.eval", *argv[3:]])
        with pytest.raises(SystemExit) as e:
            app.main()
        code = e.value.code
    else:
        code = localize.main(argv[3:])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name,make,hint", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_mistake_gives_a_short_error(name, make, hint, text_as_jpg, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _in_process(make(text_as_jpg), monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err[-1500:])
    assert 1 <= len(lines) <= 3, err
    assert "Traceback" not in err and hint in err, err
    assert not (tmp_path / "outputs").exists()  # nothing left behind


@pytest.mark.parametrize("args,hint", [(_localize(str(DEMO_IMAGE), "x", "method.alpah=0.3"), "alpah"),
                                       (_eval("split=demo", "backbone=toy", "+method.window=3"), "window")])
def test_real_command_lines_exit_2_with_one_line(args, hint, tmp_path):
    r = _run(args, tmp_path)
    assert r.returncode == 2 and hint in r.stderr and len(r.stderr.strip().splitlines()) <= 3, r.stderr
    assert not (tmp_path / "outputs").exists()


def test_help_pages_list_what_can_be_run(tmp_path):
    r = _run(_eval("--help"), tmp_path)
    assert r.returncode == 0
    for word in ("split: ", "flickr_s1", "refcoco_testA", "vit_b16", "maskclip", "experiment=demo", "alpha: 0.75"):
        assert word in r.stdout, word
    assert "hparams/" not in r.stdout and "\nparams:" not in r.stdout  # internal entries are not choices


def test_localize_help_lists_its_options(capsys):
    from grounding.cli.localize import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("out=PATH", "device=cpu|cuda", "family=NAME", "clip_surgery", "vit_l14", "refcoco"):
        assert word in out, word


def test_toy_warns_on_phrases_it_cannot_understand(tmp_path):
    import warnings

    from grounding.cli.localize import main

    with pytest.warns(UserWarning, match="understands only the colour words"):
        assert main([str(DEMO_IMAGE), "a dog", "backbone=toy", f"out={tmp_path / 'f.png'}"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for a phrase it understands
        assert main([str(DEMO_IMAGE), "the red square", "backbone=toy", f"out={tmp_path / 'g.png'}"]) == 0


def test_public_api_returns_plain_python_numbers():
    import grounding

    m = np.random.default_rng(0).random((40, 40))
    for method in ("exact", "hierarchical", "brute_force"):
        assert all(type(v) is int for v in grounding.search_box(m, 0.5, method=method))
    out = grounding.localize(DEMO_IMAGE, "the red square", backbone="toy", method="ours")
    assert all(type(v) is float for v in out.box) and all(type(v) is int for v in out.cell_box)


def test_localize_help_shows_no_restructuredtext_markup(capsys):
    from grounding.cli.localize import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and out.startswith("grounding-localize IMAGE")


def _corrupt_checkpoint(t):
    p = t / "ViT-B-32.pt"
    p.write_bytes(b"PK\x03\x04 not a checkpoint" * 10)
    return ["split=demo", "backbone=vit_b32", f"backbone.name={p}", f"data_root={ROOT / 'data'}"]


def _no_annotations(t):
    (t / "empty_root").mkdir()
    return ["split=flickr_s1", "backbone=toy", f"data_root={t / 'empty_root'}"]


@pytest.mark.parametrize("make,hint", [(_corrupt_checkpoint, "ViT-B-32.pt"), (_no_annotations, "empty_root")],
                         ids=["corrupt checkpoint", "missing annotation CSV"])
def test_an_error_after_validation_leaves_no_directory(make, hint, tmp_path, monkeypatch, capsys):
    """Validation passes (the files exist), loading fails: one line, exit 2, and no outputs/ left behind."""
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    code, err = _in_process(_eval(*make(tmp_path)), monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and 1 <= len(lines) <= 3 and hint in err and "Traceback" not in err, err
    assert set(tmp_path.iterdir()) - before <= {tmp_path / "ViT-B-32.pt", tmp_path / "empty_root"}
    assert not (tmp_path / "outputs").exists()


def test_localize_takes_every_declared_key_of_the_method(tmp_path, capsys):
    """grounding-localize composes the same method keys as the app: a key the YAML does not name (declared by the
    class's PARAMS) takes an override, and the name comes from the option."""
    import json

    from grounding.cli.localize import main

    code = main([str(DEMO_IMAGE), "a red square", "backbone=toy", "method=gem", "method.depth=3",
                 f"out={tmp_path / 'f.png'}"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["method"] == "gem" and out["params"]["depth"] == 3
