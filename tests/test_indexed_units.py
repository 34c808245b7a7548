"""Units per field of an indexed problem: checked on the point formula and the stencils, with
the same verdicts (and the same η per component) as the problem written out entry by entry."""

from __future__ import annotations

import pytest

from scaleinv import rules
from scaleinv.analysis.units import check_units, format_dimension, same_dimension
from scaleinv.analysis.units_indexed import check_indexed_units, indexed_dimensions
from scaleinv.errors import DimensionError
from scaleinv.symbolic.indexed import IndexedProblem

HEAT = "u[i] + dt*(nu*(u[i+1] - 2*u[i] + u[i-1])/h**2 + c*u[i]**3)"
HEAT_UNITS = {
    "u": "temperature",
    "dt": "time",
    "nu": "length**2/time",
    "h": "length",
    "c": "1/(time*temperature**2)",
}


def heat(n: int = 5) -> IndexedProblem:
    params = {"n": n, "dt": 0.1, "nu": 1.0, "h": 0.5, "c": 0.2}
    return IndexedProblem.from_strings("u[0:n]", HEAT, boundary="periodic", params=params)


def two_fields(n: int = 5) -> IndexedProblem:
    return IndexedProblem.from_strings(
        ["u[0:n]", "v[0:n]"],
        ["u[i] + dt*v[i]", "tau*(v[i] + dt*w*(u[i+1] - u[i]))"],
        boundary={"kind": "dirichlet", "value": 0},
        params={"n": n, "dt": 0.1, "w": 2.0, "tau": 0.5},
    )


TWO_UNITS = {"u": "length", "v": "velocity", "dt": "time", "w": "1/time**2", "tau": "time"}


def _expanded_units(problem: IndexedProblem, units: dict) -> dict:
    """The same declaration for the problem written out: every entry of a field."""
    twin = problem.to_problem()
    out = {k: v for k, v in units.items() if k not in problem.fields}
    points = problem.points
    for b, name in enumerate(problem.fields):
        for x in twin.inputs[b * points : (b + 1) * points]:
            out[str(x)] = units[name]
    return out


@pytest.mark.parametrize(
    ("make", "units", "rule"),
    [
        (heat, HEAT_UNITS, "gd"),
        (heat, HEAT_UNITS, "ig"),
        (two_fields, TWO_UNITS, "gd"),
        (two_fields, TWO_UNITS, "newton"),
        (two_fields, TWO_UNITS, "ig"),
    ],
    ids=["heat-gd", "heat-ig", "two-gd", "two-newton", "two-ig"],
)
@pytest.mark.slow
def test_same_verdicts_as_the_expanded_problem(make, units, rule):
    """Every component of the expanded Δx walked (check_units) at a small grid."""
    problem = make(3 if make is heat else 2)
    report = check_indexed_units(problem, rule, units)
    twin = problem.to_problem()
    expanded = check_units(twin, rules.REGISTRY[rule](), _expanded_units(problem, units))
    assert report.verdict == expanded.verdict
    points = problem.points
    for b in range(len(problem.fields)):  # every entry of field b needs what the field needs
        for k in range(b * points, (b + 1) * points):
            need = expanded.need(k)
            if need == "any":
                continue
            assert same_dimension(report.required_eta[b], need), (rule, k)


def test_gd_needs_a_different_eta_per_field():
    report = check_indexed_units(two_fields(), "gd", TWO_UNITS)
    assert not report.consistent
    assert report.inputs == ("u", "v")
    needs = [format_dimension(d) for d in report.required_eta]
    assert needs[0] != needs[1]


def test_dimensions_of_outputs_and_loss():
    dims = indexed_dimensions(heat(), HEAT_UNITS)
    assert [format_dimension(d) for d in dims.outputs] == ["temperature"]
    assert format_dimension(dims.loss) == "temperature**2"


def test_a_formula_that_does_not_fit_names_its_term():
    units = {**HEAT_UNITS, "h": "time"}
    with pytest.raises(DimensionError, match="cannot add"):
        indexed_dimensions(heat(), units)


def test_missing_field_and_unknown_name():
    with pytest.raises(DimensionError, match="no dimension declared for field"):
        indexed_dimensions(heat(), {k: v for k, v in HEAT_UNITS.items() if k != "u"})
    with pytest.raises(DimensionError, match="unknown names"):
        indexed_dimensions(heat(), {**HEAT_UNITS, "zz": "length"})


def test_declared_output_dimension_is_checked():
    with pytest.raises(DimensionError, match="declared length"):
        indexed_dimensions(heat(), {**HEAT_UNITS, "P": "length"})
