from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from catalogue import CATALOGUE, evaluate, sample_points

from scaleinv.numeric import compile_kernel

NAMES = sorted(CATALOGUE)


@pytest.mark.parametrize("name", NAMES)
def test_kernels_equal_substitution_at_random_points(name: str) -> None:
    problem = CATALOGUE[name]
    kernels = problem.compile()
    x = sample_points(name, np.random.default_rng(3), 4)
    pairs = [
        (kernels.P, problem.P),
        (kernels.jacobian, problem.jacobian),
        (kernels.gradient, problem.gradient),
        (kernels.hessian, problem.hessian),
        (kernels.loss, sp.Matrix([problem.loss_x])),
    ]
    for kernel, expr in pairs:
        got = kernel(x)
        for i, point in enumerate(x):
            want = evaluate(expr, problem, point).reshape(kernel.shape)
            np.testing.assert_allclose(got[i], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [(), (7,), (2, 3, 4)])
def test_kernels_batch_over_any_leading_shape_and_broadcast_constants(batch) -> None:
    problem = CATALOGUE["comparison"]
    k = problem.compile()
    x = np.random.default_rng(4).normal(size=batch + (2,))
    assert k.P(x).shape == batch + (2,)
    assert k.jacobian(x).shape == batch + (2, 2)
    assert k.hessian(x).shape == batch + (2, 2)
    assert k.loss(x).shape == batch
    # the constant entries (J[0,0] = 1, H[0,0] = 2) are broadcast to every sample (SymPy #9725)
    assert np.all(k.jacobian(x)[..., 0, 0] == 1.0) and np.all(k.hessian(x)[..., 0, 0] == 2.0)
    assert k.hessian(x).dtype == np.float64


def test_params_are_keywords_with_defaults_and_broadcast() -> None:
    problem = CATALOGUE["scaling_toy"]
    k = problem.compile()
    x = np.array([1.0, 2.0])
    np.testing.assert_array_equal(k.P(x), [1.0, 20.0])
    np.testing.assert_array_equal(k.P(x, alpha=3.0), [1.0, 6.0])
    alphas = np.array([1.0, 10.0, 100.0])
    assert k.P(x, alpha=alphas).shape == (3, 2)


def test_compiled_once_per_problem() -> None:
    problem = CATALOGUE["coupled"]
    assert problem.compile() is problem.compile()


def test_cse_shares_subexpressions_in_the_source() -> None:
    x = sp.Symbol("x")
    k = compile_kernel("f", [sp.sin(x) ** 2, sp.sin(x) ** 3], [("x", [x])])
    assert k.source.count("numpy.sin") == 1
    np.testing.assert_allclose(k(np.array([[0.5]])), [[np.sin(0.5) ** 2, np.sin(0.5) ** 3]])


def test_awkward_symbol_names_get_safe_identifiers() -> None:
    a, b = sp.Symbol("lambda"), sp.Symbol("x[1]")
    k = compile_kernel("f", [a + 2 * b], [("x", [a, b])])
    np.testing.assert_allclose(k(np.array([1.0, 2.0])), [5.0])


def test_sums_and_products_of_thousands_of_terms_compile() -> None:
    # A flat `a + b + ...` of about 3,000 terms was a RecursionError in Python's compiler.
    from scaleinv.numeric.kernels import compile_program

    n = 5000
    x = sp.symbols(f"x0:{n}", real=True)
    exprs = [
        sp.Add(*[(i + 1) * s for i, s in enumerate(x)]),
        sp.Add(*[-s for s in x]) + x[0] * x[1],  # mostly subtracted terms
        sp.Mul(*x),
    ]
    kernel = compile_program("long", ([], exprs), [0, 1, 2], (3,), [("x", x)])
    v = np.random.default_rng(0).uniform(0.5, 1.5, (2, n))
    expected = [(np.arange(1, n + 1) * v).sum(-1), v[:, 0] * v[:, 1] - v.sum(-1), v.prod(-1)]
    np.testing.assert_allclose(kernel(v), np.stack(expected, axis=-1), rtol=1e-12)


def test_functions_of_huge_numbers_are_evaluated_exactly_once() -> None:
    # numpy.sin(10**300) is a TypeError (no Python int beyond int64 in a ufunc); the value is
    # SymPy's, correctly rounded (sin of the float 1e300 would be another number entirely).
    from scaleinv import Problem

    p = Problem.from_strings(["x0"], ["sin(10**300)*x0 + 10**300*x0**2"])
    expected = float(sp.sin(sp.Integer(10) ** 300).evalf(30))
    assert abs(expected - np.sin(1e300)) > 0.1
    got = p.compile().P([[2.0], [-1.0]])[:, 0]
    np.testing.assert_allclose(got, [2 * expected + 4e300, -expected + 1e300], rtol=1e-15)
    x = sp.Symbol("x")
    overflow = compile_kernel("big", [sp.exp(1000) * x, sp.Integer(10) ** 400 * x], [("x", [x])])
    assert overflow([[1.0]]).tolist() == [[np.inf, np.inf]]


def test_long_sums_inside_other_functions_are_balanced_too() -> None:
    # NumPyPrinter prints |.|, atan2, Piecewise and sign itself; the sum inside came out flat
    # (a RecursionError in Python's compiler from about 3,000 terms).
    n = 5000
    x = sp.symbols(f"x0:{n}", real=True)
    total, product = sp.Add(*x), sp.Mul(*x)
    exprs = [
        sp.Abs(total - n),
        sp.atan2(total, x[0]),
        sp.Piecewise((total, x[0] > 0), (-total, True)),
        sp.sign(total - n) * x[1],
        sp.Abs(product),
    ]
    kernel = compile_kernel("nested", exprs, [("x", x)])
    v = np.random.default_rng(4).uniform(0.9, 1.1, (3, n))
    v[1, 0] = -v[1, 0]
    s = v.sum(-1)
    expected = [
        np.abs(s - n),
        np.arctan2(s, v[:, 0]),
        np.where(v[:, 0] > 0, s, -s),
        np.sign(s - n) * v[:, 1],
        np.abs(v.prod(-1)),
    ]
    np.testing.assert_allclose(kernel(v), np.stack(expected, axis=-1), rtol=1e-12)


@pytest.mark.slow
def test_a_4096_point_stencil_derives_compiles_and_steps_like_numpy() -> None:
    # The periodic diffusion step written out per expression: its loss ½|P − y*|² has 4,096 terms (a
    # RecursionError from about 3,000 outputs before). Twin: the same step in NumPy, with J,
    # ∇L and H = JᵀJ + Σ rᵢ ∇²Pᵢ assembled by hand and solved by SciPy.
    import scipy.sparse
    import scipy.sparse.linalg

    from scaleinv import Problem, rules

    n, c = 4096, 0.05
    x = sp.symbols(f"x0:{n}", real=True)
    outputs = [x[i] + (x[(i + 1) % n] - 2 * x[i] + x[i - 1]) / 10 + c * x[i] ** 3 for i in range(n)]
    target = 0.5 * np.sin(2 * np.pi * np.arange(n) / n)
    problem = Problem(x, outputs, target=target.tolist())
    kernels = problem.compile()
    newton = rules.newton(1.0).compile(problem).step
    v = np.random.default_rng(1).uniform(-1, 1, (2, n))

    def roll(a, k):
        return np.roll(a, k, axis=-1)

    p = v + (roll(v, -1) - 2 * v + roll(v, 1)) / 10 + c * v**3
    r = p - target
    np.testing.assert_allclose(kernels.loss(v), 0.5 * (r * r).sum(-1), rtol=1e-12)
    diagonal = 0.8 + 3 * c * v**2  # J = diag(diagonal) + (shift up + shift down)/10
    gradient = diagonal * r + (roll(r, 1) + roll(r, -1)) / 10  # Jᵀ r
    np.testing.assert_allclose(kernels.gradient(v), gradient, rtol=1e-9, atol=1e-12)
    dx, _, status = newton(v, None)
    assert (status == 0).all()
    for sample in range(len(v)):
        jac = scipy.sparse.diags(diagonal[sample]) + scipy.sparse.diags(
            [0.1, 0.1, 0.1, 0.1], [1, -1, n - 1, 1 - n], shape=(n, n)
        )
        hessian = jac.T @ jac + scipy.sparse.diags(6 * c * v[sample] * r[sample])
        want = -scipy.sparse.linalg.spsolve(hessian.tocsc(), gradient[sample])
        np.testing.assert_allclose(dx[sample], want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("flavor", ["jax", "torch"])
def test_the_flavour_printers_balance_long_sums_and_products(flavor) -> None:
    # Printed only (no JAX or PyTorch needed): Python must compile it, and it must add up.
    from scaleinv.numeric.flavors import printer_of

    if flavor == "torch":
        pytest.importorskip("torch")
    n = 5000
    x = sp.symbols(f"x0:{n}", real=True)
    v = np.random.default_rng(3).uniform(0.9, 1.1, n)
    names = {str(s): float(a) for s, a in zip(x, v)}
    printer = printer_of(flavor)
    cases = [
        (sp.Add(*[(i + 1) * s for i, s in enumerate(x)]), (np.arange(1, n + 1) * v).sum()),
        (sp.Add(*[-s for s in x]) + x[0] * x[1], v[0] * v[1] - v.sum()),
        (sp.Mul(*x), v.prod()),
    ]
    for expr, expected in cases:
        code = compile(printer.doprint(expr), "<printed>", "eval")
        assert eval(code, {}, dict(names)) == pytest.approx(expected, rel=1e-12)  # noqa: S307
