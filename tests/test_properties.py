"""The property campaign: random expressions from the allow-listed grammar, checked against
independent evaluations (finite differences, SymPy ``evalf`` at 30 digits, the exported module,
``P(P⁻¹(y; x0)) = y`` on every branch) — and never an exception that is not scaleinv's.

Sizes scale with the hypothesis profile (``tests/conftest.py``): in CI (``CI=true``) the
campaign generates 10 685 expressions; locally a fifth of that. :data:`GENERATED` counts
them; each property multiplies its examples by the expressions per example.
"""

from __future__ import annotations

import importlib.util
import sys
from unittest import mock

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scaleinv import Problem, export
from scaleinv.errors import ScaleinvError
from scaleinv.numeric.kernels import compile_kernel
from scaleinv.symbolic.parsing import parse_expr

#: The profile's example count (100 in CI, 20 locally) scales every property below.
BASE = settings().max_examples
#: (examples, expressions per example) of each property.
SIZES = {
    "parse": (20 * BASE, 3),
    "evalf": (5 * BASE, 8),
    "derivatives": (2 * BASE, 3),
    "inverse": (BASE // 4, 1),
    "export": (BASE // 10, 6),
}
GENERATED = sum(examples * per for examples, per in SIZES.values())

X0, X1 = sp.symbols("x0 x1", real=True)
ALPHA = sp.Symbol("alpha", positive=True)
SYMBOLS = {"x0": X0, "x1": X1, "alpha": ALPHA}

# -- the grammar, as text ------------------------------------------------------------------
_LEAVES = st.sampled_from(["x0", "x1", "alpha", "2", "3", "0.5", "1", "pi"])
_SMOOTH = ["sin", "cos", "exp", "atan", "tanh", "sinh", "cosh", "sqrt", "log", "Abs"]


def _grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unary = st.tuples(st.sampled_from(_SMOOTH), children).map(lambda t: f"{t[0]}({t[1]})")
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    power = st.tuples(children, st.sampled_from(["2", "3", "-1", "1/2"])).map(
        lambda t: f"({t[0]})**{t[1]}"
    )
    negate = children.map(lambda c: f"-{c}")
    return unary | binary | power | negate


EXPRESSIONS = st.recursive(_LEAVES, _grow, max_leaves=5)
_HOSTILE = list("()[]{}.,:;'\"@#$%^&|~!?<>=_\\`") + ["**", "__", "0", "1e999", " ", "ｘ", "j"]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A grammar expression, sometimes with hostile characters spliced in."""
    text = draw(EXPRESSIONS)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(_HOSTILE)) + text[at:]
    return text


def _parsed(text: str) -> sp.Expr | None:
    """The expression, or None for a (typed) refusal."""
    try:
        return parse_expr(text, SYMBOLS)
    except ScaleinvError:
        return None


def _campaign(name: str) -> settings:
    """Settings of one property: its size, no deadline (a first SymPy call can take a second
    while caches warm up), and no too-slow health check (problem building is slow by nature)."""
    return settings(
        max_examples=SIZES[name][0],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


_POINTS = np.array([[0.7, -0.4, 1.3], [-1.1, 0.9, 0.6], [0.3, 1.7, 2.2]])  # (x0, x1, alpha)


@_campaign("parse")
@given(st.lists(_mutated(), min_size=3, max_size=3))
def test_parsing_returns_an_expression_or_a_typed_error(texts: list[str]) -> None:
    for text in texts:
        try:
            expr = parse_expr(text, SYMBOLS)
        except ScaleinvError:
            continue  # never anything else: the test fails on any other exception
        assert isinstance(expr, sp.Expr) and expr.free_symbols <= set(SYMBOLS.values())
        assert not expr.has(sp.zoo, sp.nan, sp.oo, sp.I)


def _exact(expr: sp.Expr, point: np.ndarray) -> float | None:
    """``expr`` at ``point`` with 30 digits, or None outside the real function's domain (a
    subexpression is not real, e.g. ``tanh(log(x0))`` at x0 < 0 is real only via complex
    logs) or where the value is not moderate."""
    values = {s: sp.Float(repr(float(v)), 30) for s, v in zip((X0, X1, ALPHA), point)}
    value = None
    for part in sp.postorder_traversal(expr):  # the whole expression comes last
        try:
            value = sp.N(part.xreplace(values), 30)
        except (OverflowError, ValueError, TypeError, ZeroDivisionError):
            return None
        if not value.is_number or value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            return None
        re, im = value.as_real_imag()
        if abs(im) > 1e-25 or abs(re) > 1e8:
            return None
    return float(sp.re(value))


@_campaign("evalf")
@given(st.lists(EXPRESSIONS, min_size=8, max_size=8))
def test_compiled_kernels_match_evalf_at_30_digits(texts: list[str]) -> None:
    exprs = [e for e in map(_parsed, texts) if e is not None]
    assume(exprs)
    kernel = compile_kernel("k", exprs, [("x", [X0, X1])], {ALPHA: 1.0})
    for point in _POINTS:
        got = kernel(point[:2], alpha=point[2])
        for expr, value in zip(exprs, got):
            exact = _exact(expr, point)
            if exact is not None:
                assert value == pytest.approx(exact, rel=1e-9, abs=1e-9), (expr, point)


def _problem(texts: list[str]) -> Problem:
    """A problem of the parseable ``texts``, built without ``cheap_simplify``: simplifying
    costs about 0.4 s per entry on this machine and is SymPy's equivalence-preserving rewrite,
    while what is checked here is differentiation, code generation and export. (The shipped
    problems, with simplification, are checked the same way in test_kernels.py.)"""
    exprs = [t for t in texts if _parsed(t) is not None]
    reads = {str(s) for t in exprs for s in _parsed(t).free_symbols}
    assume({"x0", "x1"} & reads)  # a constant P is refused (nothing to optimize)
    with mock.patch("scaleinv.symbolic.sparse.cheap_simplify", lambda expr, **_: expr):
        p = Problem.from_strings(["x0", "x1"], exprs, params={"alpha": 1.3})
        p.compile()  # derives J, gradient and Hessian while unsimplified
    return p


def _central(f, x: np.ndarray, h: float) -> np.ndarray:
    """Central differences of ``f`` at ``x`` (one point), derivative axis last."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


def _check_fd(kernel, f, x: np.ndarray) -> None:
    """``kernel(x)`` against central differences of ``f``, where these are well conditioned
    (two step sizes agree) and finite."""
    with np.errstate(all="ignore"):
        values = f(x)
        if not np.all(np.isfinite(values)):
            return  # outside the real function's domain
        coarse, fine, exact = _central(f, x, 1e-4), _central(f, x, 5e-5), kernel(x)
    noise = 1e-5 + 100 * np.finfo(float).eps * np.max(np.abs(values)) / 5e-5  # eps |f| / h
    good = np.isfinite(coarse) & np.isfinite(fine) & np.isfinite(exact)
    good &= np.abs(coarse - fine) <= 1e-6 * (1 + np.abs(fine))
    good &= np.abs(fine) < 1e6
    np.testing.assert_allclose(exact[good], fine[good], rtol=1e-5, atol=noise)


@_campaign("derivatives")
@given(st.lists(EXPRESSIONS, min_size=3, max_size=3))
def test_derivative_kernels_match_finite_differences(texts: list[str]) -> None:
    k = _problem(texts).compile()
    for x in (np.array([0.7, -0.4]), np.array([-1.1, 0.9])):
        _check_fd(k.jacobian, k.P, x)
        _check_fd(k.gradient, k.loss, x)
        _check_fd(k.hessian, k.gradient, x)


# -- local inverses: compositions of invertible (or two-branch) maps -------------------------
_MAPS = ["2*({})+1", "({})**3", "exp({})", "sinh({})", "({})**2", "-({})/alpha", "({})**5+({})"]


@st.composite
def _invertible(draw: st.DrawFn) -> str:
    text = "x0"
    for template in draw(st.lists(st.sampled_from(_MAPS), min_size=1, max_size=3)):
        text = template.replace("{}", text)
    return text


@_campaign("inverse")
@given(_invertible(), st.floats(-1.5, 1.5), st.floats(-0.3, 0.3))
def test_every_branch_of_the_local_inverse_maps_back(text: str, xs: float, shift: float) -> None:
    p = Problem.from_strings(["x0"], [text], params={"alpha": 1.3})
    inverse = p.local_inverse(budget=1_000_000)
    y = p.compile().P(np.array([xs]))
    assume(np.all(np.isfinite(y)) and np.all(np.abs(y) < 1e6))
    ys = dict(zip(p.output_symbols, map(float, y)))
    for branch in inverse.branches:
        values = {**ys, **{s: float(v) for s, v in p.params.items()}}
        if branch.condition.subs(values) is sp.false:
            continue
        x = [_exact(sol.subs(values), np.zeros(3)) for sol in branch.solution]
        if any(v is None for v in x):
            continue  # not real at this y
        np.testing.assert_allclose(p.compile().P(np.array(x)), y, rtol=1e-7, atol=1e-9)
    try:
        x = inverse.inv(y, np.array([xs + shift]))
    except ScaleinvError:
        return  # the numeric inverse may fail to converge: a typed error, never a wrong x
    np.testing.assert_allclose(p.compile().P(x), y, rtol=1e-6, atol=1e-8)


@_campaign("export")
@given(texts=st.lists(EXPRESSIONS, min_size=6, max_size=6))
def test_the_exported_module_matches_the_in_process_kernels(
    texts: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    p = _problem(texts)
    folder = tmp_path_factory.mktemp("export")
    path = export(p, folder / "kernels_mod.py", rules=[])
    spec = importlib.util.spec_from_file_location(f"k{id(path)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.pop(spec.name, None)
    k = p.compile()
    x = np.array([[0.7, -0.4], [-1.1, 0.9], [0.3, 1.7]])
    with np.errstate(all="ignore"):
        for name in ("P", "jacobian", "gradient", "hessian", "loss"):
            ours, theirs = getattr(k, name)(x), getattr(module, name)(x)
            np.testing.assert_array_equal(ours, theirs)
            np.testing.assert_array_equal(
                getattr(k, name)(x, alpha=2.0), getattr(module, name)(x, alpha=2.0)
            )


def test_the_campaign_is_as_large_as_promised() -> None:
    from conftest import IN_CI

    assert GENERATED >= (10_000 if IN_CI else 2_000)
