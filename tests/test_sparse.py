"""Sparse derivatives, the derivation engines, sparse kernels and sparse steps: numeric twins.

Every path is checked against an independent one: the dense SymPy Hessian of ``L(P(x))``,
finite differences of the compiled gradient, SymPy vs SymEngine, NumPy vs SciPy sparse solves,
dense vs sparse steps, exported vs in-process steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from catalogue import CATALOGUE, finite_difference, sample_points
from conftest import optional_module

from scaleinv import Problem, export, rules
from scaleinv.errors import ProblemError
from scaleinv.numeric import runtime
from scaleinv.numeric.kernels import compile_kernel
from scaleinv.numeric.sparse import sparse_solve
from scaleinv.symbolic import engine as engine_module
from scaleinv.symbolic.sparse import newton_step_in_y


def diffusion(n: int) -> Problem:
    """One explicit nonlinear-diffusion step, periodic, with a nonzero target."""
    x = sp.symbols(f"x0:{n}", real=True)
    outputs = [
        x[i] + sp.Rational(1, 10) * ((x[(i + 1) % n] - 2 * x[i] + x[i - 1]) + x[i] ** 3 / 2)
        for i in range(n)
    ]
    return Problem(x, outputs, target=[0.1 * ((3 * i) % 7) for i in range(n)])


def chain(n: int) -> Problem:
    theta = sp.symbols(f"t0:{n}", real=True)
    outputs, px, py, phi = [], sp.Integer(0), sp.Integer(0), sp.Integer(0)
    for t in theta:
        phi += t
        px, py = px + sp.cos(phi), py + sp.sin(phi)
        outputs += [px, py]
    return Problem(theta, outputs, target=[0.3 * k for k in range(2 * n)])


PROBLEMS = {**CATALOGUE, "diffusion6": diffusion(6), "chain3": chain(3)}


def _points(problem: Problem, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.2, 1.2, (size, problem.n))


def _fresh(problem: Problem) -> Problem:
    return Problem(problem.inputs, problem.outputs, problem.loss, problem.target, problem.params)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_sparse_hessian_equals_the_dense_sympy_hessian(name: str) -> None:
    p = PROBLEMS[name]
    dense = sp.hessian(p.loss_x, p.inputs)  # the plain dense path, n² derivatives
    args = [*p.inputs, *p.params]
    f_dense = sp.lambdify(args, dense, "numpy")
    f_sparse = sp.lambdify(args, p.hessian, "numpy")
    for x in _points(p, 3, 1) if name not in CATALOGUE else sample_points(name, _rng(), 3):
        values = [*x, *p.params.values()]
        np.testing.assert_allclose(f_sparse(*values), f_dense(*values), rtol=1e-12, atol=1e-12)
    pattern = {ab for ab, e in zip(np.ndindex(p.n, p.n), dense) if sp.expand(e) != 0}
    assert pattern <= set(p.sparsity.hessian)


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_sparsity_of_the_diffusion_step_is_the_stencil() -> None:
    n = 9
    s = diffusion(n).sparsity
    stencil = {(i, (i + d) % n) for i in range(n) for d in (-1, 0, 1)}
    assert set(s.jacobian) == stencil and s.jacobian == tuple(sorted(stencil))
    assert set(s.hessian) == {(i, (i + d) % n) for i in range(n) for d in range(-2, 3)}
    assert (s.jacobian_shape, s.hessian_shape) == ((n, n), (n, n))
    assert (s.jacobian_nnz, s.hessian_nnz) == (3 * n, 5 * n)
    assert s.hessian_density == pytest.approx(5 / n)
    assert s.hessian_bandwidth == n - 1  # the periodic corners
    assert s.hessian_blocks == (tuple(range(n)),)


def test_the_hessian_pattern_is_what_finite_differences_see() -> None:
    p = diffusion(12)
    k = p.compile()
    x = _points(p, 1, 3)[0]
    fd = finite_difference(lambda z: k.gradient(z), x, 1e-5)
    seen = {(i, j) for i, j in zip(*np.nonzero(np.abs(fd) > 1e-7))}
    assert seen == set(p.sparsity.hessian)
    np.testing.assert_allclose(k.hessian(x), fd, atol=1e-6)


def test_independent_blocks_are_found() -> None:
    p = Problem.from_strings(["a", "b", "c", "d"], ["a*b", "c", "d**2"])
    assert p.sparsity.hessian_blocks == ((0, 1), (2,), (3,))
    assert p.sparsity.hessian_bandwidth == 1


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_sympy_and_symengine_engines_agree(name: str) -> None:
    optional_module("symengine", "fast")
    p = _fresh(PROBLEMS[name])
    a, b = p.derivatives("sympy"), p.derivatives("symengine")
    assert a.engine.name == "sympy" and b.engine.name == "symengine"
    assert a.sparsity == b.sparsity
    args = [*p.inputs, *p.params]
    for kind in ("jacobian", "gradient", "hessian"):  # as derived (display simplification off)
        ea, eb = (
            {key: d.engine.to_sympy(e, d.symbols) for key, e in d.native[kind].items()}
            for d in (a, b)
        )
        assert set(ea) == set(eb)
        fa = sp.lambdify(args, list(ea.values()), "numpy")
        fb = sp.lambdify(args, [eb[k] for k in ea], "numpy")
        for x in _points(p, 3, 2):
            values = [*x, *p.params.values()]
            np.testing.assert_allclose(fb(*values), fa(*values), rtol=1e-12, atol=1e-12)
    step_a, step_b = (
        {key: d.engine.to_sympy(e, d.symbols) for key, e in d.table("newton_dy").items()}
        for d in (a, b)
    )
    assert set(step_a) == set(step_b)
    assert all(sp.expand(e - step_b[key]) == 0 for key, e in step_a.items())
    free = set().union(*(e.free_symbols for e in eb.values()))
    assert free <= set(p.inputs) | set(p.params)  # SymPy's own symbols, assumptions and all


@pytest.mark.parametrize("use_symengine", [False, True])
def test_kernels_of_either_engine_equal_the_sympy_matrices(use_symengine, monkeypatch) -> None:
    if use_symengine:
        optional_module("symengine", "fast")
    else:
        monkeypatch.setattr(engine_module, "symengine_available", lambda: False)
    p = _fresh(chain(2))
    k = p.compile()
    assert p.sparse.engine.name == ("symengine" if use_symengine else "sympy")
    args = [*p.inputs]
    for x in _points(p, 3, 4):
        for name in ("jacobian", "hessian", "gradient"):
            want = np.array(sp.lambdify(args, getattr(p, name), "numpy")(*x), dtype=float)
            got = getattr(k, name)(x)
            np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("use_symengine", [False, True])
def test_abs_is_differentiated_by_either_engine(use_symengine, monkeypatch) -> None:
    """SymEngine leaves d|u|/dx unevaluated; the engine hands it to SymPy (was a crash)."""
    if use_symengine:
        optional_module("symengine", "fast")
    else:
        monkeypatch.setattr(engine_module, "symengine_available", lambda: False)
    p = Problem.from_strings(["x0", "x1"], ["Abs(x0*x1) + exp(x1)", "x1*Abs(x0)"], "y0**2 + y1**2")
    k = p.compile()
    assert p.sparse.engine.name == ("symengine" if use_symengine else "sympy")
    for x in np.array([[1.5, 0.7], [-0.4, 1.1], [0.9, -2.0]]):
        fd = finite_difference(lambda v: k.P(v), x)
        np.testing.assert_allclose(k.jacobian(x), fd, rtol=1e-6, atol=1e-8)
        fd = finite_difference(lambda v: k.gradient(v), x)
        np.testing.assert_allclose(k.hessian(x), fd, rtol=1e-6, atol=1e-6)


def test_unknown_engine_is_a_problem_error() -> None:
    with pytest.raises(ProblemError, match="unknown derivation engine 'fast'"):
        PROBLEMS["trig"].derivatives("fast")


def test_newton_step_in_y_solves_coupled_blocks_and_diagonal_ones() -> None:
    p = Problem.from_strings(
        ["a", "b", "c"], ["a", "b", "c"], loss="(y0 - y1)**2 + y1**2 + exp(y0) + (y2 - 1)**4"
    )
    y = np.array([0.3, -0.2, 2.0])
    at = dict(zip(p.output_symbols, y))
    step = np.array([float(p.newton_dy[k].subs(at)) for k in range(3)])
    g = np.array([float(e.subs(at)) for e in p.loss_y])
    h = np.array(p.loss_yy.subs(at), dtype=float)
    np.testing.assert_allclose(step, -np.linalg.solve(h, g), rtol=1e-12)
    with pytest.raises(ProblemError, match="singular on outputs"):
        y0, y1 = sp.symbols("y0 y1")
        newton_step_in_y({0: y0 + y1, 1: y0 + y1}, {(0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 1}, 2)


def test_the_printer_agrees_with_lambdify() -> None:
    x, y = sp.symbols("x y")
    exprs = [
        x**3 - y**-2,
        sp.Pow(sp.E, 2 * x, evaluate=False),
        x ** (2 * y),
        sp.sqrt(x) / sp.sqrt(y),
        sp.Rational(3, 7) * x + sp.Float(0.1) * y,
        (x * y) ** 2 + sp.sin(x) ** 2 * sp.atan(y),
        sp.Abs(x - 3) + sp.exp(-x) + sp.log(y) * sp.pi,
        sp.Mul(-1, x + y, evaluate=False) ** 3,
    ]
    k = compile_kernel("f", exprs, [("v", [x, y])])
    points = np.array([[1.3, 0.7], [0.4, 2.5], [2.0, 1.0]])
    want = np.array([[float(e.subs({x: a, y: b})) for e in exprs] for a, b in points])
    np.testing.assert_allclose(k(points), want, rtol=1e-13)
    assert "x_*x_*x_" in k.source and "**3" not in k.source  # x is reserved: x_


def _sparse_problem() -> Problem:
    p = diffusion(100)
    assert p.compile().hessian_pattern.sparse and p.compile().jacobian_pattern.sparse
    return p


def test_sparse_newton_and_ig_steps_equal_dense_solves() -> None:
    p = _sparse_problem()
    k = p.compile()
    x = _points(p, 5, 5)
    dx, status = rules.newton(0.7).compile(p).step(x, None)[::2]
    want = -0.7 * np.linalg.solve(k.hessian(x), k.gradient(x)[..., None])[..., 0]
    np.testing.assert_allclose(dx, want, rtol=1e-10, atol=1e-12)
    assert (status == 0).all()
    dx_ig = rules.ig(0.5).compile(p).step(x, None)[0]
    dy = 0.5 * k.newton_dy(k.P(x))
    np.testing.assert_allclose(k.jacobian(x) @ dx_ig[..., None], dy[..., None], atol=1e-12)


def test_scipy_and_numpy_sparse_solves_agree_and_flag_singular_samples() -> None:
    p = _sparse_problem()
    k = p.compile()
    pattern = (k.hessian_pattern.rows, k.hessian_pattern.cols, k.hessian_pattern.shape)
    x = _points(p, 6, 6).reshape(2, 3, p.n)
    values, b = k.hessian_values(x), k.gradient(x)
    values[1, 2] = 0.0  # one singular sample
    got = sparse_solve(pattern, values, b)
    ref = runtime.sparse_solve(pattern, values, b, chunk_bytes=8 * p.n * p.n)  # 1 per chunk
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got[1], ref[1])
    assert got[1][1, 2] == runtime.SINGULAR and (got[0][1, 2] == 0).all()
    assert (np.delete(got[1].ravel(), 5) == runtime.RUNNING).all()


def test_sparse_newton_step_allocates_no_dense_batch_of_matrices() -> None:
    p = diffusion(256)
    step = rules.newton(1.0).compile(p).step
    x = _points(p, 200, 8)
    step(x[:2], None)  # warm-up
    tracemalloc.start()
    step(x, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dense = 200 * 256 * 256 * 8  # 105 MB
    assert peak < dense / 5  # values, COO/CSC copies: ~12 MB


def test_exported_sparse_steps_equal_in_process_ones(tmp_path: Path) -> None:
    p = _sparse_problem()
    steps = [rules.newton(0.5), rules.ig(0.5)]
    export(p, tmp_path / "exported.py", rules=steps)
    x = _points(p, 4, 9)
    runner = (
        "import json, sys, numpy\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import exported\n"
        "assert 'scipy' not in sys.modules and 'sympy' not in sys.modules\n"
        "assert exported.hessian_sparse and exported.jacobian_sparse\n"
        "x = numpy.array(json.loads(sys.argv[2]))\n"
        "print(json.dumps([exported.newton_step(x)[0].tolist(), exported.ig_step(x)[0].tolist()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", runner, str(tmp_path), json.dumps(x.tolist())],
        capture_output=True,
        text=True,
        check=True,
    )
    newton_dx, ig_dx = (np.array(v) for v in json.loads(out.stdout))
    for rule, got in zip(steps, (newton_dx, ig_dx)):
        want = rule.compile(p).step(x, None)[0]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_importing_scaleinv_does_not_import_symengine() -> None:
    code = "import sys, scaleinv; print('symengine' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_per_expression_diffusion_step_runs_sparsely() -> None:
    """The step of ``reports/diffusion.toml`` written out output by output (256 of them): its
    derivatives are sparse, and Newton finds the known answer."""
    from catalogue import per_expression_diffusion

    from scaleinv import minimize
    from scaleinv.symbolic.spec import parse_spec

    spec = parse_spec(tomllib.loads(per_expression_diffusion(256)))
    p = spec.problem
    assert p.n == 256 and p.sparsity.hessian_nnz == 5 * 256
    traj = minimize(p, rules.newton(1.0), np.array(spec.starts), 6, 1e-9)
    state = 0.5 * np.sin(2 * np.pi * np.arange(256) / 256)
    np.testing.assert_allclose(traj.x[-1, 0], state, atol=1e-9)  # the known answer


def test_the_shipped_diffusion_spec_is_indexed_and_finds_its_answer() -> None:
    from scaleinv import IndexedProblem, load_spec, minimize

    spec = load_spec(Path(__file__).resolve().parents[1] / "reports" / "diffusion.toml")
    p = spec.problem
    assert isinstance(p, IndexedProblem) and p.n == 4096
    assert [d.offset for d in p.hessian_stencil] == [(-2,), (-1,), (0,), (1,), (2,)]
    traj = minimize(p, rules.newton(1.0), np.array(spec.starts), spec.steps, spec.tol)
    np.testing.assert_allclose(traj.x[-1, 0], p.target_state, atol=1e-9)  # the known answer


def test_generic_functions_stay_with_sympy() -> None:
    x, y0 = sp.Symbol("x", real=True), sp.Symbol("y0", real=True)
    g, f = sp.Function("g"), sp.Function("f")
    p = Problem((x,), (g(x),), loss=f(y0))
    assert p.sparse.engine.name == "sympy"
    want = sp.diff(f(g(x)), x, 2)
    assert sp.simplify(p.hessian[0] - want) == 0
