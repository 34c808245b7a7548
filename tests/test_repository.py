"""Repository-level rules: imports point down the layers; CI runs the README's test command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"symbolic": 0, "numeric": 1, "analysis": 2, "reports": 3}
#: Convenience methods of the public API that reach one layer up, lazily, on use
#: (DESIGN.md names them: ``problem.compile()`` and ``LocalInverse.inv``).
FACADES = {
    ("symbolic/problem.py", "compile"),
    ("symbolic/inverse.py", "compile"),
    ("symbolic/inverse.py", "inv"),
}


def _imports(tree: ast.AST):
    """(imported module, enclosing function name or None) for every import in a module."""
    found = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            name = (
                child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            )
            if isinstance(child, ast.ImportFrom) and child.module:
                found.append((child.module, name))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, name) for alias in child.names)
            visit(child, name)

    visit(tree, None)
    return found


def test_imports_only_point_down_the_layers() -> None:
    violations = []
    for layer, rank in LAYERS.items():
        for path in sorted((ROOT / "scaleinv" / layer).rglob("*.py")):
            rel = path.relative_to(ROOT / "scaleinv").as_posix()
            for module, func in _imports(ast.parse(path.read_text())):
                parts = module.split(".")
                if parts[0] != "scaleinv" or len(parts) < 2:
                    continue
                target = LAYERS.get(parts[1])
                if parts[1] not in ("errors", "markup") and target is None:
                    violations.append(f"{rel} imports the package top level {module}")
                elif target is not None and target > rank and (rel, func) not in FACADES:
                    violations.append(f"{rel} ({func or 'module level'}) imports {module}")
    assert violations == []


def test_only_kernels_turns_sympy_into_numpy() -> None:
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "scaleinv").rglob("*.py")
        if re.search(r"\blambdify\b", p.read_text()) and p.name != "kernels.py"
    ]
    assert offenders == []


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) == 2, "README.md shows exactly two commands"
    test_command = blocks[1].strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "pytest" in test_command


def test_no_eval_of_text_anywhere() -> None:
    pattern = re.compile(r"\beval\(|sympify\(\s*(text|spec|value|string)")
    offenders = [p.name for p in (ROOT / "scaleinv").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
