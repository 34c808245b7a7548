"""User names that would alias scaleinv's own symbols, and transforms that mention an input.

Issue 17: a param ``eta`` was read as the step size (``derive`` printed ``Δx0 = -eta**3*x0``),
and a scaling ``{ x1 = "x0" }`` was described as ``x1 → x0·x1`` and "proved" while the
transformed problem had quietly gained a param ``x0 = 1``. Both are refused now, by a
:class:`~scaleinv.errors.ProblemError` naming the name at fault.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from scaleinv.analysis.transforms import InputScaling, OutputScaling, Reparametrization
from scaleinv.cli.main import main
from scaleinv.errors import ProblemError
from scaleinv.symbolic import Problem

SPEC = """\
[problem]
inputs = ["x0", "x1"]
outputs = [{outputs}]
[params]
{params}
[analysis]
scalings = [{scalings}]
[[rules]]
name = "ig"
eta = 0.5
"""


def _spec(tmp_path: Path, outputs: str, params: str = "", scalings: str = "") -> str:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(outputs=outputs, params=params, scalings=scalings))
    return str(path)


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("scaleinv: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("params", "outputs", "match"),
    [
        ({"eta": 2}, ["eta*x0"], r"'eta' is reserved: .* step size η"),
        ({"y1": 2}, ["y1*x0", "x0"], r"'y1' is reserved: .* output 1 of P"),
        ({"Delta_y": -1}, ["Delta_y*x0"], r"'Delta_y' is reserved: .* output step Δy"),
    ],
)
def test_a_param_named_like_a_symbol_of_scaleinv_is_refused(params, outputs, match) -> None:
    with pytest.raises(ProblemError, match=match):
        Problem.from_strings(["x0"], outputs, params=params)


def test_a_problem_built_from_symbols_keeps_its_params_apart_from_the_outputs() -> None:
    """With a param y1 (real, as the output symbols are) the default loss ½(y0² + y1²) read
    the param as the second output."""
    x0, y1 = sp.Symbol("x0", real=True), sp.Symbol("y1", real=True)
    with pytest.raises(ProblemError, match=r"'y1' is reserved: .* output 1 of P"):
        Problem([x0], [x0, y1 * x0], params={y1: -2.0})


@pytest.mark.parametrize("command", ["derive", "verify", "run"])
def test_a_spec_with_a_param_eta_is_one_error_line(tmp_path, capsys, command) -> None:
    spec = _spec(tmp_path, '"eta*x0", "x1"', params="eta = 2")
    assert main([command, spec]) == 2
    assert "'eta' is reserved" in _one_error(capsys)


@pytest.mark.parametrize(
    "transform",
    [
        InputScaling({"x1": "x0"}),
        InputScaling(["2", "x0 + 1"]),
        OutputScaling("x1"),
        Reparametrization(["u0*x1", "u1"]),
        InputScaling({"x1": sp.Symbol("x0", positive=True)}),
    ],
    ids=["scale-table", "scale-list", "output", "map", "sympy-symbol"],
)
def test_a_transform_that_mentions_an_input_is_refused(transform) -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0*x1", "x0"])
    with pytest.raises(ProblemError, match=r"mentions the input x[01]"):
        transform.apply(p)


@pytest.mark.parametrize(
    ("scale", "match"),
    [("eta", "'eta' is reserved"), ("y0", "'y0' is reserved"), ("u0", r"\['u0'\] name both")],
)
def test_a_scale_named_like_a_symbol_of_scaleinv_is_refused(scale, match) -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0*x1", "x0"])
    with pytest.raises(ProblemError, match=match):
        InputScaling({"x1": scale}).apply(p)


def test_verify_refuses_a_scaling_that_names_an_input(tmp_path, capsys) -> None:
    spec = _spec(tmp_path, '"x0*x1", "x0"', scalings='{ x1 = "x0" }')
    assert main(["verify", spec]) == 2
    assert "mentions the input x0" in _one_error(capsys)


def test_new_inputs_keep_apart_from_old_inputs_of_the_same_names() -> None:
    """A problem in ``u0, u1`` gets new inputs ``v0, v1``; the transformed ``P`` is the
    original at ``g(u)`` (evaluated twice, numerically)."""
    p = Problem.from_strings(["u0", "u1"], ["u0*u1", "alpha*u1**2"], params={"alpha": 3})
    t = InputScaling({"u1": "1/alpha"}).apply(p)
    assert not set(t.inputs) & set(p.inputs)
    rng = np.random.default_rng(0)
    for point in rng.uniform(-2, 2, (5, 2)):
        at_u = dict(zip(t.inputs, point))
        at_x = {x: float(g.subs({**at_u, **p.params})) for x, g in zip(p.inputs, t.forward)}
        transformed = [float(e.subs({**at_u, **t.problem.params})) for e in t.problem.outputs]
        original = [float(e.subs({**at_x, **p.params})) for e in p.outputs]
        np.testing.assert_allclose(transformed, original, rtol=1e-12)
