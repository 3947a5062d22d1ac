"""The layout holds (docs/architecture.md): the import graph of the package, read from the
source with `ast` (imports at module level and inside functions alike), has no circles and no
arrow from a lower floor to a higher one; rule modules are discovered, not listed; rules do
layer arithmetic only through the layer interface."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import lrsim.rules

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"src/lrsim": "lrsim", "rules": "lrsim.rules", "models": "lrsim.models",
            "analysis": "lrsim.analysis"}

# floors, bottom up: a module may import its own floor (without circles) or lower ones
FLOORS: list[tuple[str, ...]] = [
    ("lrsim.errors", "lrsim.version", "lrsim.registry", "lrsim.outdir", "lrsim.layers",
     "lrsim.contract", "lrsim.metadata", "lrsim.optimizers", "lrsim.store"),  # core
    ("lrsim.rules",),                                                # rule math
    ("lrsim.models.tasks", "lrsim.config"),                          # experiment definitions
    ("lrsim.analysis",),                                             # observer core, analysis
    ("lrsim.models",),                                               # step, substrates
    ("lrsim.experiment", "lrsim.scan"),                              # running experiments
    ("lrsim.commands", "lrsim.cli", "lrsim.plot", "lrsim"),          # CLI and facades
]
TOP = ("lrsim.experiment", "lrsim.scan", "lrsim.commands", "lrsim.cli")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_graph() -> dict[str, set[str]]:
    """module -> the lrsim modules it imports (TYPE_CHECKING blocks left out)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        stack: list[ast.AST] = [ast.parse(path.read_text())]
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                if _type_checking(child):
                    continue
                stack.append(child)
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        up = package.split(".")[: len(package.split(".")) - child.level + 1]
                        base = ".".join([*up, base] if base else up)
                    targets = [f"{base}.{a.name}" for a in child.names] or [base]
                for target in targets:
                    found = _resolve(target, modules)
                    if found and found != name:
                        graph[name].add(found)
    return graph


def floor(module: str) -> int:
    best, level = -1, None
    for i, names in enumerate(FLOORS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), i
    assert level is not None, f"{module} stands on no floor: add it to FLOORS"
    return level


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_no_arrow_runs_up():
    up = [(a, b) for a, targets in import_graph().items() for b in targets if floor(b) > floor(a)]
    assert up == [], "imports from a lower floor to a higher one (docs/architecture.md)"


def test_rules_and_analysis_never_import_the_engine_top():
    bad = [(a, b) for a, targets in import_graph().items() for b in targets
           if a.startswith(("lrsim.rules", "lrsim.analysis")) and b.startswith(TOP)]
    assert bad == []


def test_analysis_does_not_import_a_substrate():
    bad = [(a, b) for a, targets in import_graph().items() for b in targets
           if a.startswith("lrsim.analysis") and b.startswith("lrsim.models")]
    assert bad == []


def test_substrates_reach_analysis_only_through_the_observer_core():
    bad = [(a, b) for a, targets in import_graph().items() for b in targets
           if a.startswith(("lrsim.models.rate", "lrsim.models.spiking"))
           and b.startswith("lrsim.analysis") and b != "lrsim.analysis.observer"]
    assert bad == []


def test_every_rule_module_is_discovered():
    names = [m.name for m in pkgutil.iter_modules(lrsim.rules.__path__)
             if m.name != "base" and not m.name.startswith("_")]
    assert names, "no rule modules found"
    for name in names:
        assert f"lrsim.rules.{name}" in sys.modules, f"rule module {name} was not imported"
        importlib.import_module(f"lrsim.rules.{name}")


@pytest.mark.parametrize("path", sorted((ROOT / "rules").glob("*.py")), ids=lambda p: p.name)
def test_rules_do_layer_arithmetic_through_the_layer_interface(path: Path):
    """Rules written for any layer kind (`layer_kinds = None`) never multiply tensors
    themselves (no bmm, baddbmm, einsum, matmul, @): the layer interface does that."""
    text = path.read_text()
    if path.name in ("__init__.py", "base.py") or 'layer_kinds = frozenset({"dense"})' in text:
        return
    raw = [ast.unparse(node) for node in ast.walk(ast.parse(text))
           if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr in ("bmm", "baddbmm", "einsum", "matmul"))
           or (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult))]
    assert raw == [], f"{path.name}: layer arithmetic outside the layer interface: {raw}"
