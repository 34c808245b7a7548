"""The import structure of ``scaleinv``: imports point only down the layers, with no cycles.

Layers, top to bottom (DESIGN.md "Layers")::

    scaleinv (the package's own __init__ and __main__: the public front)
    cli  ->  reports  ->  analysis  ->  numeric  ->  symbolic
    errors, markup, _version (leaf utilities: any layer may import them; they import no other
    scaleinv module but each other)

The rules, checked by parsing every module of ``scaleinv/`` (``ast``, so imports inside
functions count too):

1. A module imports only from its own layer or below. The one exception is
   :data:`CONVENIENCES`: methods of the symbolic layer's public objects that reach the numeric
   layer inside the method, on use (``Problem.compile()``, ``LocalInverse.compile()`` and
   ``LocalInverse.inv()``); the package's own code calls the numeric entries
   (``scaleinv.compile``/``numeric.compile_problem``, ``compile_inverse``, ``invert``).
2. No cycle among modules. Imports inside functions are edges like module-level ones (putting
   an import in a function hides a cycle from Python, not from a reader); only imports under
   ``if TYPE_CHECKING:`` (never executed) and the conveniences are left out.
3. So an import may sit inside a function only to defer a cost (an optional dependency:
   JAX, PyTorch, Dask, SymEngine, matplotlib; or a heavy module of a lower layer) — never to
   reach up or to break a cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Rank of each layer (a module may import ranks at or below its own).
LAYERS = {"symbolic": 0, "numeric": 1, "analysis": 2, "reports": 3, "cli": 4}
#: Modules every layer may import; they import only each other.
LEAVES = {"scaleinv.errors", "scaleinv.markup", "scaleinv._version"}
#: The public front (``scaleinv/__init__.py``, ``python -m scaleinv``): above every layer.
FRONT = 5
LEAF = -1
#: (module, function) whose import of a higher layer is a documented convenience.
CONVENIENCES = {
    ("scaleinv.symbolic.problem", "Problem.compile"),
    ("scaleinv.symbolic.inverse", "LocalInverse.compile"),
    ("scaleinv.symbolic.inverse", "LocalInverse.inv"),
    ("scaleinv.symbolic.indexed", "IndexedProblem.compile"),
}


@dataclass(frozen=True)
class Import:
    """One import statement's target within the package."""

    source: str  # the importing module
    target: str  # the imported module
    line: int
    function: str | None  # qualified name of the enclosing function; None at module level
    type_only: bool  # under ``if TYPE_CHECKING:``

    def where(self) -> str:
        inside = f" (in {self.function})" if self.function else ""
        return f"{self.source} line {self.line}{inside}"


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under ``package`` (a folder named like the package)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(package: Path) -> list[Import]:
    """Every import of a module of ``package`` by a module of ``package``."""
    known = modules(package)
    found: list[Import] = []
    for name, path in known.items():
        found += _imports_of(name, path, known)
    return found


def _imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    root = name.split(".")[0]
    found = []

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST, function: str | None, scope: str, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner_function, inner_scope = function, scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner_function = inner_scope = f"{scope}.{child.name}".lstrip(".")
            elif isinstance(child, ast.ClassDef):
                inner_scope = f"{scope}.{child.name}".lstrip(".")
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(child.body, []), function, scope, True)
                visit(ast.Module(child.orelse, []), function, scope, type_only)
                continue
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = here.split(".")[: len(here.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in child.names
                ]
            for target in targets:
                resolved = resolve(target) if target.split(".")[0] == root else None
                if resolved is not None and resolved != name:
                    found.append(Import(name, resolved, child.lineno, function, type_only))
            visit(child, inner_function, inner_scope, type_only)

    visit(ast.parse(path.read_text(encoding="utf-8")), None, "", False)
    return found


def rank(module: str) -> int:
    """The layer rank of ``module`` (see :data:`LAYERS`, :data:`LEAVES`, :data:`FRONT`)."""
    if module in LEAVES:
        return LEAF
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return FRONT
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module} is in no layer: add it to a layer or to LEAVES")
    return LAYERS[parts[1]]


def upward(found: list[Import]) -> list[str]:
    """One line per import that points up a layer (or from a leaf into the layers)."""
    return [
        f"{i.where()} imports {i.target}, a layer above"
        for i in found
        if rank(i.target) > rank(i.source) or (rank(i.source) == LEAF and rank(i.target) != LEAF)
        if (i.source, i.function) not in CONVENIENCES
    ]


def cycles(found: list[Import]) -> list[str]:
    """One line per import cycle, each edge with its line, the shortest cycles first."""
    graph = nx.DiGraph()
    for i in found:
        if not i.type_only and (i.source, i.function) not in CONVENIENCES:
            if not graph.has_edge(i.source, i.target):
                graph.add_edge(i.source, i.target, at=i)
    lines = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            cycle = nx.find_cycle(graph.subgraph(component))
            edges = [graph.edges[a, b]["at"] for a, b in cycle]
            path = " -> ".join(f"{e.where()} imports {e.target}" for e in edges)
            lines.append(f"import cycle: {path}")
    return sorted(lines, key=len)


def test_imports_only_point_down_the_layers() -> None:
    problems = upward(imports(ROOT / "scaleinv"))
    assert not problems, "\n".join(problems)


def test_no_import_cycles() -> None:
    problems = cycles(imports(ROOT / "scaleinv"))
    assert not problems, "\n".join(problems)


def test_the_allowed_conveniences_exist_and_reach_only_numeric() -> None:
    # A stale entry would silently allow a future upward import.
    used = {
        (i.source, i.function): rank(i.target)
        for i in imports(ROOT / "scaleinv")
        if (i.source, i.function) in CONVENIENCES
    }
    assert used == dict.fromkeys(CONVENIENCES, LAYERS["numeric"])


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "scaleinv" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "scaleinv"


def test_the_checks_catch_an_upward_import_a_lazy_one_and_a_cycle(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "",
            "symbolic/__init__.py": "",
            "symbolic/a.py": "from scaleinv.numeric import b\n",
            "numeric/__init__.py": "",
            "numeric/b.py": "def f():\n    from scaleinv.numeric.c import g\n",
            "numeric/c.py": "from . import b\nfrom scaleinv.errors import X\n",
            "numeric/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from scaleinv.numeric.e import E\n",
            "numeric/e.py": "import scaleinv.numeric.d\n",
            "reports/__init__.py": "",
            "reports/r.py": "class R:\n    def go(self):\n        import scaleinv.cli.main\n",
            "cli/__init__.py": "",
            "cli/main.py": "import scaleinv\n",
        },
    )
    found = imports(package)
    assert upward(found) == [
        "scaleinv.cli.main line 1 imports scaleinv, a layer above",
        "scaleinv.reports.r line 3 (in R.go) imports scaleinv.cli.main, a layer above",
        "scaleinv.symbolic.a line 1 imports scaleinv.numeric.b, a layer above",
    ]
    # b -> c lazily, c -> b at module level: a cycle; d <-> e only under TYPE_CHECKING: none
    assert cycles(found) in (
        [
            "import cycle: scaleinv.numeric.b line 2 (in f) imports scaleinv.numeric.c -> "
            "scaleinv.numeric.c line 1 imports scaleinv.numeric.b"
        ],
        [
            "import cycle: scaleinv.numeric.c line 1 imports scaleinv.numeric.b -> "
            "scaleinv.numeric.b line 2 (in f) imports scaleinv.numeric.c"
        ],
    )


def test_a_module_outside_every_layer_is_named(tmp_path: Path) -> None:
    package = _package(tmp_path, {"__init__.py": "", "extra.py": "import scaleinv.errors\n"})
    with pytest.raises(AssertionError, match=r"scaleinv\.extra is in no layer"):
        upward(imports(package))


def test_no_import_cycles_among_the_benchmark_scripts() -> None:
    # The scripts import each other by bare name (``from kernels import chain_problem``).
    scripts = {p.stem: p for p in (ROOT / "benchmarks").glob("*.py")}
    found = []
    for name, path in scripts.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                targets = [node.module or ""]
            found += [
                Import(name, t, node.lineno, None, False)
                for t in targets
                if t in scripts and t != name
            ]
    problems = cycles(found)
    assert not problems, "\n".join(problems)
