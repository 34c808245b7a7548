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
