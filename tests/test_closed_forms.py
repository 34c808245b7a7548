"""Closed-form inverses of trigonometric systems by elimination (arms, SCARA, coordinates; and
hyperbolic ones: rapidity, log-scale coordinates).

Every closed form is checked numerically: round trips ``P(P⁻¹(y; x0)) = y`` at reachable
``y``, the branch count against the distinct solutions Gauss–Newton finds from many starts,
and the chosen solution against a brute-force search over branches × periods.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import sympy as sp
from sympy.polys.orderings import lex
from sympy.polys.rings import ring

from scaleinv.numeric.flavors.loader import load_module
from scaleinv.numeric.inverse import solver_namespace
from scaleinv.numeric.inverse_source import closed_form_source
from scaleinv.symbolic import Problem, budget
from scaleinv.symbolic.elimination import NoElimination, eliminate
from scaleinv.symbolic.groebner import Work, WorkLimit, reduced_basis
from scaleinv.symbolic.inverse import Branch, LocalInverse, local_inverse
from scaleinv.symbolic.polynomial_system import NotPolynomial, polynomial_system

ARM = ["l1*cos(q0) + l2*cos(q0 + q1)", "l1*sin(q0) + l2*sin(q0 + q1)"]
#: name: (inputs, outputs, params, branches); the branch counts are the textbook ones
CASES = {
    "arm2": (["q0", "q1"], ARM, {"l1": 1.0, "l2": 0.6}, 2),
    "arm2_expanded": (
        ["t1", "t2"],
        [
            "L1*cos(t1) + L2*(cos(t1)*cos(t2) - sin(t1)*sin(t2))",
            "L1*sin(t1) + L2*(sin(t1)*cos(t2) + cos(t1)*sin(t2))",
        ],
        {"L1": 0.8, "L2": 1.3},
        2,
    ),
    "arm2_lateral_offset": (
        ["q0", "q1"],
        [
            "l1*cos(q0) + l2*cos(q0 + q1) - d*sin(q0 + q1)",
            "l1*sin(q0) + l2*sin(q0 + q1) + d*cos(q0 + q1)",
        ],
        {"l1": 1.0, "l2": 0.7, "d": 0.2},
        2,
    ),
    "arm3_orientation": (
        ["q0", "q1", "q2"],
        [
            "l1*cos(q0) + l2*cos(q0 + q1) + l3*cos(q0 + q1 + q2)",
            "l1*sin(q0) + l2*sin(q0 + q1) + l3*sin(q0 + q1 + q2)",
            "q0 + q1 + q2",
        ],
        {"l1": 1.0, "l2": 0.7, "l3": 0.3},
        2,
    ),
    "scara": (
        ["q0", "q1", "d", "q3"],
        [*ARM, "h - d", "q0 + q1 + q3"],
        {"l1": 0.9, "l2": 0.5, "h": 0.4},
        2,
    ),
    "polar": (["r", "theta"], ["r*cos(theta)", "r*sin(theta)"], {}, 2),
    "cylindrical": (["r", "theta", "z"], ["r*cos(theta)", "r*sin(theta)", "z"], {}, 2),
    "spherical": (
        ["r", "theta", "phi"],
        ["r*sin(theta)*cos(phi)", "r*sin(theta)*sin(phi)", "r*cos(theta)"],
        {},
        4,
    ),
    "projectile": (["v", "a"], ["v**2*sin(2*a)/g", "2*v*sin(a)/g"], {"g": 9.81}, 2),
}
SLOW = pytest.mark.slow  # each derivation takes seconds of SymPy


@functools.cache
def derived(name: str) -> LocalInverse:
    inputs, outputs, params, _ = CASES[name]
    return Problem.from_strings(inputs, outputs, params=params or None).local_inverse()


def samples(li: LocalInverse, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reachable targets ``y = P(x*)`` and starts ``x0`` near ``x*``, some periods away."""
    rng = np.random.default_rng(seed)
    x_star = rng.uniform(-3.0, 3.0, (count, li.problem.n))
    x_star[:, 0] = np.where(np.abs(x_star[:, 0]) < 0.2, 0.5, x_star[:, 0])  # r, v away from 0
    y = li.problem.compile().P(x_star)
    x0 = x_star + rng.normal(0.0, 0.8, x_star.shape) + 2 * np.pi * rng.integers(-2, 3, (count, 1))
    return y, x0


def lattice(li: LocalInverse) -> np.ndarray:
    """Rows: every period (alone or joint) as a shift of all inputs."""
    branch, n = li.branches[0], li.problem.n
    rows = [np.eye(n)[j] * float(t) for j, t in enumerate(branch.period) if t is not None]
    rows += [[float(v) for v in vector] for vector in branch.joint_period]
    return np.array(rows).reshape(-1, n)


def brute_force_nearest(li: LocalInverse, y: np.ndarray, x0: np.ndarray) -> float:
    """The smallest distance from ``x0`` to a solution: every branch × every combination of
    up to 3 periods each way, kept where it solves ``P(x) = y``."""
    P = li.problem.compile().P
    shifts = lattice(li)
    combos = np.array(list(itertools.product(range(-3, 4), repeat=len(shifts))))
    offsets = combos @ shifts if len(shifts) else np.zeros((1, li.problem.n))
    best = np.inf
    ys = li.problem.output_symbols
    for branch in li.branches:
        f = sp.lambdify([ys, *li.problem.params], branch.solution, "numpy")
        with np.errstate(all="ignore"):
            value = np.array(f(y, *li.problem.params.values()), dtype=float)
        if not np.all(np.isfinite(value)):
            continue
        for candidate in value + offsets:
            if np.all(np.abs(P(candidate) - y) <= 1e-8 * (1 + np.abs(y))):
                best = min(best, float(np.linalg.norm(candidate - x0)))
    return best


def canonical(li: LocalInverse, x: np.ndarray) -> np.ndarray:
    """``x`` moved into one cell of the period lattice (each angle into [-T/2, T/2))."""
    x = x.copy()
    for row in lattice(li):
        i = int(np.flatnonzero(row)[0])  # the angle that row moves by its own period first
        x -= np.floor((x[i] + row[i] / 2) / row[i]) * row
    return x


def newton_solutions(li: LocalInverse, y: np.ndarray, starts: int = 300) -> list[np.ndarray]:
    """Distinct solutions (modulo periods) that Gauss–Newton reaches from random starts."""
    kernels = li.problem.compile()
    rng = np.random.default_rng(11)
    x = rng.uniform(-4.0, 4.0, (starts, li.problem.n))
    for _ in range(60):
        x = x[np.isfinite(x).all(axis=1) & (np.abs(x).max(axis=1) < 50)]  # drop diverging runs
        jac = kernels.jacobian(x).reshape(len(x), li.problem.m, li.problem.n)
        r = y - kernels.P(x)
        x = x + np.einsum("kij,kj->ki", np.linalg.pinv(jac), r)
    ok = np.all(np.abs(kernels.P(x) - y) <= 1e-10 * (1 + np.abs(y)), axis=-1)
    found: list[np.ndarray] = []
    for point in x[ok]:
        c = canonical(li, point)
        if not any(np.allclose(c, f, atol=1e-6) for f in found):
            found.append(c)
    return found


# -- the whole path: derive, count, round trip, nearest --------------------------------------
@SLOW
@pytest.mark.parametrize("name", list(CASES))
def test_closed_form_by_elimination_round_trips_and_picks_the_nearest(name: str) -> None:
    li = derived(name)
    assert not li.numeric and li.reason.startswith("elimination"), li.reason
    assert len(li.branches) == CASES[name][3]
    y, x0 = samples(li, 40, seed=len(name))
    sol = li.compile().solve(y, x0)
    assert sol.ok.all()
    np.testing.assert_array_less(np.abs(li.problem.compile().P(sol.x) - y), 1e-8 * (1 + np.abs(y)))
    for k in range(len(y)):
        best = brute_force_nearest(li, y[k], x0[k])
        assert np.linalg.norm(sol.x[k] - x0[k]) == pytest.approx(best, rel=1e-9, abs=1e-9)


@SLOW
@pytest.mark.parametrize("name", list(CASES))
def test_branch_count_is_the_number_of_solutions_newton_finds(name: str) -> None:
    li = derived(name)
    y, _ = samples(li, 3, seed=5)
    for target in y:
        valid = [
            b
            for b in li.branches
            if bool(
                b.condition.subs(
                    {**dict(zip(li.problem.output_symbols, target)), **li.problem.params}
                )
            )
        ]
        assert len(newton_solutions(li, target)) == len(valid) == CASES[name][3]


@SLOW
def test_elbow_up_and_down_are_chosen_by_the_start_modulo_two_pi() -> None:
    li = derived("arm2")
    y = li.problem.compile().P(np.array([0.4, 1.1]))
    up = li.inv(y, [0.3, 1.0])
    down = li.inv(y, [1.4, -1.2])
    far = li.inv(y, [0.3 + 4 * np.pi, 1.0 - 2 * np.pi])
    np.testing.assert_allclose(up, [0.4, 1.1], atol=1e-12)
    assert down[1] < 0 and abs(down[1] + 1.1) < 1e-12  # the mirrored elbow
    np.testing.assert_allclose(far, [0.4 + 4 * np.pi, 1.1 - 2 * np.pi], atol=1e-12)


@SLOW
def test_arm_branches_are_the_textbook_acos_and_unreachable_targets_have_none() -> None:
    li = derived("arm2")
    q1 = {b.solution[1] for b in li.branches}
    l1, l2 = sorted(li.problem.params, key=str)
    y0, y1 = li.problem.output_symbols
    textbook = sp.acos((y0**2 + y1**2 - l1**2 - l2**2) / (2 * l1 * l2))
    values = {y0: 0.7, y1: 0.9, l1: 1.0, l2: 0.6}
    assert sorted(float(e.subs(values)) for e in q1) == pytest.approx(
        [-float(textbook.subs(values)), float(textbook.subs(values))]
    )
    sol = li.compile().solve([[2.0, 0.0], [0.1, 0.0]], [0.0, 0.5])  # beyond / inside reach
    assert not sol.ok.any()


@SLOW
@pytest.mark.parametrize("flavor", ["jax", "torch"])
def test_joint_periods_in_jax_and_torch_equal_numpy(flavor: str) -> None:
    from conftest import optional_module

    li = derived("arm3_orientation")
    y, x0 = samples(li, 16, seed=3)
    want = load_module(li.problem, "numpy").local_inverse(y, x0)
    if flavor == "jax":
        jax = optional_module("jax", "jax")
        jax.config.update("jax_enable_x64", True)
        convert = jax.numpy.asarray
    else:
        convert = optional_module("torch", "torch").as_tensor
    got = load_module(li.problem, flavor).local_inverse(convert(y), convert(x0))
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12, atol=1e-12)


# -- the pieces ----------------------------------------------------------------------------
def test_reduced_basis_equals_sympys_groebner() -> None:
    l1, l2, x, y = sp.symbols("l1 l2 x y", positive=True)
    c0, s0, s1, c1 = sp.symbols("c0 s0 s1 c1")
    system = [
        l1 * c0 + l2 * (c0 * c1 - s0 * s1) - x,
        l1 * s0 + l2 * (s0 * c1 + c0 * s1) - y,
        c0**2 + s0**2 - 1,
        c1**2 + s1**2 - 1,
    ]
    field = sp.QQ.frac_field(l1, l2, x, y)
    R = ring([c0, s0, s1, c1], field, lex)[0]
    work = Work()
    mine = [p.as_expr() for p in reduced_basis([R(e) for e in system], work)]
    assert mine == list(sp.groebner(system, c0, s0, s1, c1, order="lex", domain=field).exprs)
    assert work.steps > 0
    with pytest.raises(WorkLimit, match="more than 20 reduction steps"):
        reduced_basis([R(e) for e in system], Work(max_steps=20))


def test_work_limit_is_counted_and_the_same_every_time() -> None:
    p = Problem.from_strings(["r", "t"], ["r*cos(t)", "r*sin(t)"])
    reasons = set()
    for _ in range(2):
        with pytest.raises(NoElimination) as err:
            eliminate(p, Work(max_steps=3))
        reasons.add(str(err.value))
    assert reasons == {
        "the elimination exceeded its work limit: the Gröbner basis needed more than 3 "
        "reduction steps"
    }


def test_a_step_with_large_coefficients_is_refused_before_it_is_taken() -> None:
    # an arm whose third output couples its joints: one reduction step would multiply out
    # coefficients of thousands of terms (minutes of GCDs); it is refused in well under a second
    outputs = [*CASES["arm3_orientation"][1][:2], "cos(q0) + sin(q1)*cos(q2)"]
    p = Problem.from_strings(["q0", "q1", "q2"], outputs, params=CASES["arm3_orientation"][2])
    work = Work()
    with pytest.raises(
        NoElimination, match=r"multiply out coefficients of \d+ terms \(limit 2000\)"
    ):
        eliminate(p, work)
    assert work.steps == 90  # counted, so the same on every machine


def test_polar_by_elimination_is_atan2_with_its_period() -> None:
    p = Problem.from_strings(["r", "t"], ["r*cos(t)", "r*sin(t)"])
    found = eliminate(p)
    y0, y1 = p.output_symbols
    assert set(found.solutions) == {
        (sp.sqrt(y0**2 + y1**2), sp.atan2(y1, y0)),
        (-sp.sqrt(y0**2 + y1**2), sp.atan2(-y1, -y0)),
    }
    assert found.period == (None, 2 * sp.pi) and found.joint == ()


def test_orientation_output_fixes_the_last_angle_and_couples_the_periods() -> None:
    inputs, outputs, params, _ = CASES["arm3_orientation"]
    system = polynomial_system(Problem.from_strings(inputs, outputs, params=params))
    q0, q1, q2 = system.inputs
    assert system.pivots == {q2: sp.Symbol("y2", real=True) - q0 - q1}
    assert system.period == (None, None, None)
    assert system.joint == ((2 * sp.pi, 0, -2 * sp.pi), (0, 2 * sp.pi, -2 * sp.pi))


@pytest.mark.parametrize(
    ("outputs", "why"),
    [
        (["x0 + sin(x0)", "x1"], "appears both inside and outside"),
        (["sin(x0**2)", "x1"], "not affine"),
        (["log(x0)", "x1"], "neither polynomial"),
        (["sin(x0) + cosh(x0)", "x1"], "both sin\\(x0\\) and a hyperbolic"),
        (["sin(x0) + sin(sqrt(2)*x0)", "x1"], "incommensurate"),
        (["cos(x0)*cos(x1)"], "not isolated"),
    ],
)
def test_systems_outside_the_class_say_why(outputs: list[str], why: str) -> None:
    with pytest.raises(NotPolynomial, match=why):
        polynomial_system(Problem.from_strings(["x0", "x1"], outputs))


def test_nearest_joint_shift_is_the_nearest_lattice_point() -> None:
    rows = ((2 * sp.pi, 0, -2 * sp.pi), (0, 2 * sp.pi, -2 * sp.pi))
    problem = Problem.from_strings(["a", "b", "c"], ["a", "b", "c"])
    branch = Branch(problem.output_symbols, sp.true, (None,) * 3, rows)
    namespace = solver_namespace(problem.compile())
    source = closed_form_source(LocalInverse(problem, (branch,), False, "test"))
    exec(compile(source, "<test>", "exec"), namespace)  # noqa: S102  (scaleinv's own source)
    rng = np.random.default_rng(2)
    gap = rng.normal(0.0, 20.0, (500, 3))
    lattice_rows = np.array(rows, dtype=float)
    shift = namespace["nearest_joint_shift"](
        gap,
        np.broadcast_to(lattice_rows, (500, 2, 3)),
        np.broadcast_to(np.linalg.pinv(lattice_rows), (500, 3, 2)),
    )
    combos = np.array(list(itertools.product(range(-12, 13), repeat=2))) @ lattice_rows
    brute = np.min(np.linalg.norm(gap[:, None, :] - combos[None], axis=-1), axis=1)
    np.testing.assert_allclose(np.linalg.norm(gap - shift, axis=-1), brute, rtol=1e-12)


# -- one stable reason ---------------------------------------------------------------------
def test_reason_names_no_exception_class(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> list:
        raise NotImplementedError("could not solve")

    monkeypatch.setattr(sp, "solve", refuse)
    monkeypatch.setattr(budget, "_IN_WORKER", True)  # workers do not see this process's patch
    li = local_inverse(Problem.from_strings("x", "x**3 + x"))
    assert li.numeric
    assert "Error" not in li.reason and "_CapHit" not in li.reason
    assert li.reason.startswith("no closed form found (sympy.solve found none; elimination: ")
    assert li.reason.endswith("; solving numerically")


def test_sympy_failure_outside_solve_is_a_plain_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(sp, "linear_eq_to_matrix", broken)
    monkeypatch.setattr(budget, "_IN_WORKER", True)  # workers do not see this process's patch
    li = local_inverse(Problem.from_strings("x", "x**2"))
    assert li.numeric
    assert (
        li.reason
        == "no closed form found (SymPy failed while deriving it: boom); solving numerically"
    )


# -- hyperbolic angles: cosh/sinh (and exp) on the unit hyperbola ----------------------------
#: name: (inputs, outputs); each has exactly one real solution for every reachable y
HYPERBOLIC = {
    "rapidity": (["tau", "w"], ["tau*cosh(w)", "tau*sinh(w)"]),
    "log_scale": (["a", "b"], ["a*exp(b)", "a*exp(-b)"]),
}


@functools.cache
def hyperbolic(name: str) -> LocalInverse:
    return Problem.from_strings(*HYPERBOLIC[name]).local_inverse()


def test_cosh_and_sinh_become_unknowns_on_the_unit_hyperbola() -> None:
    system = polynomial_system(Problem.from_strings(*HYPERBOLIC["rapidity"]))
    (angle,) = system.angles
    assert angle.hyperbolic and angle.period is None and system.period == (None, None)
    assert system.equations[-1] == angle.cos**2 - angle.sin**2 - 1


@SLOW
def test_rapidity_is_the_half_angle_atanh_on_both_sides_of_the_light_cone() -> None:
    li = hyperbolic("rapidity")
    assert not li.numeric and li.reason.startswith("elimination"), li.reason
    y0, y1 = li.problem.output_symbols
    r = sp.sqrt(y0**2 - y1**2)
    assert {b.solution for b in li.branches} == {
        (r, 2 * sp.atanh(y1 / (y0 + r))),
        (-r, 2 * sp.atanh(y1 / (y0 - r))),
    }
    # the future event (3, 1.2) has tau > 0, the past one (-3, 1.2) tau < 0; w = atanh(x/t)
    for target in ([3.0, 1.2], [-3.0, 1.2]):
        x = li.inv(target, [1.0, 0.0])
        assert x == pytest.approx(
            [np.sign(target[0]) * np.sqrt(9 - 1.44), np.arctanh(-0.4 if target[0] < 0 else 0.4)]
        )


@SLOW
@pytest.mark.parametrize("name", list(HYPERBOLIC))
def test_hyperbolic_closed_form_round_trips_and_is_the_only_real_solution(name: str) -> None:
    li = hyperbolic(name)
    assert not li.numeric and li.reason.startswith("elimination"), li.reason
    y, x0 = samples(li, 40, seed=3)
    sol = li.compile().solve(y, x0)
    assert sol.ok.all()
    P = li.problem.compile().P
    np.testing.assert_array_less(np.abs(P(sol.x) - y), 1e-9 * (1 + np.abs(y)))
    for k in range(len(y)):
        best = brute_force_nearest(li, y[k], x0[k])
        assert np.linalg.norm(sol.x[k] - x0[k]) == pytest.approx(best, rel=1e-9, abs=1e-9)
    for target in y[:3]:  # one real branch valid, one solution found from 300 starts
        at = {**dict(zip(li.problem.output_symbols, target))}
        valid = [b for b in li.branches if bool(b.condition.subs(at))]
        assert len(valid) == len(newton_solutions(li, target)) == 1


@SLOW
@pytest.mark.parametrize("name", list(HYPERBOLIC))
def test_hyperbolic_inverse_derivative_is_the_inverse_jacobian(name: str) -> None:
    """Finite differences of ``y -> P⁻¹(y; x0)`` equal ``J(x)⁻¹``."""
    li = hyperbolic(name)
    kernels = li.problem.compile()
    x = np.array([1.3, -0.7])
    y, h = kernels.P(x[None])[0], 1e-6
    columns = [(li.inv(y + h * e, x) - li.inv(y - h * e, x)) / (2 * h) for e in np.eye(2)]
    jac = kernels.jacobian(x[None]).reshape(2, 2)
    np.testing.assert_allclose(np.array(columns).T, np.linalg.inv(jac), rtol=1e-6, atol=1e-8)
