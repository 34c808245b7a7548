"""The baselines of ``benchmarks/kernels.py`` are right: hand-written NumPy and lambdify (no cse)
agree with scaleinv's kernels, and the hand-written chain with finite differences."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from catalogue import finite_difference

from scaleinv import Problem
from scaleinv.numeric.kernels import BLOCK

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "kernels.py"


def _load():
    spec = importlib.util.spec_from_file_location("scaleinv_benchmark_kernels", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


bench = _load()
LENGTHS = {1: None, 3: [1.0, 0.5, 2.0], 5: None}


@pytest.fixture(scope="module", params=sorted(LENGTHS))
def chain(request):
    n = request.param
    problem = bench.chain_problem(n, LENGTHS[n])
    hand = bench.ChainNumpy(bench._lengths(n, LENGTHS[n]), bench.chain_target(n, LENGTHS[n]))
    return problem, hand


def _points(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (size, n))


def test_chain_forward_is_the_problem_and_the_target_is_reached(chain) -> None:
    problem, hand = chain
    x = _points(problem.n, 6)
    np.testing.assert_allclose(bench.chain_forward(x, hand.lengths), problem.compile().P(x))
    assert problem.m == 2 * problem.n
    angles = 0.6 * np.sin(np.arange(1, problem.n + 1))  # the target is P(theta*): zero loss
    assert problem.compile().loss(angles) == pytest.approx(0.0, abs=1e-24)


def test_hand_written_chain_matches_finite_differences(chain) -> None:
    problem, hand = chain
    for point in _points(problem.n, 3, seed=1):
        jac = finite_difference(lambda t: bench.chain_forward(t, hand.lengths), point)
        np.testing.assert_allclose(hand.jacobian(point), jac, atol=1e-8)
        grad = hand.jacobian(point).T @ (bench.chain_forward(point, hand.lengths) - hand.target)
        hess = finite_difference(
            lambda t: hand.jacobian(t).T @ (bench.chain_forward(t, hand.lengths) - hand.target),
            point,
        )
        np.testing.assert_allclose(hand.hessian(point), hess, atol=1e-7)
        np.testing.assert_allclose(hand.hessian(point) @ -hand.newton(point), grad, atol=1e-9)


def test_hand_written_chain_matches_scaleinv_kernels(chain) -> None:
    problem, hand = chain
    kernels = problem.compile()
    x = _points(problem.n, 8, seed=2)
    np.testing.assert_allclose(hand.jacobian(x), kernels.jacobian(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hand.hessian(x), kernels.hessian(x), rtol=1e-11, atol=1e-11)
    ours = bench.scaleinv_impl(problem)["newton"](x)
    np.testing.assert_allclose(hand.newton(x), ours, rtol=1e-8, atol=1e-10)


def test_comparison_and_lambdify_baselines_match_scaleinv() -> None:
    problem = bench.comparison_problem()
    ours, hand, theirs = (
        bench.scaleinv_impl(problem),
        bench.comparison_numpy(),
        bench.lambdify_entrywise(problem),
    )
    x = np.random.default_rng(3).uniform(0.5, 2.0, (7, 2))
    for quantity in bench.QUANTITIES:
        np.testing.assert_allclose(hand[quantity](x), ours[quantity](x), rtol=1e-13)
        np.testing.assert_allclose(theirs[quantity](x), ours[quantity](x), rtol=1e-13)
    np.testing.assert_allclose(ours["newton"](x), -x / [1.0, 3.0], rtol=1e-13)  # by hand


def test_kernels_agree_across_block_boundaries() -> None:
    """Batches of more than one block (and leading axes, broadcast params) give per-point values."""
    problem = bench.chain_problem(3)
    hand = bench.ChainNumpy(np.ones(3), bench.chain_target(3))
    x = _points(3, 2 * BLOCK + 5, seed=4)
    # entries near cancellation agree to 1e-12 of the matrix's scale (O(1)), not of themselves
    np.testing.assert_allclose(
        problem.compile().hessian(x), hand.hessian(x), rtol=1e-11, atol=1e-12
    )
    grid = x[: 2 * (BLOCK + 1)].reshape(2, BLOCK + 1, 3)
    np.testing.assert_allclose(problem.compile().jacobian(grid), hand.jacobian(grid), atol=1e-12)
    toy = Problem.from_strings(["a", "b"], ["a", "alpha*b**2"], params={"alpha": 10})
    alpha = np.linspace(1.0, 2.0, BLOCK + 3)
    got = toy.compile().jacobian(np.array([1.0, 3.0]), alpha=alpha)
    assert got.shape == (BLOCK + 3, 2, 2)
    np.testing.assert_array_equal(got[:, 1, 1], 6.0 * alpha)
    np.testing.assert_array_equal(got[:, 0, 0], 1.0)


def test_benchmark_script_checks_and_runs(capsys) -> None:
    args = ["--points", "300", "--repeats", "1", "--links", "2", "--anchors", "symengine"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "chain2" in out and "lambdify/scaleinv" in out
    case = bench.cases(2, anchors=())[1]
    assert bench.check(case) == []
    hessian = case.impls["numpy"]["hessian"]
    case.impls["numpy"]["hessian"] = lambda x: hessian(x) * (1 + 1e-7)  # a wrong baseline
    assert bench.check(case) == [f"{case.name} hessian: numpy differs from scaleinv (1.0e-07)"]
