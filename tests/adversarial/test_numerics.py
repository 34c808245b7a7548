"""Hostile numbers: NaN, inf, complex, text, integer dtypes and odd shapes in kernels and
``minimize`` give a typed error or the right status; verdicts do not depend on the time."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from scaleinv import Problem, minimize, rules
from scaleinv.analysis.verdict import Verdict, decide_equal
from scaleinv.errors import ProblemError
from scaleinv.numeric import Status
from scaleinv.symbolic.spec import MAX_STEPS

PROBLEM = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1**2"], params={"alpha": 2})
RULES = {"gd": rules.gd(0.1), "newton": rules.newton(0.5), "pg": rules.pg(0.5)}

#: (id, x, the exact error)
BAD_POINTS = [
    ("nan", [[np.nan, 1.0]], "x0 contains non-finite values"),
    ("inf", [[np.inf, 1.0]], "x0 contains non-finite values"),
    ("-inf", [[1.0, -np.inf]], "x0 contains non-finite values"),
    ("complex", np.array([[1 + 1j, 1.0]]), "x0 must be real numbers, got complex128"),
    ("complex-zero-imag", np.array([[1 + 0j, 1.0]]), "x0 must be real numbers, got complex128"),
    ("text", np.array([["1", "2"]]), "x0 must be real numbers, got <U1"),
    ("objects", np.array([["a", 1]], dtype=object), "x0 must be real numbers, got objects"),
    ("none", [[None, 1.0]], "x0 contains non-finite values"),
    ("too-long", [[1.0, 2.0, 3.0]], r"x0 must have shape \(\.\.\., 2\), got \(1, 3\)"),
    ("too-short", [[1.0]], r"x0 must have shape \(\.\.\., 2\), got \(1, 1\)"),
    ("scalar", 1.0, r"x0 must have shape \(\.\.\., 2\), got \(\)"),
    ("ragged", np.array([[1.0, 2.0], [3.0]], dtype=object), "x0 must be real numbers, got objects"),
]


@pytest.mark.parametrize(("name", "x", "error"), BAD_POINTS, ids=[c[0] for c in BAD_POINTS])
@pytest.mark.parametrize("rule", sorted(RULES))
def test_minimize_refuses_bad_starts(name, x, error, rule) -> None:
    with pytest.raises(ProblemError, match=error):
        minimize(PROBLEM, RULES[rule], x, 3)


KERNEL_ERRORS = [c for c in BAD_POINTS if c[0] not in ("nan", "inf", "-inf", "none")]


@pytest.mark.parametrize(("name", "x", "error"), KERNEL_ERRORS, ids=[c[0] for c in KERNEL_ERRORS])
@pytest.mark.parametrize("kernel", ["P", "jacobian", "gradient", "hessian", "loss"])
def test_kernels_refuse_what_is_not_a_real_array(name, x, error, kernel) -> None:
    with pytest.raises(ProblemError, match=error.replace("x0", f"{kernel} argument")):
        getattr(PROBLEM.compile(), kernel)(x)


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint16, np.float16, np.float32, bool])
def test_integer_and_narrow_dtypes_compute_in_float64(dtype) -> None:
    x = np.array([[1, 1], [0, 1]], dtype=dtype)
    k = PROBLEM.compile()
    exact = np.array([[1.0, 2.0], [0.0, 2.0]])
    assert k.P(x).dtype == np.float64 and np.array_equal(k.P(x), exact)
    t = minimize(PROBLEM, rules.gd(0.1), x, 2)
    assert t.x.dtype == np.float64
    np.testing.assert_allclose(t.x, minimize(PROBLEM, rules.gd(0.1), x.astype(float), 2).x)


def test_nan_inside_a_kernel_batch_stays_in_its_sample() -> None:
    x = np.array([[np.nan, 1.0], [2.0, 1.0], [np.inf, 0.0]])
    out = PROBLEM.compile().P(x)
    assert np.isnan(out[0, 0]) and np.array_equal(out[1], [2.0, 2.0]) and np.isinf(out[2, 0])


def test_overflowing_starts_end_as_statuses_not_errors() -> None:
    x = np.array([[1e300, 1e300], [1.0, 1.0]])
    with np.errstate(all="ignore"):
        t = minimize(PROBLEM, rules.gd(0.1), x, 3)
        n = minimize(PROBLEM, rules.newton(0.5), x, 3)
    assert t.statuses() == [Status.DIVERGED, Status.MAX_STEPS]
    assert n.statuses()[1] == Status.MAX_STEPS and n.statuses()[0] != Status.MAX_STEPS


def test_empty_and_deep_batches() -> None:
    assert minimize(PROBLEM, rules.gd(0.1), np.zeros((0, 2)), 3, record="all").x.shape == (4, 0, 2)
    deep = np.ones((2, 3, 1, 2))
    assert PROBLEM.compile().hessian(deep).shape == (2, 3, 1, 2, 2)
    assert minimize(PROBLEM, rules.newton(0.5), deep, 2).status.shape == (2, 3, 1)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-2.0, "param alpha is declared positive"),
        (0.0, "param alpha is declared positive"),
        ([1.0, -1.0], "param alpha is declared positive"),
        (1 + 2j, "param alpha must be real numbers, got complex128"),
        ("3", "param alpha must be real numbers, got <U1"),
    ],
)
def test_kernel_params_are_checked_like_with_params(value, error) -> None:
    with pytest.raises(ProblemError, match=error):
        PROBLEM.compile().P([[1.0, 1.0]], alpha=value)


@pytest.mark.parametrize("kernel", ["P", "jacobian", "hessian_values", "loss"])
def test_a_param_that_does_not_fit_the_batch_names_the_shape_it_needs(kernel) -> None:
    x = np.ones((5, 2))
    error = r"kernel \w+: param alpha of shape \(3,\) does not broadcast .* expected \(5,\)"
    with pytest.raises(ProblemError, match=error):
        getattr(PROBLEM.compile(), kernel)(x, alpha=np.ones(3))
    per_sample = getattr(PROBLEM.compile(), kernel)(x, alpha=np.arange(1.0, 6.0))
    one = [getattr(PROBLEM.compile(), kernel)(x[:1], alpha=a)[0] for a in range(1, 6)]
    np.testing.assert_array_equal(per_sample, one)


def test_the_inverse_names_the_shapes_that_do_not_fit() -> None:
    evaluator = PROBLEM.local_inverse().compile()
    with pytest.raises(ProblemError, match=r"inverse: x0 of batch shape \(4,\) .* expected \(5,\)"):
        evaluator.solve(np.ones((5, 2)), np.ones((4, 2)))
    with pytest.raises(ProblemError, match=r"inverse: param alpha of shape \(3,\)"):
        evaluator.inv(np.ones((5, 2)), np.ones((5, 2)), alpha=np.ones(3))
    x = evaluator.inv([[1.0, 8.0]], [[0.5, 0.5]], alpha=np.array([2.0]))  # fits: (1,)
    np.testing.assert_allclose(PROBLEM.compile().P(x, alpha=2.0), [[1.0, 8.0]])


def test_a_positive_param_keeps_kernels_right() -> None:
    p = Problem.from_strings(["x0"], ["sqrt(alpha**2)*x0"], params={"alpha": 2})
    assert p.compile().P([[1.0]], alpha=3.0)[0, 0] == 3.0
    with pytest.raises(ProblemError, match="declared positive"):
        p.compile().P([[1.0]], alpha=-2.0)  # would print -2 with the formula alpha*x0


@pytest.mark.parametrize("steps", [-1, 2.5, "3", None])
def test_bad_step_counts(steps) -> None:
    with pytest.raises(ProblemError, match="steps must be a non-negative integer"):
        minimize(PROBLEM, rules.gd(0.1), [1.0, 1.0], steps)


#: Overdetermined (J is 3x2: IG and PG's fallback take the pseudo-inverse, HIG the SVD), with a
#: start where J is NaN (sqrt of a negative number) or infinite (exp overflows).
WIDE = {
    "nan": (["sqrt(x0)", "x1", "x0*x1"], [-1.0, 1.0]),
    "inf": (["exp(x0**2)/3", "x1", "x0*x1"], [30.0, 1.0]),
}


@pytest.mark.filterwarnings("ignore::scaleinv.errors.NumericInverseWarning")
@pytest.mark.parametrize("case", sorted(WIDE))
@pytest.mark.parametrize(
    "rule", [rules.gd(0.1), rules.ig(0.5), rules.pg(0.5, fallback="ig"), rules.hig(0.5)]
)
def test_a_non_finite_jacobian_stops_only_its_own_sample(case, rule) -> None:
    # LAPACK's SVD fails for the whole batch on one NaN ("SVD did not converge").
    outputs, bad = WIDE[case]
    p = Problem.from_strings(["x0", "x1"], outputs, target=[1, 1, 1])
    alone = minimize(p, rule, [[1.5, 1.2]], 10)
    together = minimize(p, rule, [bad, [1.5, 1.2]], 10)
    assert together.statuses()[0] == Status.DIVERGED
    assert together.statuses()[1] == alone.statuses()[0]
    np.testing.assert_array_equal(together.x[-1, 1], alone.x[-1, 0])


@pytest.mark.parametrize("rule", ["gd", "pg"])
def test_minimize_refuses_more_steps_than_the_limit(rule) -> None:
    # One more than the limit: before the limit, this ran for a while instead of hanging.
    with pytest.raises(ProblemError, match="steps: 1000001 is more than the limit of 1000000"):
        minimize(PROBLEM, RULES[rule], [1.0, 1.0], MAX_STEPS + 1)
    assert minimize(PROBLEM, RULES[rule], [1.0, 1.0], 3).steps == 3


def test_a_refutation_does_not_depend_on_the_budget() -> None:
    # The updates differ only where x > 1.7: 1 of the first 10 seeded points. A time-limited
    # search used to evaluate fewer points under a small budget and answer "undecided".
    x = sp.Symbol("x", real=True)
    lhs, rhs = sp.Matrix([x]), sp.Matrix([x + sp.Max(0, x - sp.Rational(17, 10))])
    tight = decide_equal(lhs, rhs, [x], budget=1e-3)
    roomy = decide_equal(lhs, rhs, [x], budget=10.0)
    assert tight.verdict == roomy.verdict == Verdict.REFUTED
    assert tight.counterexample == roomy.counterexample
    assert roomy.counterexample.point["x"] > 1.7


def test_a_small_budget_only_makes_a_proof_undecided() -> None:
    x, s = sp.Symbol("x", real=True), sp.Symbol("s", positive=True)
    lhs = sp.Matrix([sp.sin(s * x) ** 2 + sp.cos(s * x) ** 2 + x])
    rhs = sp.Matrix([1 + x])
    assert decide_equal(lhs, rhs, [x], budget=10.0).verdict == Verdict.PROVED
    assert decide_equal(lhs, rhs, [x], budget=1e-4).verdict in (Verdict.PROVED, Verdict.UNDECIDED)
