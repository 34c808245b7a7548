"""Repository-level rules: CI runs the README's test command, no eval of text (the import
layers are checked in ``tests/test_layers.py``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: Besides the kernels: an indexed spec's formulas of the grid index alone (starts, per-point
#: params, targets; parsed by the allow-list) are evaluated on the grid while the spec is read,
#: in the symbolic layer, which cannot import the numeric one.
LAMBDIFY_ALLOWED = {"scaleinv/numeric/kernels.py", "scaleinv/symbolic/indexed_grid.py"}


def test_only_kernels_turns_sympy_into_numpy() -> None:
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "scaleinv").rglob("*.py")
        if re.search(r"\blambdify\b", p.read_text())
        and p.relative_to(ROOT).as_posix() not in LAMBDIFY_ALLOWED
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
