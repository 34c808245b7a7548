"""Derivatives on the expression graph (scaleinv.symbolic.autodiff): numeric twins and size.

The graph route's Jacobian, gradient and Hessian kernels are checked against (a) the expanded
SymPy derivatives (``problem.jacobian`` etc.) evaluated by ``sympy.lambdify``, to 1e-12
relative, and (b) central finite differences of the function's own kernels — on the 12-link
chain of ``benchmarks/``, the diffusion step of ``benchmarks/derive.py`` and random
compositions, with both derivation engines. The size test is the property the graph route is
for: the chain's gradient and Hessian kernels stay within a small factor of P's own.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from catalogue import finite_difference
from conftest import optional_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaleinv import Problem
from scaleinv.errors import ProblemError
from scaleinv.numeric.kernels import compile_kernel, compile_program
from scaleinv.symbolic import output_symbols
from scaleinv.symbolic.sparse import SparseDerivatives, to_matrix

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENGINES = ["sympy", "symengine"]
KINDS = ("jacobian", "gradient", "hessian")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"scaleinv_benchmark_{name}", BENCHMARKS / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_kernels = _load("kernels.py")
bench_derive = _load("derive.py")


def require(engine: str) -> None:
    """Skip (locally) or fail (CI) a SymEngine case where SymEngine is not installed."""
    if engine == "symengine":
        optional_module("symengine", "fast")


def graph_kernels(problem: Problem, engine: str = "auto", route: str = "graph") -> dict:
    """J, gradient and H kernels printed from ``route``'s programs, dense shapes."""
    require(engine)
    derivs = problem.derivatives(engine)
    shapes = {"jacobian": (problem.m, problem.n), "gradient": (problem.n,)}
    shapes["hessian"] = (problem.n, problem.n)
    out = {}
    for kind in KINDS:
        keys = sorted(derivs.table(kind))
        program = derivs.program(kind, keys, route)
        x = [("x", problem.inputs)]
        out[kind] = compile_program(kind, program, keys, shapes[kind], x, problem.params)
    return out


def expanded(problem: Problem, engine: str = "auto") -> dict:
    """The expanded derivatives (the entries behind ``problem.jacobian`` etc., before display
    simplification) through ``sympy.lambdify``: a second derivation and a second printer."""
    derivs = problem.derivatives(engine)
    args = [*problem.inputs, *problem.params]
    values = list(problem.params.values())
    shapes = {"jacobian": (problem.m, problem.n), "gradient": (problem.n, 1)}
    shapes["hessian"] = (problem.n, problem.n)
    out = {}
    for kind in KINDS:
        entries = {
            k: derivs.engine.to_sympy(e, derivs.symbols) for k, e in derivs.native[kind].items()
        }
        matrix = to_matrix(entries, shapes[kind])
        f = sp.lambdify(args, matrix, "numpy", cse=True)
        out[kind] = lambda x, f=f, shape=matrix.shape: np.stack(
            [np.broadcast_to(np.asarray(f(*row, *values), dtype=float), shape) for row in x]
        )
    return out


def assert_twins(problem: Problem, x: np.ndarray, engine: str = "auto") -> None:
    """Graph kernels == lambdify of the expanded derivatives (1e-12 relative to each sample's
    largest entry) and == central finite differences of P, the loss and the gradient."""
    ours, theirs = graph_kernels(problem, engine), expanded(problem, engine)
    for kind in KINDS:
        got = ours[kind](x)
        want = theirs[kind](x).reshape(got.shape)
        scale = np.abs(want).reshape(len(x), -1).max(axis=1) + 1e-300
        err = np.abs(got - want).reshape(len(x), -1).max(axis=1) / scale
        assert np.all(err <= 1e-12), (kind, err.max())
    inputs, params = [("x", problem.inputs)], problem.params
    P = compile_kernel("P", list(problem.outputs), inputs, params)
    loss = compile_kernel("loss", problem.loss_x, inputs, params)
    for point in x:
        jac_fd = finite_difference(P, point)
        grad_fd = finite_difference(loss, point)
        hess_fd = finite_difference(ours["gradient"], point)
        for kind, fd in (("jacobian", jac_fd), ("gradient", grad_fd), ("hessian", hess_fd)):
            got = ours[kind](point[None])[0]
            np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-5 * (1 + np.abs(fd).max()))


def _points(n: int, size: int = 4, seed: int = 0, scale: float = 1.5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, (size, n))


@pytest.mark.parametrize("engine", ENGINES)
def test_chain_graph_kernels_are_twins_of_the_expanded_derivatives(engine: str) -> None:
    require(engine)
    problem = bench_kernels.chain_problem(12)
    assert problem.derivatives(engine).route == "graph"
    assert_twins(problem, _points(12, scale=np.pi), engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_diffusion_graph_kernels_are_twins_of_the_expanded_derivatives(engine: str) -> None:
    require(engine)
    problem = bench_derive.diffusion_problem(8)
    assert problem.derivatives(engine).route == "expanded"  # nothing shared: cse is smaller
    assert_twins(problem, _points(8), engine)


def test_compiled_kernels_use_the_route_and_keep_the_patterns() -> None:
    problem = bench_kernels.chain_problem(5)
    k = problem.compile()
    graph = graph_kernels(problem)
    x = _points(5, 7, seed=3)
    for kind in KINDS:
        np.testing.assert_array_equal(getattr(k, kind)(x), graph[kind](x))
    assert k.hessian_pattern.rows.tolist() == [a for a, _ in problem.sparsity.hessian]
    assert k.hessian_values(x).shape == (7, problem.sparsity.hessian_nnz)
    expanded_hessian = graph_kernels(problem, route="expanded")["hessian"](x)
    np.testing.assert_allclose(k.hessian(x), expanded_hessian, rtol=1e-12, atol=1e-12)


# -- random compositions -----------------------------------------------------------------
UNARY = [sp.sin, sp.cos, sp.tanh, lambda z: sp.exp(-(z**2)), lambda z: sp.log(1 + z**2)]


@st.composite
def compositions(draw: st.DrawFn) -> Problem:
    """A layered composition: every node applies a function to a combination of earlier
    nodes (inputs, a param), so later nodes share earlier ones; outputs are some nodes."""
    n = draw(st.integers(2, 4))
    alpha = sp.Symbol("alpha", positive=True)
    xs = sp.symbols(f"x0:{n}", real=True)
    nodes: list[sp.Expr] = list(xs)
    for _ in range(draw(st.integers(2, 7))):
        i, j = draw(st.integers(0, len(nodes) - 1)), draw(st.integers(0, len(nodes) - 1))
        c = sp.Rational(draw(st.integers(-3, 3)), draw(st.integers(1, 3)))
        combine = draw(st.sampled_from(["add", "mul", "param"]))
        arg = {
            "add": nodes[i] + c * nodes[j],
            "mul": nodes[i] * nodes[j] / 2,
            "param": alpha * nodes[i] + c,
        }[combine]
        nodes.append(draw(st.sampled_from(UNARY))(arg) + draw(st.sampled_from([0, 1])) * nodes[j])
    m = draw(st.integers(1, 4))
    outputs = nodes[-m:]
    ys = output_symbols(m)
    loss = draw(st.sampled_from([None, "coupled"]))
    if loss == "coupled":  # a loss whose Hessian in y is not diagonal
        loss = sum((y - 1) ** 2 for y in ys) / 2 + ys[0] * ys[-1] / 4
    return Problem(xs, outputs, loss=loss, params={alpha: 1.3})


@pytest.mark.parametrize("engine", ENGINES)
# at most 25 compositions per engine (CI's profile would run 100: 80 s for both engines)
@settings(
    max_examples=min(25, settings().max_examples),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(problem=compositions())
def test_random_compositions_graph_kernels_are_twins(problem: Problem, engine: str) -> None:
    assert_twins(problem, _points(problem.n, 3, seed=5, scale=1.0), engine)


# -- the size of the programs ------------------------------------------------------------
@pytest.mark.parametrize("route", ["graph", "expanded"])
def test_chain_derivative_programs_stay_within_a_small_factor_of_P(route: str) -> None:
    """The gradient within 4x of P (reverse mode), the Hessian within 2n x of P (n
    directions of forward over reverse). The cse of the expanded formulas breaks both bounds:
    the test would fail if kernels were printed from it."""

    def ops(kernel) -> int:  # NumPy operations per block (benchmarks/kernels.py counts them)
        return bench_kernels.operations(kernel.source)[1]

    problem = bench_kernels.chain_problem(12)
    kernels = graph_kernels(problem, route=route)
    p_ops = bench_kernels.operations(problem.compile().P.source)[1]
    ratios = {kind: ops(kernels[kind]) / p_ops for kind in ("gradient", "hessian")}
    within = ratios["gradient"] <= 4 and ratios["hessian"] <= 2 * problem.n
    assert within == (route == "graph"), ratios
    if route == "graph":
        compiled = problem.compile()
        assert ops(compiled.hessian) == ops(kernels["hessian"])


def test_route_falls_back_to_expanded_formulas_for_unknown_functions() -> None:
    x, y = sp.symbols("x y", real=True)
    problem = Problem([x, y], [sp.Abs(sp.sin(x + y)) + sp.sin(x + y), sp.cos(x + y) * x])
    derivs = problem.sparse
    assert isinstance(derivs, SparseDerivatives) and derivs.graph is None
    assert derivs.route == "expanded"
    with pytest.raises(ProblemError, match="graph route differentiates only"):
        derivs.program("hessian", sorted(derivs.hessian), "graph")
    with pytest.raises(ProblemError, match="unknown derivative route 'tape'"):
        derivs.program("hessian", sorted(derivs.hessian), "tape")


def test_constant_outputs_and_constants_in_nodes_are_leaves() -> None:
    """Outputs that are constants (pi, -pi: shared by cse) and nodes holding E or pi."""
    x0, x1 = sp.symbols("x0 x1", real=True)
    s = sp.sin(x0 + x1)
    problem = Problem([x0, x1], [sp.pi, -sp.pi, -sp.pi, sp.pi * x0 * s, sp.exp(s) + sp.E * s])
    for engine in ENGINES:
        assert_twins(problem, _points(2, 3, seed=2), engine)
