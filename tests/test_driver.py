"""The driver, and the chapter's results reproduced through the public API."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from catalogue import CATALOGUE

from scaleinv import Problem, Status, load_spec, minimize, rules
from scaleinv.errors import MemoryLimitError, ProblemError
from scaleinv.numeric import runtime
from scaleinv.numeric.compiler import compile_problem
from scaleinv.numeric.rules import make_rule

COMPARISON = CATALOGUE["comparison"]


def test_comparison_newton_follows_its_closed_form() -> None:
    # Newton on L = x0² + x1⁴: Δx0 = −η x0, Δx1 = −η x1/3, so with η = 1/3
    # x_k = (3 (2/3)^k, 3 (8/9)^k).
    t = minimize(COMPARISON, rules.newton(1 / 3), np.array([3.0, 3.0]), 10, record="all")
    k = np.arange(11)
    np.testing.assert_allclose(
        t.x, np.stack([3 * (2 / 3) ** k, 3 * (8 / 9) ** k], axis=-1), rtol=1e-12
    )
    np.testing.assert_allclose(t.loss, t.x[:, 0] ** 2 + t.x[:, 1] ** 4, rtol=1e-12)


def test_comparison_pg_moves_on_a_straight_line_in_y() -> None:
    # PG with Δy = −η y (Newton step of y0² + y1²): y_k = 0.7^k y_0 exactly.
    t = minimize(COMPARISON, rules.pg(0.3), np.array([3.0, 3.0]), steps=10, record="all")
    y0 = np.array([3.0, 9.0])
    np.testing.assert_allclose(t.y, 0.7 ** np.arange(11)[:, None] * y0, rtol=1e-12)
    assert np.all(t.x[:, 1] > 0)  # the x² branch nearest the guess keeps the sign
    # the direction in y never changes: a straight line through the origin
    np.testing.assert_allclose(t.y[:, 1] / t.y[:, 0], 3.0, rtol=1e-12)


def test_comparison_gd_follows_its_recursion() -> None:
    t = minimize(COMPARISON, rules.gd(0.01), np.array([3.0, 3.0]), steps=10, record="all")
    x = np.array([3.0, 3.0])
    for k in range(10):  # ∇L = (2 x0, 4 x1³), written out independently
        x = x - 0.01 * np.array([2 * x[0], 4 * x[1] ** 3])
        np.testing.assert_allclose(t.x[k + 1], x, rtol=1e-12)


def test_the_shipped_comparison_spec_reproduces_the_same_runs() -> None:
    spec = load_spec("reports/comparison.toml")
    finals = {}
    for rule_spec in spec.rules:
        t = minimize(spec.problem, make_rule(rule_spec), np.array(spec.starts), spec.steps)
        finals[rule_spec.name] = t.x[-1, 0]
    np.testing.assert_allclose(finals["newton"], [3 * (2 / 3) ** 10, 3 * (8 / 9) ** 10])
    np.testing.assert_allclose(finals["pg"] ** [1, 2], 0.7**10 * np.array([3.0, 9.0]))


@pytest.mark.parametrize(
    "rule", [rules.newton(0.5), rules.ig(0.5), rules.pg(0.5)], ids=lambda r: r.name
)
def test_scaling_toy_trajectories_are_identical_for_every_alpha(rule) -> None:
    toy = CATALOGUE["scaling_toy"]
    runs = [
        minimize(toy.with_params(alpha=a), rule, np.array([1.0, 1.0]), 8, record="all").x
        for a in (1, 10, 100)
    ]
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-13)
    np.testing.assert_allclose(runs[2], runs[0], rtol=1e-13)


def test_scaling_toy_gd_depends_on_alpha() -> None:
    toy = CATALOGUE["scaling_toy"]
    runs = [
        minimize(toy.with_params(alpha=a), rules.gd(1e-5), [1.0, 1.0], 8, record="all").x
        for a in (1, 10, 100)
    ]
    # x2 shrinks by (1 − 2 η α²) per step: different for every α
    for run, a in zip(runs, (1, 10, 100)):
        np.testing.assert_allclose(run[:, 1], (1 - 2e-5 * a**2) ** np.arange(9), rtol=1e-12)
    assert not np.allclose(runs[0], runs[2])


def test_statuses_converged_diverged_singular_and_no_inverse() -> None:
    t = minimize(COMPARISON, rules.newton(1.0), np.array([[3.0, 3.0]]), steps=60, tol=1e-9)
    assert t.statuses() == [Status.CONVERGED]
    t = minimize(CATALOGUE["scaling_toy"], rules.gd(0.1), [[1.0, 1.0]], 400, record="all")
    assert t.statuses() == [Status.DIVERGED]  # η > 1/α² for α = 10
    assert np.isfinite(t.x).all()
    flat = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0 + x1"])
    t = minimize(flat, rules.newton(1.0), np.array([[1.0, 2.0]]), steps=3)
    assert t.statuses() == [Status.SINGULAR]
    unreachable = Problem.from_strings(["x"], ["x**2"], target=[-1])
    t = minimize(unreachable, rules.pg(1.0), np.array([[2.0]]), steps=3, record="all")
    assert t.statuses() == [Status.NO_INVERSE]
    np.testing.assert_array_equal(t.x[:, 0, 0], 2.0)  # stopped samples keep their point


def test_mixed_batch_keeps_each_sample_status() -> None:
    t = minimize(COMPARISON, rules.gd(0.2), np.array([[0.1, 0.1], [3.0, 3.0]]), steps=50)
    assert t.statuses() == [Status.MAX_STEPS, Status.DIVERGED]


def test_shapes_for_a_large_batch_run_as_arrays() -> None:
    x0 = np.random.default_rng(0).uniform(0.5, 3, size=(1000, 100, 2))
    t = minimize(COMPARISON, rules.pg(0.3), x0, steps=5, record="all")
    assert t.x.shape == (6, 1000, 100, 2) and t.y.shape == (6, 1000, 100, 2)
    assert t.loss.shape == (6, 1000, 100) and t.status.shape == (1000, 100)
    np.testing.assert_allclose(t.y[-1], 0.7**5 * t.y[0], rtol=1e-12)


def test_bfgs_runs_through_scipy_and_records_iterates() -> None:
    problem = CATALOGUE["coupled"]
    x0 = np.array([[0.5, 3.0], [2.5, 0.2]])
    t = minimize(problem, rules.bfgs(), x0, steps=40, record="all")
    assert t.statuses() == [Status.CONVERGED, Status.CONVERGED]
    assert np.all(t.loss[-1] < 1e-12)
    for i in range(2):  # the recorded iterates end where SciPy's own run ends
        ref = scipy.optimize.minimize(
            problem.compile().loss,
            x0[i],
            jac=problem.compile().gradient,
            method="BFGS",
            options={"gtol": 1e-12, "maxiter": 40},
        )
        np.testing.assert_allclose(t.x[-1, i], ref.x, rtol=1e-10)
    assert np.all(np.diff(t.loss, axis=0) <= 1e-15)  # the line search never increases L


@pytest.mark.parametrize(
    ("x0", "steps", "match"),
    [
        ([1.0, 2.0, 3.0], 3, r"shape \(\.\.\., 2\)"),
        ([1.0, 2.0], -1, "non-negative"),
        ([np.nan, 1.0], 3, "non-finite"),
    ],
)
def test_bad_driver_input(x0, steps, match) -> None:
    with pytest.raises(ProblemError, match=match):
        minimize(COMPARISON, rules.gd(), np.array(x0), steps)


_FOLD = Problem.from_strings(["x"], ["x**2"], target=[1])
_CHUNKED_CASES = {  # per case: starts whose statuses differ (running, stopped in several ways)
    "gd: step limit and diverged": (COMPARISON, rules.gd(0.2), [[0.1, 0.1], [3.0, 3.0], [1, 2]]),
    "newton: converged, step limit, singular": (
        COMPARISON,  # Newton on x1**4 shrinks x1 by 2/3 a step; singular where x1 = 0
        rules.newton(1.0),
        [[2.0, 0.5], [1.5, 3.0], [2.0, 0.0], [1.0, 0.3], [40.0, 90.0]],
    ),
    "pg: no inverse for |x| > 1.22 when eta = 3": (_FOLD, rules.pg(3.0), [[0.5], [2.0], [1.0]]),
}


@pytest.mark.parametrize("case", _CHUNKED_CASES)
def test_a_batch_run_in_chunks_gives_each_sample_its_own_run(case, monkeypatch) -> None:
    """The NumPy engine runs per-sample rules one chunk of samples after another: each
    sample's points, losses, statuses and steps taken are those of its run alone."""
    problem, rule, starts = _CHUNKED_CASES[case]
    x0 = np.array(starts * 4, dtype=float).reshape(2, 2 * len(starts), -1)  # batch axes (2, k)
    monkeypatch.setattr(runtime, "CHUNK", 3)  # chunks cut across both batch axes
    batch = minimize(problem, rule, x0, 12, 1e-5, record="every:5", engine="numpy")
    assert len(set(batch.statuses())) >= 2
    for index in np.ndindex(x0.shape[:-1]):
        alone = minimize(problem, rule, x0[index], 12, 1e-5, record="every:5", engine="numpy")
        np.testing.assert_allclose(batch.x[(slice(None), *index)], alone.x, rtol=1e-12)
        np.testing.assert_allclose(batch.y[(slice(None), *index)], alone.y, rtol=1e-12)
        np.testing.assert_allclose(batch.loss[(slice(None), *index)], alone.loss, rtol=1e-12)
        assert batch.status[index] == alone.status and batch.steps_taken[index] == alone.steps_taken


def test_a_run_in_chunks_counts_the_working_memory_of_one_chunk() -> None:
    # 10**6 starts, record="last": 40 MB recorded, 16 MB of starts; a step works on one chunk
    # of runtime.CHUNK samples at a time (some 20 MB), not on all 10**6 at once (1.2 GB)
    from scaleinv.numeric.driver import _working_floats

    x0 = np.random.default_rng(0).uniform(1, 2, (10**6, 2))
    whole = 8 * len(x0) * _working_floats(2, 2)
    assert whole > 10**9
    t = minimize(COMPARISON, rules.gd(0.01), x0, 1, record="last", engine="numpy",
                 max_memory=2 * 10**8)  # fmt: skip
    assert t.x.shape == (1, 10**6, 2)
    with pytest.raises(MemoryLimitError):  # a batch rule works on every sample at once
        minimize(COMPARISON, rules.hig(0.1), x0, 1, record="last", max_memory=2 * 10**8)


def test_tol_is_met_at_a_gradient_norm_equal_to_it_and_missed_just_below() -> None:
    # |dL/dx| <= tol on the boundary itself: the check compares |g|² with a squared limit,
    # which must classify the norm exactly as sqrt(|g|²) <= tol does
    x0 = np.random.default_rng(3).uniform(0.5, 2.0, (50, 2))
    g = compile_problem(COMPARISON).gradient(x0)
    norms = np.sqrt(np.einsum("...i,...i->...", g, g))
    for k in (0, 17, 42):
        at = minimize(COMPARISON, rules.gd(0.01), x0, steps=3, tol=norms[k])
        below = minimize(COMPARISON, rules.gd(0.01), x0, steps=3, tol=np.nextafter(norms[k], 0))
        assert at.status[k] == Status.CONVERGED and at.steps_taken[k] == 0
        assert below.steps_taken[k] > 0
        np.testing.assert_array_equal(at.status[norms <= norms[k]], Status.CONVERGED)
