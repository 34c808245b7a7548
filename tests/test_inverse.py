"""Local inverses: closed-form branches, nearest-branch evaluation, numeric fallback."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scaleinv.errors import NoInverseError, ProblemError
from scaleinv.numeric.status import Status
from scaleinv.symbolic import Problem, budget
from scaleinv.symbolic.inverse import Branch, LocalInverse, local_inverse

floats = functools.partial(st.floats, allow_nan=False, allow_infinity=False)
fast = settings(max_examples=40, deadline=None)


@functools.cache
def inverse(inputs: str, outputs: tuple[str, ...], **params: float) -> LocalInverse:
    return Problem.from_strings(inputs, list(outputs), params=params or None).local_inverse()


def round_trip(li: LocalInverse, x: np.ndarray, y: np.ndarray, tol: float = 1e-8) -> None:
    """``P(x) == y`` within ``tol (1 + |y|)``, evaluated by the problem's own kernel."""
    np.testing.assert_array_less(
        np.abs(li.problem.compile().P(x) - y), tol * (1 + np.abs(y)) + 1e-300
    )


# -- x**2: the root with the sign of the guess --------------------------------------------------
def test_square_picks_the_root_nearest_the_guess() -> None:
    li = inverse("x", ("x**2",))
    assert not li.numeric and len(li.branches) == 2
    np.testing.assert_allclose(li.inv([9.0], [-2.0]), [-3.0])
    np.testing.assert_allclose(li.inv([9.0], [0.1]), [3.0])


@fast
@given(floats(min_value=0, max_value=1e6), floats(min_value=-1e3, max_value=1e3))
def test_square_round_trip(y: float, x0: float) -> None:
    li = inverse("x", ("x**2",))
    x = li.inv([y], [x0])
    round_trip(li, x, np.array([y]))
    assert abs(x[0] - x0) <= abs(-x[0] - x0)  # the other root is not nearer


def test_no_real_solution_raises_or_falls_back() -> None:
    li = inverse("x", ("x**2",))
    with pytest.raises(NoInverseError, match=r"for 1 of 2 samples \(first: y = \(-1\.0,\)\)"):
        li.inv([[4.0], [-1.0]], [[1.0], [1.0]])
    np.testing.assert_allclose(li.inv([[4.0], [-1.0]], [1.0], fallback="keep"), [[2.0], [1.0]])
    x0 = 1.5  # IG step by hand: x0 + (y - x0**2) / (2 x0)
    got = li.inv([[4.0], [-1.0]], [x0], fallback="ig")
    np.testing.assert_allclose(got, [[2.0], [x0 + (-1.0 - x0**2) / (2 * x0)]])
    sol = li.compile().solve([[-1.0], [np.nan]], [x0])
    assert not sol.ok.any() and not sol.numeric and np.all(sol.x == x0)
    assert (sol.status == Status.NO_INVERSE).all() and np.isinf(sol.residual).all()


def test_ig_fallback_without_a_finite_step_raises() -> None:
    li = inverse("x", ("x**2",))  # J(0) = 0: the pseudo-inverse step is 0, so x0 stays
    np.testing.assert_allclose(li.inv([-1.0], [0.0], fallback="ig"), [0.0])
    with pytest.raises(NoInverseError, match="1 of 1 samples"):
        inverse("x", ("sqrt(x)",)).inv([-1.0], [-1.0], fallback="ig")  # P(-1) is not real


def test_bad_arguments_are_named() -> None:
    li = inverse("x", ("x**2",))
    with pytest.raises(ProblemError, match="fallback must be one of"):
        li.inv([1.0], [1.0], fallback="zero")
    with pytest.raises(ProblemError, match=r"y of shape \(\.\.\., 1\)"):
        li.inv([1.0, 2.0], [1.0])


# -- single real branches: x**3 (odd root made real) and exp ---------------------------------
@fast
@given(floats(min_value=-1e6, max_value=1e6), floats(min_value=-10, max_value=10))
def test_cube_has_one_real_branch_for_every_sign(y: float, x0: float) -> None:
    li = inverse("x", ("x**3",))
    assert len(li.branches) == 1 and li.branches[0].condition is sp.true
    x = li.inv([y], [x0])
    np.testing.assert_allclose(x, [np.cbrt(y)], rtol=1e-12, atol=1e-300)


@fast
@given(floats(min_value=1e-300, max_value=1e300), floats(min_value=-10, max_value=10))
def test_exp_inverse_is_log(y: float, x0: float) -> None:
    li = inverse("x", ("exp(x)",))
    np.testing.assert_allclose(li.inv([y], [x0]), [np.log(y)], rtol=1e-12)
    with pytest.raises(NoInverseError, match="no real solution"):
        li.inv([-y], [x0])


# -- periodic families: the nearest period, not the principal value -------------------------
def nearest(candidates: np.ndarray, x0: float) -> float:
    return float(candidates[np.argmin(np.abs(candidates - x0))])


def brute_force(fn: str, y: float, x0: float) -> float:
    k = np.arange(-30, 31)
    if fn == "sin":
        roots = np.concatenate([np.arcsin(y) + 2 * np.pi * k, np.pi - np.arcsin(y) + 2 * np.pi * k])
    elif fn == "cos":
        roots = np.concatenate([np.arccos(y) + 2 * np.pi * k, -np.arccos(y) + 2 * np.pi * k])
    else:
        roots = np.arctan(y) + np.pi * k
    return nearest(roots, x0)


@fast
@given(st.sampled_from(["sin", "cos", "tan"]), floats(-1, 1), floats(-60, 60))
def test_trig_inverse_is_the_nearest_root(fn: str, y: float, x0: float) -> None:
    li = inverse("x", (f"{fn}(x)",))
    x = li.inv([y], [x0])
    round_trip(li, x, np.array([y]))
    assert abs(x[0] - x0) <= abs(brute_force(fn, y, x0) - x0) + 1e-9 * (1 + abs(x0))


def test_sin_near_ten_and_periods() -> None:
    li = inverse("x", ("sin(x)",))
    np.testing.assert_allclose(li.inv([np.sin(10.0)], [10.2]), [10.0])
    np.testing.assert_allclose(li.inv([0.0], [10.0]), [3 * np.pi])
    assert {b.period for b in li.branches} == {(2 * sp.pi,)}
    assert inverse("x", ("tan(x)",)).branches[0].period == (sp.pi,)
    scaled = inverse("x", ("alpha*sin(beta*x)",), alpha=2.0, beta=3.0)
    assert scaled.branches[0].period[0] == 2 * sp.pi / sp.Symbol("beta", positive=True)
    x = scaled.inv([1.0], [7.0])
    round_trip(scaled, x, np.array([1.0]))
    assert abs(x[0] - 7.0) <= np.pi / 3  # solutions are at most 2 pi / 3 apart


def test_period_is_a_period_of_p() -> None:
    rng = np.random.default_rng(0)
    for fn in ["sin(x)", "cos(x)", "tan(x)", "sin(x)**2"]:
        li = inverse("x", (fn,))
        period = float(li.branches[0].period[0])
        x = rng.uniform(-3, 3, size=(50, 1))
        P = li.problem.compile().P
        np.testing.assert_allclose(P(x + 7 * period), P(x), atol=1e-9, rtol=1e-9)


# -- a coupled system: both root pairs ---------------------------------------------------------
@fast
@given(floats(-100, 100), floats(-100, 100), floats(-1, 1), floats(-1, 1))
def test_sum_and_product_give_the_nearest_root_pair(
    a: float, b: float, da: float, db: float
) -> None:
    assume(a * b == 0 or abs(a * b) >= np.finfo(float).tiny)  # a subnormal product lost digits
    li = inverse("a b", ("a + b", "a*b"))
    y = np.array([a + b, a * b])
    x0 = np.array([a + da, b + db])
    x = li.inv(y, x0)
    round_trip(li, x, y, tol=1e-7)
    best = min(np.linalg.norm(x0 - [a, b]), np.linalg.norm(x0 - [b, a]))
    assert np.linalg.norm(x - x0) <= best + 1e-6 * (1 + abs(a) + abs(b))


def test_sum_and_product_condition() -> None:
    li = inverse("a b", ("a + b", "a*b"))
    u, v = li.problem.output_symbols
    assert [b.condition for b in li.branches] == [u**2 - 4 * v >= 0] * 2
    with pytest.raises(NoInverseError, match="no real solution"):
        li.inv([1.0, 1.0], [0.0, 0.0])  # u**2 - 4 v = -3 < 0


# -- branch conditions, checked numerically ----------------------------------------------------
@pytest.mark.parametrize(
    ("inputs", "outputs"),
    [
        ("x", ("x**2",)),
        ("x", ("exp(x)",)),
        ("x", ("sin(x)",)),
        ("x", ("cos(x)",)),
        ("x", ("sqrt(x)",)),
        ("x", ("cosh(x)",)),
        ("x", ("1/x",)),
        ("x", ("sin(x)**2",)),
        ("a b", ("a + b", "a*b")),
        ("a b", ("a", "b**2")),
    ],
)
def test_condition_is_where_the_branch_solves(inputs: str, outputs: tuple[str, ...]) -> None:
    li = inverse(inputs, outputs)
    assert li.branches and not li.numeric
    rng = np.random.default_rng(1)
    ys = li.problem.output_symbols
    P = li.problem.compile().P
    seen = set()
    samples = np.concatenate(
        [np.zeros((1, li.problem.m)), rng.uniform(-3, 3, size=(40, li.problem.m))]
    )
    for y in samples.round(3):
        at = dict(zip(ys, map(sp.Float, y)))
        for branch in li.branches:
            holds = bool(branch.condition.subs(at))
            value = [number(e.subs(at)) for e in branch.solution]
            real = all(abs(v.imag) < 1e-12 and np.isfinite(v.real) for v in value)
            x = np.array([v.real for v in value])
            solves = real and bool(np.all(np.abs(P(x) - y) <= 1e-9 * (1 + np.abs(y))))
            assert holds == solves, (branch, y)
            seen.add(holds)
    assert seen == {True, False}


def number(expr: sp.Expr) -> complex:
    try:
        return complex(expr.evalf())
    except TypeError:  # zoo, nan
        return complex(np.nan)


# -- linear maps ---------------------------------------------------------------------------------
def test_linear_map_matches_numpy_solve() -> None:
    rng = np.random.default_rng(2)
    A = rng.integers(-5, 6, size=(3, 3))
    while round(np.linalg.det(A)) == 0:
        A = rng.integers(-5, 6, size=(3, 3))
    c = rng.integers(-3, 4, size=3)
    xs = sp.symbols("x0:3", real=True)
    outputs = [sum(int(A[i, j]) * xs[j] for j in range(3)) + int(c[i]) for i in range(3)]
    li = local_inverse(Problem(xs, outputs))
    assert len(li.branches) == 1 and li.branches[0].condition is sp.true
    assert "linear" in li.reason
    y = rng.normal(size=(4, 5, 3))
    x = li.inv(y, np.zeros(3))
    assert x.shape == (4, 5, 3)
    np.testing.assert_allclose(x, np.linalg.solve(A, (y - c)[..., None])[..., 0], atol=1e-12)


def test_linear_with_a_param_and_singular_or_wide_maps() -> None:
    li = inverse("a b", ("a + alpha*b", "a - b"), alpha=2.0)
    assert li.branches[0].condition is sp.true  # det = -(1 + alpha) != 0 as alpha > 0
    round_trip(li, li.inv([3.0, 0.0], [0.0, 0.0]), np.array([3.0, 0.0]))
    singular = inverse("a b", ("a + b", "2*a + 2*b"))
    assert singular.numeric and "singular" in singular.reason
    wide = inverse("a b", ("a + b",))
    assert wide.numeric and "1x2" in wide.reason
    x = wide.inv([[3.0], [-1.0]], [1.0, 1.0])
    round_trip(wide, x, np.array([[3.0], [-1.0]]))


# -- no closed form: a numeric inverse, flagged ----------------------------------------------
@pytest.mark.parametrize("outputs", [("x + sin(x)",), ("x*exp(x) + x",), ("x**3 - 3*x",)])
def test_numeric_inverse_round_trips(outputs: tuple[str, ...]) -> None:
    li = inverse("x", outputs)
    assert li.numeric and li.branches == () and "numerically" in li.reason
    rng = np.random.default_rng(3)
    y = rng.uniform(-5, 5, size=(4, 5, 1))
    x, status, residual, numeric = li.compile().solve(y, rng.uniform(-3, 3, size=(5, 1)))
    assert x.shape == (4, 5, 1) and (status == Status.RUNNING).all() and numeric
    assert residual.shape == (4, 5) and (residual <= 1e-8 * (1 + np.abs(y[..., 0]))).all()
    round_trip(li, x, y)


def test_numeric_inverse_in_two_dimensions_and_without_solution() -> None:
    li = inverse("a b", ("sin(a)", "cos(b) + a"))
    assert li.numeric and "infinitely many solution families" in li.reason
    x_true = np.array([[-1.9, -0.4], [0.3, 2.0], [4.0, 1.0]])
    y = li.problem.compile().P(x_true)
    x = li.inv(y, x_true + 0.05)
    np.testing.assert_allclose(x, x_true, atol=1e-8)
    # SymPy's branches alone (a = asin(y0) or -pi - asin(y0)) have no real b for y = (0, -10);
    # the real solutions are a = 2 pi k, b = ±sqrt(-10 - 2 pi k) for k <= -2
    far = inverse("a b", ("sin(a)", "b**2 + a"))
    assert far.numeric and "not periodic in a" in far.reason
    x = far.inv([0.0, -10.0], [-12.0, 1.0])
    round_trip(far, x, np.array([0.0, -10.0]))
    assert np.sin(x[0]) == pytest.approx(0.0, abs=1e-8) and x[0] < -2 * np.pi
    lambert = inverse("x", ("x*exp(x)",))  # LambertW has no kernel; no solution below -1/e
    assert lambert.numeric and "LambertW" in lambert.reason
    sol = lambert.compile().solve([[-1.0], [2.0]], [0.5])
    assert sol.ok.tolist() == [False, True] and sol.x[0, 0] == 0.5
    assert sol.status[0] == Status.NOT_FOUND  # no range certificate for x exp(x) >= -1/e
    match = r"1 of 2 samples, 1 of them not found by the numeric solver \(first: y = \(-1\.0,\)\)"
    with pytest.raises(NoInverseError, match=match):
        lambert.inv([[-1.0], [2.0]], [0.5])


# -- batching and the budget ----------------------------------------------------------------------
def test_batched_shapes_broadcast() -> None:
    li = inverse("a b", ("a", "b**2"))
    rng = np.random.default_rng(4)
    y = np.abs(rng.normal(size=(4, 5, 2)))
    x0 = rng.normal(size=(5, 2))
    x = li.inv(y, x0)
    assert x.shape == (4, 5, 2)
    np.testing.assert_allclose(x[..., 0], y[..., 0])
    np.testing.assert_allclose(x[..., 1], np.sign(x0[..., 1]) * np.sqrt(y[..., 1]))
    assert li.compile() is li.compile()


def test_budget_exceeded_gives_a_numeric_inverse() -> None:
    tiny = local_inverse(Problem.from_strings("x", "x**3"), budget=1)
    assert tiny.numeric and tiny.branches == ()
    assert "the local inverse exceeded its work limit of 1 steps" in tiny.reason
    np.testing.assert_allclose(tiny.inv([[8.0], [-27.0]], [[1.0], [-1.0]]), [[2.0], [-3.0]])


class _Stuck(Problem):
    """A problem whose derivation sleeps in the budget's worker (a worker process does not see
    patches of this one's modules; the problem itself is sent to it)."""

    @property
    def output_symbols(self) -> tuple[sp.Symbol, ...]:
        if budget._IN_WORKER:
            time.sleep(30)  # makes no calls: only the wall-clock safety net stops it
        return super().output_symbols


def test_a_solve_stuck_outside_python_is_cut_off_by_the_wall_net(monkeypatch) -> None:
    monkeypatch.setattr(budget, "WALL_GRACE", 1.0)
    x = sp.Symbol("x", real=True)
    start = time.monotonic()
    li = local_inverse(_Stuck((x,), (x**2,)), budget=10_000)
    assert time.monotonic() - start < 10_000 / budget.WALL_STEPS_PER_SECOND + 1.0 + 2
    assert li.numeric and "wall-clock safety net" in li.reason
    round_trip(li, li.inv([4.0], [1.0]), np.array([4.0]))


def test_branch_is_frozen() -> None:
    branch = inverse("x", ("x**2",)).branches[0]
    assert isinstance(branch, Branch)
    with pytest.raises(AttributeError):
        branch.condition = sp.true  # type: ignore[misc]


# -- params and the standalone source (what export writes) ------------------------------------
def test_params_override_the_defaults_in_closed_form_and_numeric_inverses() -> None:
    li = inverse("x", ("alpha*sin(beta*x)",), alpha=2.0, beta=3.0)
    P = li.problem.compile().P
    alpha = np.array([3.0, 1.0])
    x, status, _, _ = li.compile().solve([[2.5], [0.5]], [1.0], alpha=alpha, beta=0.5)
    assert (status == Status.RUNNING).all()
    np.testing.assert_allclose(P(x, alpha=np.array([3.0, 1.0]), beta=0.5), [[2.5], [0.5]])
    assert not li.compile().solve([2.5], [1.0]).ok  # |y| > alpha = 2 with the defaults
    numeric = inverse("x", ("x + alpha*sin(x)",), alpha=0.5)
    assert numeric.numeric
    alpha = np.array([[0.2], [0.9]])  # broadcasts against a (2, 3) batch
    y = np.linspace(-4, 4, 6).reshape(2, 3, 1)
    sol = numeric.compile().solve(y, np.zeros(1), alpha=alpha)
    x = sol.x
    assert sol.ok.all() and sol.numeric
    np.testing.assert_allclose(numeric.problem.compile().P(x, alpha=alpha), y, atol=1e-7)


def test_source_runs_standalone_and_matches_the_evaluator() -> None:
    li = inverse("a b", ("sin(a)", "b**2 + cos(a)"))
    assert [b.period for b in li.branches] == [(2 * sp.pi, None)] * len(li.branches)
    evaluator = li.compile()
    kernels = li.problem.compile()
    namespace: dict = {"numpy": np}
    runtime = "from scaleinv.numeric.runtime import *\nfrom scaleinv.numeric.pathsolve import *\n"
    exec(runtime + kernels.P.source + kernels.jacobian.source + evaluator.source, namespace)
    rng = np.random.default_rng(5)
    y = np.stack([rng.uniform(-1, 1, 20), rng.uniform(-2, 9, 20)], axis=-1)
    x0 = rng.uniform(-9, 9, size=(20, 2))
    x, status, _ = namespace["local_inverse"](y, x0)
    ok = status == Status.RUNNING
    want = evaluator.solve(y, x0)
    np.testing.assert_array_equal(x, want.x)
    np.testing.assert_array_equal(ok, want.ok)
    round_trip(li, x[ok], y[ok])
    assert li.numeric is False and evaluator.source.count("def inverse_branch") == len(li.branches)


def test_compiled_evaluators_are_cached_without_keeping_the_inverse_alive() -> None:
    import gc
    import weakref

    li = local_inverse(Problem.from_strings("x", "x**2"))
    assert li.compile() is li.compile()
    ref = weakref.ref(li)
    del li
    gc.collect()
    assert ref() is None  # the cached evaluator (a weak-key entry) holds no reference to it


# -- the closed-form evaluator's two passes ----------------------------------------------------
def _passes(li: LocalInverse) -> dict:
    """The compiled closed-form source's namespace: local_inverse, nearest_branch, polish."""
    return li.compile().local_inverse.__globals__


def test_nearest_first_equals_the_full_pass_on_every_kind_of_row() -> None:
    # the fast pass (nearest finite candidate, one P) against nearest_branch on every row:
    # exact rows, rough rows (polished), no real solution, ties at x1 = 0, x0 not finite
    for li, y, x0 in [
        (
            inverse("a b", ("a", "b**2")),
            [[1.0, 4.0], [2.0, 0.0], [2.0, 0.0], [0.0, 1e-300], [3.0, -1.0], [1.0, 4.0]],
            [[0.0, -1e-9], [0.0, 0.0], [0.0, -0.0], [0.0, -1e-300], [1.0, 1.0], [np.nan, 1.0]],
        ),
        (
            inverse("x", ("x**2 + 100000000*x",)),
            [[1.0], [3.0], [-1e16], [1e10], [5.0]],
            [[0.0], [-2e8], [1.0], [-1e8], [np.inf]],
        ),
        (inverse("x", ("sin(x)",)), [[0.5], [1.0], [0.0], [2.0]], [[10.0], [-7.0], [3.1], [0.0]]),
    ]:
        y, x0 = np.array(y), np.array(x0)
        x, status, residual = li.compile().local_inverse(y, x0)
        want = _passes(li)["nearest_branch"](y, x0, {})
        np.testing.assert_array_equal(x, want[0])
        np.testing.assert_array_equal(status, want[1])
        np.testing.assert_array_equal(residual, want[2])
        ok = status == Status.RUNNING
        round_trip(li, x[ok], y[ok])


def test_branch_selection_near_zero_takes_the_sign_of_the_guess_and_the_first_on_ties() -> None:
    li = inverse("a b", ("a", "b**2"))
    y = np.array([[0.0, 1e-12], [0.0, 1e-12], [0.0, 0.0], [0.0, 0.0]])
    x0 = np.array([[0.0, 1e-9], [0.0, -1e-9], [0.0, 1e-300], [0.0, -1e-300]])
    x = li.inv(y, x0)
    np.testing.assert_array_equal(x[:, 1], [1e-6, -1e-6, 0.0, 0.0])
    # y1 = 0: both roots are 0; the tie goes to branch 0 (-sqrt), whose zero is negative (so
    # do distances equal in floating point: 1e-300 is lost next to 1e-6)
    np.testing.assert_array_equal(li.inv([0.0, 1e-12], [0.0, 1e-300]), [0.0, -1e-6])
    assert str(li.branches[0].solution[1]).startswith("-")
    assert np.signbit(x[2:, 1]).all()


def test_polish_runs_only_where_the_closed_form_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    li = inverse("x", ("x**2 + 100000000*x",))  # (sqrt(y + b²/4) - b/2) cancels near y = 0
    namespace = _passes(li)
    polished: list[int] = []

    def counting(c, r, y, params):
        polished.append(len(c))
        return polish(c, r, y, params)

    polish = namespace["polish"]
    monkeypatch.setitem(namespace, "polish", counting)
    raw = namespace["inverse_branch1"](np.array([[1.0]]))
    assert abs(li.problem.compile().P(raw)[0, 0] - 1.0) > 0.1  # the closed form is off
    y = np.array([[1.0], [1e12], [2e12]])
    x = li.inv(y, np.zeros((3, 1)))
    round_trip(li, x, y)  # polished to the tolerance
    np.testing.assert_allclose(x[0], 1e-8, rtol=1e-12)
    assert polished == [1, 1]  # one rough row, for each of its two branches; exact rows never
    polished.clear()
    square = inverse("a b", ("a", "b**2"))
    monkeypatch.setitem(_passes(square), "polish", counting)
    square.inv(np.full((1000, 2), 2.0), np.ones((1000, 2)))
    assert polished == []


def test_chunks_of_a_large_batch_agree_with_one_pass() -> None:
    from scaleinv.numeric.runtime import CHUNK

    li = inverse("a b", ("a", "b**2"))
    rng = np.random.default_rng(3)
    y = rng.uniform(-1, 9, (CHUNK + 77, 2))  # y1 < 0: no real solution
    x0 = rng.uniform(-3, 3, (CHUNK + 77, 2))
    x, status, residual = li.compile().local_inverse(y, x0)
    want = _passes(li)["nearest_branch"](y, x0, {})
    for got, expected in zip((x, status, residual), want):
        np.testing.assert_array_equal(got, expected)
    assert 0 < (status == Status.NO_INVERSE).sum() < len(y)
    ok = status == Status.RUNNING
    np.testing.assert_array_equal(np.sign(x[ok, 1]), np.sign(x0[ok, 1]))
    np.testing.assert_allclose(x[ok, 1] ** 2, y[ok, 1], rtol=1e-14)


# -- excluded boundaries: x1 = y0/y1 is valid for y1 ≠ 0, yet x0 = 0 solves y = (0, 0) ---------
def test_a_solution_on_a_branchs_excluded_boundary_is_found() -> None:
    """Issue 17: PG said no_inverse at y = (0, 0) (η = 1 from x = (1, 2)) though x = (0, 2)
    solves it: the limit of the branch along the path from P(x0), checked by P's kernel."""
    li = inverse("x0 x1", ("x0*x1", "x0"))
    assert [str(c) for b in li.branches for c in [b.condition]] == ["Ne(y1, 0)"]
    y = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 1.0]])
    x0 = np.array([[1.0, 2.0], [0.0, 5.0], [1.0, 2.0], [1.0, 2.0]])
    sol = li.compile().solve(y, x0)
    assert [Status(s).label for s in sol.status] == ["running", "running", "no_inverse", "running"]
    np.testing.assert_allclose(sol.x[[0, 1, 3]], [[0.0, 2.0], [0.0, 5.0], [1.0, 2.0]], atol=1e-12)
    round_trip(li, sol.x[[0, 1, 3]], y[[0, 1, 3]])
    # the limit is the one the path reaches: x(t) = (1 − t, 2) along y(t) = (1 − t) (2, 1)
    t = 1 - 1e-9
    np.testing.assert_allclose(li.inv([[2 * (1 - t), 1 - t]], [[1.0, 2.0]]), [[1 - t, 2.0]])


def test_pg_steps_onto_a_branchs_excluded_boundary() -> None:
    from scaleinv.numeric import minimize, rules

    p = Problem.from_strings(["x0", "x1"], ["x0*x1", "x0"])
    traj = minimize(p, rules.pg(1.0), np.array([[1.0, 2.0]]), 3)
    assert Status(int(traj.status[0])).label != "no_inverse"
    np.testing.assert_allclose(traj.x[1, 0], [0.0, 2.0], atol=1e-12)
    assert traj.loss[-1, 0] == 0.0


def test_no_boundary_no_extra_work_and_no_false_solution() -> None:
    """exp has no excluded boundary: exp(x) = −1e−300 stays without a solution, although
    x → −∞ comes within the tolerance of it."""
    from scaleinv.numeric.inverse_source import closed_form_source

    li = inverse("x", ("exp(x)",))
    assert "beyond_branches" not in closed_form_source(li)
    assert Status(int(li.compile().solve([[-1e-300]], [[0.0]]).status[0])).label == "no_inverse"
