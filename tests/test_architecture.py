"""The package's shape: imports go down the data flow only, subpackages say their role, every registry
entry is reachable. (An import-graph check over the source, not a linter run.)"""
import ast
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "grounding"
# who may import whom (subpackage or top-level module → allowed targets); data flows down this list:
# models, stages, data ← methods ← api / evaluation ← cli / eval
ALLOWED = {
    "paths": set(),
    "errors": set(),
    "data": {"data", "paths", "errors"},
    "models": {"models", "data", "errors"},
    "stages": {"stages"},
    "methods": {"methods", "models", "stages", "data", "errors"},
    "config": {"methods.hparams", "paths", "models.names", "models.hf_folder"},  # torch-free arch/folder → key
    "api": {"api", "methods", "models", "data"},
    "evaluation": {"evaluation", "methods", "models", "stages", "data", "config", "errors"},
    "cli": {"cli", "config", "api", "evaluation", "methods", "models", "data", "stages", "eval", "errors"},
    "eval": {"cli", "config", "evaluation", "methods", "errors"},
    "__init__": set(),
}


def _unit(module: str) -> str:
    return module.split(".")[0]


def package_imports():
    """(importing module, imported grounding module) for every import in the package, nested ones included."""
    out = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        mod = ".".join(parts)
        pkg_parts = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg_parts[:len(pkg_parts) - (node.level - 1)] if node.level > 1 else pkg_parts
                    target = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.startswith("grounding"):
                    target = node.module[len("grounding."):] if node.module != "grounding" else ""
                else:
                    continue
                # the imported names (a submodule or an attribute of the module): "methods.hparams"
                names = [f"{target}.{a.name}".lstrip(".") for a in node.names]
                out += [(mod, n) for n in names if n]
            elif isinstance(node, ast.Import):
                out += [(mod, a.name[len("grounding."):]) for a in node.names if a.name.startswith("grounding.")]
    return out


def _allowed(src: str, dst: str) -> bool:
    unit = _unit(src) if "." in src else src
    allowed = ALLOWED.get(unit, set())
    return any(dst == a or dst.startswith(a + ".") for a in allowed)


def test_imports_follow_the_data_flow():
    bad = sorted({(s, d) for s, d in package_imports() if not _allowed(s, d)})
    assert not bad, "upward or sideways imports: " + ", ".join(f"{s} -> {d}" for s, d in bad)


def test_no_cycles_between_units():
    edges = {}
    for s, d in package_imports():
        a, b = _unit(s), _unit(d)
        if a != b:
            edges.setdefault(a, set()).add(b)
    seen, stack = set(), []

    def visit(n):
        if n in stack:
            raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(n):] + [n])}")
        if n in seen:
            return
        stack.append(n)
        for m in edges.get(n, ()):
            visit(m)
        stack.pop()
        seen.add(n)

    for n in list(edges):
        visit(n)


def test_no_production_import_of_tests_or_scripts():
    src = "\n".join(p.read_text() for p in PKG.rglob("*.py"))
    assert "parity_cases" not in src and "import tests" not in src and "from tests" not in src
    assert "sys.argv = " not in src and "sys.path.insert" not in src


@pytest.mark.parametrize("sub", ["models", "stages", "methods", "data", "evaluation", "cli"])
def test_each_subpackage_states_its_role_in_one_line(sub):
    doc = importlib.import_module(f"grounding.{sub}").__doc__
    assert doc and len(doc.strip().splitlines()) == 1 and ":" in doc
