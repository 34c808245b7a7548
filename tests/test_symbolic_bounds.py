"""Symbolic stages end on huge inputs with a verdict or a message, never a hang (issue 17)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sympy as sp

from scaleinv.reports.formulas import APPENDIX_FILE, MAX_TYPESET_NODES, Formulas
from scaleinv.reports.text import format_formula
from scaleinv.symbolic import Problem
from scaleinv.symbolic.budget import cheap_simplify, huge_power, tree_size
from scaleinv.symbolic.inverse import local_inverse

x0, x1 = sp.symbols("x0 x1")


def _doubling(levels: int) -> sp.Expr:
    """A formula whose tree doubles with each level (``e -> e + e·x1``, unevaluated): a small
    DAG, as SymPy shares subtrees, but a tree of about ``3 · 2**levels`` nodes, like the
    derivatives of nested functions (98 nested ``sin``) that used to hang the layout."""
    expr = x0
    for _ in range(levels):
        expr = sp.Add(expr, sp.Mul(expr, x1, evaluate=False), evaluate=False)
    return expr


def test_tree_size_stops_counting_at_its_cap() -> None:
    huge = _doubling(40)  # 3 · 2**40 nodes: walking it would never end
    started = time.monotonic()
    assert tree_size(huge, 10_000) == 10_001
    assert time.monotonic() - started < 2
    small = sp.sin(x0) * x1 + 3
    assert tree_size(small, 100) == sum(1 for _ in sp.preorder_traversal(small))


def test_a_huge_power_of_a_sum_is_neither_simplified_nor_solved() -> None:
    power = 1000 * (x0 + x1 + 1) ** 1999
    started = time.monotonic()
    assert cheap_simplify(power - power * sp.cos(x0) ** 2) == power - power * sp.cos(x0) ** 2
    assert huge_power(power) == (x0 + x1 + 1) ** 1999 and huge_power((x0 + 1) ** 24) is None
    p = Problem.from_strings("x0", "(x0 + 1)**25 + x0")
    inverse = local_inverse(p)
    assert time.monotonic() - started < 10
    assert inverse.numeric and "(x0 + 1)**25, a power of a sum beyond 24" in inverse.reason
    x = inverse.inv([2.0], [0.1])  # the numeric twin: P(P⁻¹(y)) = y
    np.testing.assert_allclose((x[0] + 1) ** 25 + x[0], 2.0, rtol=1e-9)


def test_a_formula_too_large_to_typeset_is_refused_up_front() -> None:
    hessian = _doubling(40)
    formulas = Formulas()
    started = time.monotonic()
    tex = formulas.block([(r"H_{11}", hessian)], title="Hessian")
    appendix = formulas.appendix_text("nested sin")
    text = format_formula("H", hessian)
    assert time.monotonic() - started < 10
    assert f"more than {MAX_TYPESET_NODES:,} nodes" in tex and APPENDIX_FILE in tex
    assert "too large to write out" in appendix and "too large to print" in text
    laid = formulas.block([("y", sp.sin(x0) + x1)])  # small formulas are still set
    assert r"\sin" in laid and "nodes" not in laid


@pytest.mark.slow
def test_a_second_derivative_too_costly_to_derive_for_display_is_a_note(tmp_path) -> None:
    from scaleinv.reports.derivations import CURVATURE_STEPS, _output_curvatures
    from scaleinv.symbolic import load_spec

    nested = "x1"
    for _ in range(98):
        nested = f"sin({nested})"
    path = tmp_path / "nested.toml"
    path.write_text(f'[problem]\ninputs = ["x0", "x1"]\noutputs = ["x0 + {nested}"]\n')
    started = time.monotonic()
    curvatures = dict(_output_curvatures(load_spec(path)))
    assert time.monotonic() - started < 60  # (it took minutes: sympy.diff of 98 nested sin)
    (entry,) = curvatures.values()
    assert f"exceeded its work limit of {CURVATURE_STEPS:,} steps" in str(entry)


def test_display_rewrites_of_a_report_share_one_work_limit() -> None:
    from scaleinv.reports.formulas import REWRITE_STEPS
    from scaleinv.symbolic.budget import steps_spent

    xs = sp.symbols("x0:6")
    wide = [  # each too wide for a line, so each is offered to factor and simplify
        sum(sp.sin(k * x) * sp.cos(xs[(j + 1) % 6]) for j, x in enumerate(xs)) + k
        for k in range(1, 9)
    ]
    formulas = Formulas(rewrite_steps=100_000)
    before = steps_spent()
    formulas.block([(f"f_{k}", e) for k, e in enumerate(wide)])
    assert steps_spent() - before <= 100_000 + REWRITE_STEPS  # the last one may start at 1
    assert formulas.rewrite_steps <= 0
    assert Formulas().rewrite_steps > 100_000  # a report's own allowance
