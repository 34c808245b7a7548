from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from catalogue import CATALOGUE, evaluate, finite_difference, sample_points

from scaleinv import Problem, load_spec
from scaleinv.errors import ParseError, ProblemError, SpecError

NAMES = sorted(CATALOGUE)


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_gradient_hessian_match_finite_differences(name: str) -> None:
    problem = CATALOGUE[name]
    rng = np.random.default_rng(1)
    for x in sample_points(name, rng, 3):
        P = lambda z: evaluate(problem.P, problem, z)[:, 0]  # noqa: E731
        loss = lambda z: float(evaluate(sp.Matrix([problem.loss_x]), problem, z)[0, 0])  # noqa: E731
        grad = lambda z: evaluate(problem.gradient, problem, z)[:, 0]  # noqa: E731
        np.testing.assert_allclose(
            evaluate(problem.jacobian, problem, x), finite_difference(P, x), rtol=1e-6, atol=1e-8
        )
        np.testing.assert_allclose(grad(x), finite_difference(loss, x), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(
            evaluate(problem.hessian, problem, x), finite_difference(grad, x), rtol=1e-6, atol=1e-7
        )


def test_default_loss_is_half_squared_distance_and_newton_dy_points_at_target() -> None:
    p = Problem.from_strings(["x"], ["x**2"], target=[4])
    y = p.output_symbols[0]
    assert sp.simplify(p.loss - (y - 4) ** 2 / 2) == 0
    assert sp.simplify(p.newton_dy[0] - (4 - y)) == 0


def test_newton_dy_is_the_newton_step_of_a_general_loss() -> None:
    p = Problem.from_strings(
        ["x0", "x1"], ["x0", "x1"], loss="exp(y0) + y0**2 + (y1 - 1)**4 + y0*y1"
    )
    rng = np.random.default_rng(2)
    for y in rng.uniform(-1, 1, (3, 2)):
        values = dict(zip(p.output_symbols, y))
        g = np.array(p.loss_y.subs(values).evalf(), dtype=float)[:, 0]
        step = np.array(p.newton_dy.subs(values).evalf(), dtype=float)[:, 0]
        # independent path: finite-difference Hessian of L in y, then a dense solve
        loss = lambda v: float(p.loss.subs(dict(zip(p.output_symbols, v))).evalf())  # noqa: E731
        grad = lambda v, f=loss: finite_difference(f, v, 1e-5)  # noqa: E731
        hess = finite_difference(grad, y, 1e-4)
        np.testing.assert_allclose(step, -np.linalg.solve(hess, g), rtol=1e-4)


def test_linear_loss_has_no_newton_step_in_y() -> None:
    p = Problem.from_strings(["x"], ["x"], loss="3*y0")
    with pytest.raises(ProblemError, match="singular Hessian in y"):
        _ = p.newton_dy


def test_problem_is_frozen_and_validates_symbols() -> None:
    p = CATALOGUE["comparison"]
    with pytest.raises(AttributeError):
        p.loss = 0  # type: ignore[misc]
    x, z = sp.symbols("x z", real=True)
    with pytest.raises(ProblemError, match="unknown symbols: z"):
        Problem((x,), (x + z,))
    with pytest.raises(ParseError, match="unknown name: 'z'"):
        Problem.from_strings(["x"], ["x + z"])
    with pytest.raises(ProblemError, match="target has 1 entries"):
        Problem.from_strings(["x0", "x1"], ["x0", "x1"], target=[1])
    with pytest.raises(ParseError, match="unknown name: 'y3'"):
        Problem.from_strings(["x"], ["x"], loss="y3**2")


def test_with_params_and_positive_param_symbols() -> None:
    p = CATALOGUE["scaling_toy"].with_params(alpha=3)
    (alpha,) = p.param_symbols
    assert alpha.is_positive and p.params[alpha] == 3.0
    with pytest.raises(ProblemError, match="unknown params"):
        p.with_params(beta=1)


def test_non_square_jacobian_is_allowed() -> None:
    p = CATALOGUE["overdetermined"]
    assert p.jacobian.shape == (3, 2) and p.hessian.shape == (2, 2)


def write(tmp_path, text: str):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def test_spec_files_load_through_the_same_parser(tmp_path) -> None:
    spec = load_spec("reports/comparison.toml")
    assert [r.name for r in spec.rules] == ["gd", "newton", "pg"]
    assert spec.rules[1].settings["eta"] == pytest.approx(1 / 3)
    assert spec.starts == ((3.0, 3.0),) and spec.steps == 10
    bad = write(tmp_path, '[problem]\ninputs = ["x"]\noutputs = ["__import__(\'os\')"]\n')
    with pytest.raises(SpecError, match=r"spec.toml: \[problem\.outputs\[0\]\].*__import__"):
        load_spec(bad)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[problem]\ninputs = ['x']\n", r"\[problem.outputs\] is missing"),
        ("[problem]\ninputs = ['x']\noutputs = ['x']\n[run]\nsteps = -1\n", r"\[run.steps\]"),
        (
            "[problem]\ninputs = ['x']\noutputs = ['x']\n[run]\nstarts = [[1, 2]]\n",
            r"run.starts\[0\]",
        ),
        (
            "[problem]\ninputs = ['x']\noutputs = ['x']\n[[rules]]\nname = 'gd'\nspeed = 3\n",
            r"\[rules\[0\].speed\] unknown key",
        ),
        (
            "[problem]\ninputs = ['x']\noutputs = ['x']\n[[rules]]\nname = 'gd'\neta = 'x.y'\n",
            "attribute",
        ),
        ("[oops]\n", r"\[oops\] unknown key"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_spec_errors_name_the_key(tmp_path, text: str, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_spec(write(tmp_path, text))


def test_missing_spec_file_is_a_spec_error(tmp_path) -> None:
    with pytest.raises(SpecError, match="cannot be read"):
        load_spec(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("loss", "target", "default"),
    [
        (None, [1, 2], True),
        ("(y0 - 1)**2/2 + (y1 - 2)**2/2", [1, 2], True),  # written out
        ("y0**2/2 - y0 + 1/2 + y1**2/2 - 2*y1 + 2", [1, 2], True),  # expanded
        ("(y0 - 1)**2 + (y1 - 2)**2", [1, 2], False),  # twice the default
        ("(y0 - 1)**2/2 + (y1 - 2)**2/2", None, False),  # the target is 0, not (1, 2)
    ],
)
def test_the_default_loss_is_recognised_however_written(loss, target, default) -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss, target=target)
    assert p.has_default_loss is default
    y = np.array([0.3, -1.7])  # the predicate's meaning, checked by value
    values = dict(zip(p.output_symbols, y))
    want = 0.5 * np.sum((y - np.array(target or [0, 0], dtype=float)) ** 2)
    assert bool(float(p.loss.subs(values)) == pytest.approx(want)) is default
