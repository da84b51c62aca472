"""The package's shape: no import circles, small modules, a short `kft train --help`, a README a
newcomer reads in minutes whose key lists match the schema."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KFT = ROOT / "kft"
MAX_MODULE_LINES = 400
MAX_TRAIN_OPTIONS = 20
MAX_README_WORDS = 1600


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports() -> dict[str, set[str]]:
    """Each kft module -> the kft modules it imports at module level (not inside functions)."""
    modules = {_module_name(p): p for p in KFT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t.startswith("kft") and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def _is_package_init_edge(a: str, b: str) -> bool:
    """``kft.x`` (a package's __init__) importing its own submodule ``kft.x.y``, and ``kft.x.y`` reaching
    ``kft.x`` only because Python runs a package's __init__ first: not a circle of modules."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_circles():
    graph = module_imports()
    # a package __init__ re-exports its submodules: edges between a package and its own members
    # are how Python loads packages, not dependencies between modules
    pruned = {a: {b for b in deps if not _is_package_init_edge(a, b)} for a, deps in graph.items()}
    assert _cycles(pruned) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in KFT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_kft_train_help_lists_at_most_20_options():
    out = subprocess.run([sys.executable, "-m", "kft", "train", "--help"], capture_output=True, text=True, timeout=120)
    options = re.findall(r"^  (--?[\w-]+)", out.stdout, flags=re.M)
    assert 0 < len(options) <= MAX_TRAIN_OPTIONS, options


def test_no_library_error_names_a_cli_flag():
    """Library code names options by their key (``limit_test``); only ``kft/cli`` spells flags."""
    offenders = []
    for path in KFT.rglob("*.py"):
        if "cli" in path.relative_to(KFT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = ast.unparse(node.exc)
                if re.search(r"(?<![\w-])--[a-z][\w-]+", text):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("module", ["kft.runtime", "kft.images", "kft.predict", "kft.serve", "kft.rundir",
                                    "kft.plan", "kft.training"])
def test_modules_that_must_stay_light_do_not_import_tensorflow(module):
    code = f"import sys, {module}; print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-2000:]
