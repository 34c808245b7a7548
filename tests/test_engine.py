"""The fused JAX engine of minimize against the NumPy engine: per sample to 1e-12, statuses
identical, every record mode and tol; engine selection; import scaleinv never imports JAX."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import optional_module

from scaleinv import Problem, minimize, rules
from scaleinv.errors import NumericInverseWarning, ScaleinvError
from scaleinv.numeric.engines import FUSED_JAX_MIN_WORK, JAX_MIN_WORK, choose_engine
from scaleinv.numeric.status import Status

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TOL = 1e-12


def _chain(links: int) -> Problem:
    path = BENCHMARKS / "kernels.py"
    spec = importlib.util.spec_from_file_location("scaleinv_bench_kernels", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.chain_problem(links)


COMPARISON = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
#: PG with closed-form branches repeated every 2π in both inputs (the two-link arm).
ARM = Problem.from_strings(
    ["q0", "q1"],
    ["l1*cos(q0) + l2*cos(q0 + q1)", "l1*sin(q0) + l2*sin(q0 + q1)"],
    target=[1.2, 0.5],
    params={"l1": 1, "l2": 0.6},
)
#: No closed-form inverse: PG solves numerically (and runs on NumPy); the others fuse.
COUPLED = Problem.from_strings(
    ["x0", "x1", "x2"],
    ["x0 + x1**3 + sin(x2)", "x1*x2 + exp(x0)/3", "x2**3 + x0*x1"],
    target=[1.5, 1.0, 2.0],
)
RULES = {
    "gd": rules.gd(0.01),
    "newton": rules.newton(1 / 3),
    "ig": rules.ig(0.3),
    "pg": rules.pg(0.3),
    "hig": rules.hig(0.3),
}


@pytest.fixture(scope="module", autouse=True)
def _jax():
    optional_module("jax", "jax")


def _starts(problem: Problem, size: int, seed: int = 0) -> np.ndarray:
    x0 = np.random.default_rng(seed).uniform(-3, 3, (size, problem.n))
    if problem is COMPARISON:  # a singular Hessian (x1 = 0), a diverging GD, a converged start
        x0[:3] = [[1.0, 0.0], [1e3, 1e3], [0.0, 1e-9]]
    return x0


def assert_same(fused, plain, tol: float = TOL) -> None:
    """Per sample to ``tol`` (relative to the point's size), statuses and steps identical."""
    assert fused.engine == "jax" and plain.engine == "numpy"
    np.testing.assert_array_equal(fused.status, plain.status)
    np.testing.assert_array_equal(fused.steps_taken, plain.steps_taken)
    np.testing.assert_array_equal(fused.recorded, plain.recorded)
    for name in ("x", "y", "loss"):
        a, b = getattr(fused, name), getattr(plain, name)
        assert a.shape == b.shape
        scale = 1 + np.abs(b)
        assert np.all(np.abs(a - b) <= tol * scale), (name, np.max(np.abs(a - b) / scale))


def both(problem: Problem, rule, x0, steps: int, tol=None, record: str = "all"):
    kwargs = {"tol": tol, "record": record}
    fused = minimize(problem, rule, x0, steps, engine="jax", **kwargs)
    return fused, minimize(problem, rule, x0, steps, engine="numpy", **kwargs)


@pytest.mark.parametrize("name", list(RULES))
def test_comparison_problem_every_rule_with_tol(name: str) -> None:
    x0 = _starts(COMPARISON, 300)
    fused, plain = both(COMPARISON, RULES[name], x0, 40, tol=1e-4)
    assert_same(fused, plain)
    statuses = set(plain.status.tolist())
    assert Status.CONVERGED in statuses
    if name == "newton":  # the Cramer-untrusted sample goes through the careful solve
        assert plain.status[0] == Status.SINGULAR
    if name == "gd":
        assert plain.status[1] == Status.DIVERGED


@pytest.mark.parametrize("record", ["all", "every:7", "ends", "last"])
@pytest.mark.parametrize("tol", [None, 1e-3])
def test_record_modes(record: str, tol: float | None) -> None:
    x0 = _starts(COMPARISON, 200, seed=1).reshape(20, 10, 2)  # a batch of two axes
    assert_same(*both(COMPARISON, RULES["pg"], x0, 30, tol=tol, record=record))


@pytest.mark.parametrize("fallback", ["stop", "ig"])
def test_no_inverse_status_and_fallback(fallback: str) -> None:
    """PG with eta > 1 overshoots y1 below 0: x1**2 = y1 has no real solution; the sample
    stops there, or takes the IG step."""
    x0 = _starts(COMPARISON, 100)
    fused, plain = both(COMPARISON, rules.pg(1.5, fallback), x0, 10)
    assert_same(fused, plain)
    no_inverse = (plain.status == Status.NO_INVERSE).sum()
    assert no_inverse > 50 if fallback == "stop" else no_inverse == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gd", "newton", "ig", "hig"])
def test_twelve_link_chain(name: str) -> None:
    """GD at a stable eta (at 0.02 it oscillates and amplifies any rounding 10x a step).

    Newton's map on the chain expands differences by ~30x a step here (it climbs towards
    saddles, the Hessian indefinite with condition 1e4): the engines' Hessians agree to
    4e-16 and their first steps to 7e-12, and after 15 steps the points to ~1e-7 — the
    sensitivity of the iteration, not of the engine, so Newton is held to 1e-6 there.
    """
    chain = _chain(12)
    pose = 0.6 * np.sin(np.arange(1, 13))
    x0 = pose + np.random.default_rng(2).uniform(-0.1, 0.1, (64, 12))
    rule = {"gd": rules.gd(0.001), "newton": rules.newton(0.5)}.get(name, RULES[name])
    fused, plain = both(chain, rule, x0, 15, tol=1e-6, record="every:4")
    assert_same(fused, plain, 1e-6 if name == "newton" else TOL)


@pytest.mark.slow
def test_periodic_closed_form_branches() -> None:
    """The arm's PG takes the branch nearest x0 modulo 2π in both joints (starts over three
    periods). With fallback='ig' it runs on NumPy: its branches have excluded boundaries."""
    x0 = np.random.default_rng(3).uniform(-9, 9, (200, 2))
    assert_same(*both(ARM, rules.pg(0.5), x0, 25, tol=1e-8))
    assert minimize(ARM, rules.pg(0.5, "ig"), x0[:5], 2, engine="jax").engine == "numpy"


@pytest.mark.slow
def test_numeric_inverse_runs_on_numpy_and_the_rest_fuse() -> None:
    x0 = np.random.default_rng(4).uniform(-1, 1, (50, 3))
    with pytest.warns(NumericInverseWarning):
        pg = minimize(COUPLED, rules.pg(0.5), x0, 5, engine="jax")
    assert pg.engine == "numpy"
    assert_same(*both(COUPLED, rules.gd(0.02), x0, 10))


@pytest.mark.slow
def test_excluded_boundary_samples_are_rerun_on_numpy() -> None:
    """P = (x0 x1, x0) towards y* = 0 with eta = 1: the target lies on the branch's excluded
    boundary x0 = 0; only NumPy's local inverse finds its limit there (no_inverse in the traced
    one), so the fused run hands those samples back to NumPy."""
    problem = Problem.from_strings(["x0", "x1"], ["x0*x1", "x0"], target=[0, 0])
    x0 = np.random.default_rng(5).uniform(0.5, 2, (40, 2))
    fused, plain = both(problem, rules.pg(1.0), x0, 3)
    assert_same(fused, plain)
    assert (plain.status != Status.NO_INVERSE).all()


def test_jax_trajectory_holds_the_programs_buffers() -> None:
    """The JAX engine hands over its program's outputs as they are: x, y = P(x) (computed in
    the program, not again in NumPy) and the loss are read-only views of its buffers, no
    copies (at 10**7 starts the copies and NumPy's P took 0.2-0.9 s of a 1.5-4 s run)."""
    x0 = _starts(COMPARISON, 50)
    fused, plain = both(COMPARISON, RULES["gd"], x0, 5, record="last")
    assert_same(fused, plain)
    for name in ("x", "y", "loss"):
        a = getattr(fused, name)
        assert not a.flags.writeable and not a.flags.owndata, name


@pytest.mark.parametrize("name", ["gd", "hig"])
def test_fused_programs_run_in_the_buffers_of_the_starts(name: str) -> None:
    """The starts JAX copies in are donated and aliased to outputs: XLA runs the loop in them
    instead of copying them first (per sample: columns; batch-wide: one array)."""
    import jax

    from scaleinv.numeric.engine_jax import fused_program

    with jax.enable_x64(True):
        program = fused_program(COMPARISON, RULES[name], 5, "last", False)
        text = program.lower(_starts(COMPARISON, 10), 0.0).as_text()
    assert text.count("tf.aliasing_output") == (2 if name == "gd" else 1)


def test_fused_pg_updates_points_in_place_on_the_cpu() -> None:
    """The fused programs are compiled with XLA's region analysis for copies on the CPU: PG's
    lean step then updates x0 in place although the update of x1 reads it (XLA's default
    copies the column every step)."""
    import jax

    from scaleinv.numeric.engine_jax import CPU_OPTIONS, fused_program

    if jax.default_backend() != "cpu":
        pytest.skip("XLA's CPU options")
    x0 = _starts(COMPARISON, 1000)
    with jax.enable_x64(True):
        lowered = fused_program(COMPARISON, RULES["pg"], 30, "last", False).lower(x0, 0.0)
        default = dict.fromkeys(CPU_OPTIONS, False)
        copies = [
            lowered.compile(**kw).as_text().count("f64[1000]{0} copy(")
            for kw in ({}, {"compiler_options": default})
        ]
    assert copies[0] < copies[1]


def _while_body_fusions(hlo: str, shape: str) -> list[int]:
    """For every while loop of the compiled ``hlo`` text, how many fusions its body runs that
    write an array of ``shape`` (e.g. ``f64[1000]{0}``)."""
    bodies = re.findall(r"while\(.*?body=(%[\w.-]+)", hlo)
    counts = []
    for body in bodies:
        block = hlo.split(f"\n{body} ", 1)[1].split("\n}\n", 1)[0]
        counts.append(block.count(f"= {shape} fusion("))
    return counts


def test_lean_pg_step_writes_nothing_but_the_points() -> None:
    """PG's lean loop on P = (x0, x1²) runs one fused loop per coordinate, as a hand-written
    loop: the target y of the local inverse (a sum feeding the branch's sqrt and the residual
    that reads the sqrt) went to an array of its own every step before it passed through an
    identity XLA keeps (``_fusible_target``); that identity changes no value."""
    import jax
    import jax.numpy as jnp

    from scaleinv.numeric.engine_jax import _fusible_target, fused_program

    if jax.default_backend() != "cpu":
        pytest.skip("XLA's CPU fusion")
    with jax.enable_x64(True):
        special = jnp.array([0.0, -0.0, 1e-310, -3.5, jnp.inf, -jnp.inf, jnp.nan, 1e308])
        same = _fusible_target(lambda y, x0, params: (y, x0, params))(special, None, {})[0]
        assert np.array_equal(np.asarray(same).view(np.int64), np.asarray(special).view(np.int64))
        program = fused_program(COMPARISON, RULES["pg"], 30, "last", False)
        hlo = program.lower(_starts(COMPARISON, 1000), 0.0).compile().as_text()
    lean_loop = min(c for c in _while_body_fusions(hlo, "f64[1000]{0}") if c)
    assert lean_loop == COMPARISON.n


def test_engine_selection() -> None:
    bfgs = minimize(COMPARISON, rules.bfgs(), [[1.0, 1.0]], 3, engine="jax")
    assert bfgs.engine == "numpy"
    assert choose_engine(COMPARISON, RULES["gd"], 10, 10, None)[0] == "numpy"
    # with tol, a fused NumPy step (2 inputs) keeps NumPy up to FUSED_JAX_MIN_WORK
    assert choose_engine(COMPARISON, RULES["gd"], JAX_MIN_WORK, 1, "auto")[0] == "jax"
    assert choose_engine(COMPARISON, RULES["gd"], JAX_MIN_WORK, 1, "auto", 1e-6)[0] == "numpy"
    assert choose_engine(COMPARISON, RULES["gd"], FUSED_JAX_MIN_WORK, 1, None, 1e-6)[0] == "jax"
    three = Problem.from_strings(["a", "b", "c"], ["a*b", "b + c", "c**3"], target=[1, 2, 3])
    assert choose_engine(three, RULES["newton"], JAX_MIN_WORK, 1, "auto")[0] == "jax"
    assert choose_engine(COMPARISON, RULES["gd"], JAX_MIN_WORK, 1, "numpy")[0] == "numpy"
    assert choose_engine(COMPARISON, RULES["pg"], JAX_MIN_WORK, 1, None)[0] == "jax"
    assert choose_engine(COMPARISON, RULES["pg"], JAX_MIN_WORK // 2, 1, None)[0] == "numpy"
    assert choose_engine(COMPARISON, RULES["pg"], 1, 1, "jax")[0] == "jax"
    assert minimize(COMPARISON, RULES["gd"], [1.0, 1.0], 3).engine == "numpy"
    with pytest.raises(ScaleinvError, match="unknown engine 'gpu'"):
        minimize(COMPARISON, RULES["gd"], [1.0, 1.0], 3, engine="gpu")


def test_import_scaleinv_does_not_import_jax() -> None:
    code = (
        "import sys, scaleinv, numpy\n"
        "p = scaleinv.Problem.from_strings(['x'], ['x**2'])\n"
        "scaleinv.minimize(p, scaleinv.rules.gd(0.1), [1.0], 3)\n"
        "print('jax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rough_branch_candidates_are_polished() -> None:
    """P = x - 1/x: the branch (y + sqrt(y² + 4))/2 cancels at y ~ -1e4 and is rough (off by
    ~1e-8 relative), valid only after the polish. The lean step must not decide those samples
    (they are events, run again by the checked step); a skipped polish would leave them 1e-8
    off, beyond the 1e-12 of assert_same."""
    import jax
    import jax.numpy as jnp

    from scaleinv.numeric.engine_jax import _lean_step

    problem = Problem.from_strings(["x"], ["x - 1/x"], target=[-1e4])
    x0 = np.concatenate([np.geomspace(2e-6, 1e-3, 30), np.geomspace(0.5, 3, 30)])[:, None]
    rule = rules.pg(0.5)
    with jax.enable_x64(True):
        _, event = jax.vmap(_lean_step(problem, rule))(jnp.asarray(x0))
    event = np.asarray(event)
    assert event[:5].all() and not event[30:].any()
    assert_same(*both(problem, rule, x0, 12, tol=1e-9))


def test_lean_pg_takes_components_common_to_every_branch_alone() -> None:
    """P = (x0, x1²): both branches give x0 = y0. The lean step takes that component without
    the branches' choice (which reads every coordinate), so that XLA updates x0 in a loop of
    its own: where x1 is NaN (no valid branch: an event) the step of x0 is still y0's."""
    import jax
    import jax.numpy as jnp

    from scaleinv.numeric.engine_jax import _lean_step

    with jax.enable_x64(True):
        dx, event = _lean_step(COMPARISON, RULES["pg"])(jnp.array([3.0, jnp.nan]))
    assert bool(event) and np.isnan(float(dx[1]))
    assert float(dx[0]) == pytest.approx(0.3 * -3.0)  # eta (y*_0 - y0), y*_0 = 0


def test_events_inside_a_block_rerun_only_that_block() -> None:
    """Samples that stop at different steps inside the lean blocks (tol, a singular Hessian,
    divergence) with many more steps than a block: statuses and steps taken identical."""
    from scaleinv.numeric import engine_jax

    x0 = _starts(COMPARISON, 400, seed=7)
    for name in ("gd", "newton", "pg"):
        fused, plain = both(COMPARISON, RULES[name], x0, 3 * engine_jax.BLOCK + 7, tol=1.0,
                            record="every:9")  # fmt: skip
        assert_same(fused, plain)
        assert len(set(plain.steps_taken.tolist())) > 10


@pytest.mark.slow
def test_twelve_link_chain_newton_differences_are_the_iterations() -> None:
    """The benchmark's chain starts (issue 19 saw 3e-1 between the engines after 10 Newton
    steps): every single step agrees to 1e-10 of its length, and the NumPy engine against
    itself, started one ulp away, ends as far apart (the Newton map climbs towards saddles,
    expanding by up to ~5e5 a step): the iteration's sensitivity, not the engine's."""
    chain = _chain(12)
    x0 = np.random.default_rng(1).uniform(-0.5, 0.5, (300, 12)) + 0.3
    rule = rules.newton(0.5)
    plain = minimize(chain, rule, x0, 10, record="all", engine="numpy")
    points = plain.x[:-1].reshape(-1, 12)
    one = {e: minimize(chain, rule, points, 1, record="last", engine=e).x[-1]
           for e in ("numpy", "jax")}  # fmt: skip
    length = np.abs(one["numpy"] - points).max(-1)
    assert (np.abs(one["jax"] - one["numpy"]).max(-1) <= 1e-10 * length).all()
    nudged = minimize(chain, rule, x0 * (1 + np.finfo(float).eps), 10, engine="numpy")
    fused = minimize(chain, rule, x0, 10, engine="jax")
    apart = np.abs(nudged.x[-1] - plain.x[-1]).max()
    assert apart > 1e-3
    assert np.abs(fused.x[-1] - plain.x[-1]).max() <= 10 * apart


#: Loss without a certified box (a division): the lean blocks check divergence by the loss.
UNBOXED = Problem.from_strings(["x0", "x1"], ["x0", "x1**2 + 1/(1 + x0**2)"], target=[2.0, 3.0])


def test_divergence_is_found_by_the_loss_without_a_box() -> None:
    from scaleinv.numeric.loss_radius import loss_radius

    assert loss_radius(UNBOXED) is None
    x0 = _starts(UNBOXED, 300, seed=3)
    x0[:3] = [[1e3, 1e3], [0.5, 40.0], [1.0, 1.0]]
    fused, plain = both(UNBOXED, RULES["gd"], x0, 60, record="last")
    assert_same(fused, plain)
    assert (plain.status[:2] == Status.DIVERGED).all() and plain.steps_taken[1] > 1


def test_points_outside_the_loss_box_and_long_blocks() -> None:
    """The lean blocks test the box |x_i| <= 1e25 (loss_radius) instead of the loss. From
    x0 = 1e35 (loss 1e70, not diverged) every step outside the box is an event run again by
    the checked step (Newton and IG come back in 60-70 steps, GD stays out); x1 = 1e30 diverges
    (GD) or ends as it does alone (Newton, IG); GD from 1e3 diverges inside a long block. 100
    steps, one record: blocks of 10, 40, 50 (each after a clean one GROW = 4 times as long)."""
    from scaleinv.numeric.loss_radius import loss_radius

    assert loss_radius(COMPARISON) == 1e24
    x0 = _starts(COMPARISON, 300, seed=5)
    x0[3:6] = [[1e35, 2.0], [-3e24, -1.5], [1.0, 1e30]]
    for name in ("gd", "newton", "ig"):
        for tol in (None, 1e-6):
            fused, plain = both(COMPARISON, RULES[name], x0, 100, tol=tol, record="ends")
            assert_same(fused, plain)
            assert (plain.status[3:5] != Status.DIVERGED).all()
            if name == "gd":
                assert plain.status[1] == plain.status[5] == Status.DIVERGED
                assert abs(plain.x[-1, 3, 0]) > 1e24
            else:
                # H = diag(1, ~1e60): singular to working precision, solved by LU as alone
                alone = minimize(COMPARISON, RULES[name], x0[5:6], 100, tol, engine="numpy")
                assert plain.status[5] == alone.status[0] and abs(plain.x[-1, 3, 0]) < 1e24


#: Diagonal Hessian and Jacobian of size 3: the lean solve divides by the diagonal (LAPACK's
#: LU of a diagonal matrix, exactly); x2 = 0 makes the Hessian singular.
SEPARABLE = Problem.from_strings(["x0", "x1", "x2"], ["x0", "x1**2", "x2**3"], target=[1, 2, 3])


def test_diagonal_matrices_of_three_inputs() -> None:
    from scaleinv.numeric import engine_jax
    from scaleinv.numeric.flavors.loader import load_module

    assert engine_jax._diagonal(vars(load_module(SEPARABLE, "jax", [RULES["newton"]])))
    assert not engine_jax._diagonal(vars(load_module(ARM, "jax", [RULES["newton"]])))
    # positive starts: from x2 < 0, IG and Newton cross x2 = 0 (a near-singular Hessian and
    # Jacobian), where an ulp grows to ~1e-12 within 30 steps in either engine
    x0 = np.abs(_starts(SEPARABLE, 300, seed=2)) + 0.2
    x0[0, 2] = 0.0
    for name in ("newton", "ig"):
        fused, plain = both(SEPARABLE, RULES[name], x0, 30, tol=1e-8, record="every:4")
        assert_same(fused, plain)
        assert plain.status[0] == Status.SINGULAR and (plain.status[1:] != Status.SINGULAR).all()


def test_the_careful_solve_decides_each_sample_as_alone() -> None:
    """A matrix singular to working precision that LU solves finitely keeps its solve next to
    an exactly singular one (NumPy's ``solve`` does the same): statuses never depend on the
    samples sharing a batch."""
    import jax
    import jax.numpy as jnp

    from scaleinv.numeric import engine_jax, runtime

    near = [[1.0, 2.0], [2.0, 4.0 * (1 + 2**-52)]]  # condition ≈ 1e16, LU pivot -4.4e-16
    a = np.array([near, [[1.0, 1.0], [1.0, 1.0]], [[2.0, 1.0], [1.0, 3.0]]])
    b = np.ones((3, 2))
    with jax.enable_x64(True):
        x, status = engine_jax.careful_solve(jnp.asarray(a), jnp.asarray(b))
    want_x, want_status = runtime.solve(a, b)
    assert np.asarray(status).tolist() == want_status.tolist() == [0, 5, 0]
    np.testing.assert_allclose(np.asarray(x), want_x, rtol=1e-12)
