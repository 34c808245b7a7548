"""Jupyter: problems, ledger rows and verdicts render as LaTeX / Markdown."""

from __future__ import annotations

import sympy as sp

from scaleinv import Problem, rules
from scaleinv.analysis.claims import run_ledger
from scaleinv.analysis.invariance import InputScaling, scale_invariance


def test_problem_renders_as_latex() -> None:
    p = Problem.from_strings(
        ["x0", "x1"], ["x0", "alpha*x1**2"], "y0**2 + y1**2", params={"alpha": 3}
    )
    shown = p._repr_latex_()
    assert shown.startswith("$$\\begin{aligned}") and shown.endswith("\\end{aligned}$$")
    assert sp.latex(p.outputs[1]) in shown and "\\alpha = 3" in shown


def test_ledger_and_verdicts_render_as_markdown() -> None:
    report = run_ledger(ids=["gd-loss-change-sign", "gd-sensitivity-step"])
    table = report._repr_markdown_()
    assert table.count("\n| gd-") == 2 and "corrected" in table
    row = report.rows[0]._repr_markdown_()
    assert "$" in row and "**gd-loss-change-sign**" in row  # math is math, not code
    p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], "y0**2 + y1**2", params={"alpha": 3})
    eta = sp.Symbol("eta", positive=True)
    r = scale_invariance(p, rules.gd(eta), InputScaling({"x1": "1/alpha"}), rng=0)
    md = r._repr_markdown_()
    assert "**refuted**" in md and "counterexample" in md and "$" in md
