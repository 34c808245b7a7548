"""The NumPy engine's fused steps on coordinate columns (numeric/fused_step.py, column_loop.py)
against the kernel-by-kernel loop they replace (runtime.iterate): the same points, losses and
statuses, including singular samples, divergence, tol and every record mode."""

import numpy as np
import pytest

import scaleinv.numeric.driver as driver
from scaleinv import Problem, minimize, rules
from scaleinv.numeric import runtime
from scaleinv.numeric.compiler import compile_problem
from scaleinv.numeric.fused_step import fused_step

PROBLEMS = {
    "separable": (["x0", "x1"], ["x0", "x1**2"], {}, [2.0, 3.0]),
    "polar": (["a", "t"], ["a*sin(t) + c", "a*cos(t)"], {"c": 1.5}, [2.0, 3.0]),
    "cubic": (["x"], ["x**3 - x"], {}, [0.5]),
    "coupled": (["u", "v"], ["u*v", "u + v**2"], {}, [1.0, 2.0]),
    "constant row": (["u", "v"], ["2", "u + v**2"], {}, [1.0, 2.0]),
    "excluded boundary": (["u", "v"], ["u*v", "u"], {}, [1.0, 0.5]),
    "sum and product": (["u", "v"], ["u*v", "u + v"], {}, [1.0, 3.0]),
    # four branches (no coordinate shared by all), and a loss whose Newton step in y is no
    # plain multiple of y* - y
    "two roots": (["a", "b"], ["a**2", "b**2 + a"], {}, "(y0 - 2)**4 + (y1 - 3)**2"),
}
RULES = [rules.gd(0.05), rules.gd(5.0), rules.newton(0.7), rules.ig(0.5)]
#: PG's cases: problems with a closed-form local inverse (not periodic)
PG_PROBLEMS = ["separable", "excluded boundary", "sum and product", "two roots"]
CASES = [(name, rule) for name in sorted(PROBLEMS) if name != "two roots" for rule in RULES]
CASES += [(name, rules.pg(0.5)) for name in PG_PROBLEMS]
CASES += [("two roots", rules.ig(0.5))]  # a Newton step in y that is not -1 times a formula


def _problem(name: str) -> Problem:
    inputs, outputs, params, target = PROBLEMS[name]
    if isinstance(target, str):  # a loss
        return Problem.from_strings(inputs, outputs, params=params, loss=target)
    return Problem.from_strings(inputs, outputs, params=params, target=target)


def _kernel_by_kernel(monkeypatch: pytest.MonkeyPatch, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(driver, "fused_step", lambda *a, **k: None)
        return minimize(*args, **kwargs)


@pytest.mark.parametrize(("name", "rule"), CASES, ids=str)
def test_fused_step_equals_the_rules_own_step(name, rule):
    problem = _problem(name)
    fused = fused_step(problem, rule, with_norm=True)
    assert fused is not None
    x = np.random.default_rng(1).uniform(-2, 2, (5000, problem.n))  # two blocks
    dx, trusted, norm = np.empty((problem.n, 5000)), np.ones(5000, bool), np.empty(5000)
    fused.func(np.array(x.T), dx, trusted, norm)
    dx = dx.T
    expected, _, status = driver.compiled_rule(problem, rule).step(x, None)
    kernels = compile_problem(problem, backend="numpy")
    g = kernels.gradient(x)
    np.testing.assert_allclose(norm, (g * g).sum(-1), rtol=1e-15)
    assert fused.has_trust == (rule.name != "gd")
    ok = trusted & np.isfinite(dx).all(-1)
    if name == "constant row" and rule.name == "ig":  # J singular everywhere: all fall back
        assert not ok.any()
    elif rule.name == "pg" and name == "sum and product":  # no real solution at 1/3 of them
        assert ok.mean() > 0.6
        assert (status[~ok] == runtime.NO_INVERSE).mean() > 0.9
    else:  # the fused step decides almost every sample itself
        assert ok.mean() > 0.9
    np.testing.assert_allclose(dx[ok], expected[ok], rtol=1e-13, atol=1e-300)
    assert (status[ok] == runtime.RUNNING).all()


@pytest.mark.parametrize(("name", "rule"), CASES, ids=str)
@pytest.mark.parametrize(("tol", "record"), [(None, "ends"), (1e-6, "all"), (1e-6, "every:3")])
def test_fused_loop_equals_the_kernel_by_kernel_loop(monkeypatch, name, rule, tol, record):
    problem = _problem(name)
    x = np.random.default_rng(2).uniform(-2, 2, (3000, problem.n))
    x[:3] = 0.0  # singular Hessians and Jacobians of several problems
    ours = minimize(problem, rule, x, 12, tol, record=record, engine="numpy")
    theirs = _kernel_by_kernel(monkeypatch, problem, rule, x, 12, tol, record=record,
                               engine="numpy")  # fmt: skip
    np.testing.assert_array_equal(ours.status, theirs.status)
    np.testing.assert_array_equal(ours.steps_taken, theirs.steps_taken)
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.loss, theirs.loss, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("rule", "x1"), [(rules.newton(1.0), 1.0), (rules.ig(1.0), 0.0)], ids=str)
def test_singular_samples_take_the_rules_own_solve(monkeypatch, rule, x1):
    # (x0, x1**2): Newton's Hessian 6 x1² - 6 is singular at x1 = ±1, the Jacobian at x1 = 0;
    # such samples are not trusted by Cramer's rule and must end as the kernel-by-kernel
    # loop ends them (singular), next to samples that converge
    problem = _problem("separable")
    x = np.random.default_rng(3).uniform(1.2, 2, (64, 2))
    x[:5, 1] = x1
    ours = minimize(problem, rule, x, 5, record="all", engine="numpy")
    theirs = _kernel_by_kernel(monkeypatch, problem, rule, x, 5, record="all", engine="numpy")
    assert {s.name for s in ours.statuses()[:5]} == {"SINGULAR"}
    assert {s.name for s in ours.statuses()[5:]} == {"MAX_STEPS"}
    np.testing.assert_array_equal(ours.status, theirs.status)
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-12, atol=1e-12)


def test_large_run_in_chunks_with_the_loss_certificate(monkeypatch):
    # more samples than a chunk and more sample-steps than CERTIFY_WORK: the box certificate
    # replaces the loss, divergent samples (GD with a large eta) leave it
    problem = _problem("separable")
    size = runtime.CHUNK + 5000
    x = np.random.default_rng(4).uniform(-3, 3, (size, 2))
    steps = driver.CERTIFY_WORK // size + 1
    for rule in (rules.gd(0.6), rules.newton(1 / 3), rules.pg(0.3)):
        ours = minimize(problem, rule, x, steps, 1e-9, engine="numpy")
        theirs = _kernel_by_kernel(monkeypatch, problem, rule, x, steps, 1e-9, engine="numpy")
        np.testing.assert_array_equal(ours.status, theirs.status)
        np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-12, atol=1e-12)


def test_no_fused_step_where_the_solve_is_not_cramers():
    three = Problem.from_strings(["a", "b", "c"], ["a*b", "b + c", "exp(c)"], target=[1, 2, 3])
    assert fused_step(three, rules.newton(1.0), with_norm=False) is None
    assert fused_step(three, rules.gd(0.1), with_norm=False) is not None
    wide = Problem.from_strings(["a", "b"], ["a*b"], target=[1.0])
    assert fused_step(wide, rules.ig(1.0), with_norm=False) is None  # pseudo-inverse
    assert fused_step(_problem("separable"), rules.pg(0.3, inverse="numeric"), False) is None
    assert fused_step(_problem("separable"), rules.pg(0.3, fallback="ig"), False) is None
    periodic = Problem.from_strings(["a", "t"], ["a*cos(t)", "a*sin(t)"], target=[1.0, 1.0])
    assert fused_step(periodic, rules.pg(0.3), with_norm=False) is None


def test_pg_samples_without_an_inverse_stop_as_before(monkeypatch):
    # (x0, x1**2) towards y1 = -3: no real x1 once the target turns negative; those samples
    # end no_inverse from the rule's own step, the others move on fused
    problem = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], target=[2.0, -3.0])
    x = np.random.default_rng(5).uniform(0.5, 2, (300, 2))
    ours = minimize(problem, rules.pg(0.2), x, 15, record="all", engine="numpy")
    theirs = _kernel_by_kernel(monkeypatch, problem, rules.pg(0.2), x, 15, record="all",
                               engine="numpy")  # fmt: skip
    assert "NO_INVERSE" in {s.name for s in ours.statuses()}
    np.testing.assert_array_equal(ours.status, theirs.status)
    np.testing.assert_array_equal(ours.steps_taken, theirs.steps_taken)
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-12, atol=1e-12)


def test_pg_branches_share_what_they_compute_alike():
    """``x1 = ±sqrt(t1)``, ``x0 = t0`` in both branches: one root, one branch choice."""
    source = fused_step(_problem("separable"), rules.pg(0.5), with_norm=False).source
    assert source.count("numpy.sqrt(") == 1
    assert source.count("_select(") == 1
