from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sympy.physics import units as u
from sympy.physics.units import Dimension, convert_to
from sympy.physics.units.quantities import Quantity
from sympy.physics.units.systems.si import dimsys_SI

from scaleinv import rules
from scaleinv.analysis import (
    UnitsVerdict,
    check_units,
    dimension_of,
    format_dimension,
    parse_dimension,
    problem_dimensions,
    same_dimension,
)
from scaleinv.errors import DimensionError, ProblemError
from scaleinv.symbolic import Problem, parse_expr

ETA = sp.Symbol("eta", positive=True)
#: dimension name -> the SI unit a quantity of it is measured in
UNIT = {"mass": u.kilogram, "length": u.meter, "time": u.second}


# -- the mechanics example: x0 a distance, x1 a time, y1 = g x1²/2 a fall height --------------
def mechanics() -> Problem:
    return Problem.from_strings(
        ["x0", "x1"], ["x0", "g*x1**2/2"], target=["h0", "h1"], params={"g": 9.81, "h0": 1, "h1": 2}
    )


MECH_DIMS = {"x0": "length", "x1": "time", "g": "length/time**2", "h0": "length", "h1": "length"}
MECH_DIMS |= {"y0": "length", "y1": "length", "L": "length**2"}


@dataclass(frozen=True)
class LocalRule:
    """Δx formulas written out here, independently of scaleinv.symbolic.updates."""

    name: str
    eta: sp.Expr = ETA

    def delta(self, p: Problem):
        x = sp.Matrix(p.inputs)
        loss = p.loss.subs(dict(zip(p.output_symbols, p.outputs)))
        grad = sp.Matrix([sp.diff(loss, xi) for xi in p.inputs])
        hess = sp.hessian(loss, p.inputs)
        jac = sp.Matrix(p.outputs).jacobian(p.inputs)
        ys = sp.Matrix(p.output_symbols)
        dy = -(sp.hessian(p.loss, ys).inv() * sp.Matrix([sp.diff(p.loss, y) for y in ys]))
        dy = self.eta * dy.subs(dict(zip(p.output_symbols, p.outputs)))
        if self.name == "gd":
            return -self.eta * grad
        if self.name == "newton":
            return sp.simplify(-self.eta * hess.inv() * grad)
        if self.name == "ig":
            return sp.simplify(jac.inv() * dy)
        if self.name == "pg":  # solve P(x') = P(x) + Δy for x', one Δx per solution branch
            new = [sp.Symbol(f"n{i}", real=True) for i in range(p.n)]
            target = sp.Matrix(p.outputs) + dy
            eqs = [o.subs(dict(zip(p.inputs, new))) - t for o, t in zip(p.outputs, target)]
            sols = sp.solve(eqs, new, dict=True)
            return tuple(sp.simplify(sp.Matrix([s[v] for v in new]) - x) for s in sols)
        raise AssertionError(self.name)


def _real_rules():
    found = [rules.gd(ETA), rules.newton(ETA), rules.ig(ETA)]
    if importlib.util.find_spec("scaleinv.symbolic.inverse") is not None:
        found.append(rules.pg(ETA))
    return found


ALL_RULES = [LocalRule(n) for n in ("gd", "newton", "ig", "pg")] + _real_rules()
RULE_IDS = [f"{'local' if isinstance(r, LocalRule) else 'lib'}-{r.name}" for r in ALL_RULES]


def _unit_of(dim) -> sp.Expr:
    deps = dimsys_SI.get_dimensional_dependencies(parse_dimension(dim))
    return sp.Mul(*(UNIT[str(d.name)] ** e for d, e in deps.items()))


def _units_after_conversion(expr: sp.Expr) -> sp.Expr:
    """The unit of a quantity expression, via sympy.physics.units (independent of scaleinv)."""
    q = sp.factor_terms(convert_to(sp.factor_terms(expr), list(UNIT.values())))
    units = sp.Mul(*(b**e for b, e in q.as_powers_dict().items() if isinstance(b, Quantity)))
    assert (q / units).is_number, f"{q} is not a number times a unit"
    return units


def _with_quantities(expr: sp.Expr, dims: dict, rng: np.random.Generator, extra=None) -> sp.Expr:
    """Substitute a random positive quantity of the declared dimension for every symbol."""
    values = {}
    for s in expr.free_symbols:
        dim = (extra or {}).get(s, dims.get(str(s)))
        values[s] = sp.Float(rng.uniform(0.5, 2.0)) * _unit_of(dim)
    return expr.xreplace(values)


# -- parsing and formatting ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("length", u.length),
        ("length/time", u.velocity),
        ("mass*length**2/time**2", u.energy),
        ("mass*length^2/time^2", u.energy),
        ("force*length", u.energy),
        ("1", Dimension(1)),
        ("dimensionless", Dimension(1)),
        ("angle", Dimension(1)),
        ("energy/velocity**2", u.mass),
        ("length**(1/2)", u.length ** sp.Rational(1, 2)),
    ],
)
def test_parse_dimension_agrees_with_sympy_units(text: str, expected) -> None:
    assert same_dimension(parse_dimension(text), expected)
    assert dimsys_SI.equivalent_dims(parse_dimension(text), expected) or text == "angle"


@pytest.mark.parametrize(
    "text, match",
    [
        ("2*length", "not a product of powers"),
        ("length + time", "not a product of powers"),
        ("meter", "unknown dimension 'meter'"),
        ("__import__('os')", "not a dimension"),
        ("length.real", "attribute access"),
        ("exp(length)", "not a product of powers"),
    ],
)
def test_parse_dimension_refuses_what_is_not_a_dimension(text: str, match: str) -> None:
    with pytest.raises(DimensionError, match=match):
        parse_dimension(text)


_EXPONENTS = st.dictionaries(
    st.sampled_from(["mass", "length", "time", "current", "temperature"]),
    st.fractions(min_value=-4, max_value=4, max_denominator=3),
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(_EXPONENTS)
def test_format_dimension_round_trips(exponents: dict) -> None:
    dim = Dimension(1)
    for name, e in exponents.items():
        dim = dim * getattr(u, name) ** sp.Rational(e.numerator, e.denominator)
    text = format_dimension(dim)
    assert same_dimension(parse_dimension(text), dim)
    assert (text == "1") == all(e == 0 for e in exponents.values())


def test_format_dimension_examples() -> None:
    assert format_dimension("length/time") == "length/time"
    assert format_dimension(u.pressure) == "mass/(length*time**2)"
    assert format_dimension("1/time") == "1/time"
    assert format_dimension("length/length") == "1"
    assert format_dimension(u.energy) == "mass*length**2/time**2"


# -- the dimension walker, cross-checked against sympy.physics.units ---------------------------
SYMS = sp.symbols("a b c t m", positive=True)
WALK_DIMS = {"a": "length", "b": "length", "c": "length/time", "t": "time", "m": "mass"}


@st.composite
def consistent_exprs(draw, depth: int = 3):
    """Random expressions that are dimensionally consistent by construction."""
    a, b, c, t, m = SYMS
    if depth == 0:
        return draw(st.sampled_from([a, b, c, t, m, a / b, c * t]))
    left = draw(consistent_exprs(depth - 1))
    kind = draw(st.sampled_from(["mul", "pow", "add", "fun", "abs"]))
    if kind == "mul":
        return left * draw(consistent_exprs(depth - 1))
    if kind == "pow":
        return left ** draw(st.sampled_from([-2, -1, 2, 3, sp.Rational(1, 2), sp.Rational(-3, 2)]))
    if kind == "add":  # a second term of the same dimension: left times a dimensionless ratio
        ratio = draw(st.sampled_from([a / b, c * t / a, sp.Integer(3), b / (c * t)]))
        return left + draw(st.integers(1, 5)) * left.subs(a, b) * ratio
    if kind == "fun":
        fn = draw(st.sampled_from([sp.exp, sp.sin, sp.log, sp.atan, sp.cosh]))
        return left * fn(draw(st.sampled_from([a / b, c * t / b, t * c / a])))
    return sp.Abs(left - 2 * left.subs(a, b))


@settings(max_examples=60, deadline=None)
@given(consistent_exprs(), st.integers(0, 2**32 - 1))
def test_dimension_of_matches_sympy_units_at_random_quantities(expr, seed: int) -> None:
    assume(not expr.has(sp.zoo, sp.nan, sp.oo))  # e.g. 1/log(a/a) folds to zoo
    dim = dimension_of(expr, WALK_DIMS)
    quantity = _with_quantities(expr, WALK_DIMS, np.random.default_rng(seed))
    assert sp.simplify(_units_after_conversion(quantity) / _unit_of(dim)) == 1


@pytest.mark.parametrize(
    "text, term, dims",
    [
        ("exp(a)", "exp(a)", ("length",)),
        ("log(t)", "log(t)", ("time",)),
        ("sin(a/t)", "sin(a/t)", ("length/time",)),
        ("a + t", "t", ("time", "length")),
        ("a*t + c + b*t", "c", ("length/time", "length*time")),
        ("a**b", "a**b", ()),
        ("sqrt(a + a**2/b + t)", "t", ("time", "length")),
    ],
)
def test_dimension_of_names_the_offending_term(text: str, term: str, dims: tuple) -> None:
    expr = parse_expr(text, {str(s): s for s in SYMS})
    with pytest.raises(DimensionError) as info:
        dimension_of(expr, WALK_DIMS)
    assert info.value.term == term
    for dim in dims:
        assert dim in str(info.value)
    # and sympy.physics.units cannot make a number times one unit of it either
    if "exp" not in text and "log" not in text and "sin" not in text and "**b" not in text:
        quantity = _with_quantities(expr, WALK_DIMS, np.random.default_rng(0))
        with pytest.raises(AssertionError, match="is not a number times a unit"):
            _units_after_conversion(quantity)


def test_dimension_of_messages() -> None:
    x0, x1 = sp.symbols("x0 x1", real=True)
    with pytest.raises(
        DimensionError, match=r"argument of exp must be dimensionless.*length: exp\(x0\)$"
    ):
        dimension_of(sp.exp(x0), {"x0": "length"})
    with pytest.raises(
        DimensionError, match=r"cannot add time to length \(of x0\) in x0 \+ x1: x1$"
    ):
        dimension_of(x0 + x1, {x0: "length", x1: "time"})
    with pytest.raises(DimensionError, match="no dimension declared for symbol: x1"):
        dimension_of(x0 * x1, {"x0": "length"})
    assert format_dimension(dimension_of(sp.Integer(7), {})) == "1"
    assert format_dimension(dimension_of(x0**0.5, {x0: "length**2"})) == "length"


# -- problem dimensions ----------------------------------------------------------------------
def test_problem_dimensions_infers_and_checks_outputs_and_loss() -> None:
    p = mechanics()
    inferred = problem_dimensions(p, {k: v for k, v in MECH_DIMS.items() if k[0] not in "yL"})
    assert [format_dimension(d) for d in inferred.outputs] == ["length", "length"]
    assert format_dimension(inferred.loss) == "length**2"
    listed = problem_dimensions(
        p, {**{k: MECH_DIMS[k] for k in ("x0", "x1", "g", "h0", "h1")}, "outputs": ["length"] * 2}
    )
    assert listed.outputs == inferred.outputs


@pytest.mark.parametrize(
    "change, match",
    [
        ({"y1": "time"}, r"output y1 = g\*x1\*\*2/2 has dimension length, declared time"),
        ({"L": "energy"}, "the loss has dimension length\\*\\*2, declared mass"),
        ({"g": "length/time"}, "output y1"),
        ({"h1": "time"}, "cannot add"),
        ({"z": "length"}, "unknown names in the units.*: z"),
        ({"outputs": ["length", "length"]}, "declared twice"),
        ({"loss": "length**2"}, "declared twice"),
    ],
)
def test_problem_dimensions_errors(change: dict, match: str) -> None:
    with pytest.raises(DimensionError, match=match):
        problem_dimensions(mechanics(), {**MECH_DIMS, **change})


def test_missing_inputs_are_an_error_and_missing_params_dimensionless() -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0", "k*x1"], params={"k": 2})
    with pytest.raises(DimensionError, match="no dimension declared for input.*: x1"):
        problem_dimensions(p, {"x0": "length"})
    dims = problem_dimensions(p, {"x0": "length", "x1": "length"})  # k: dimensionless
    assert format_dimension(dims.outputs[1]) == "length"
    assert format_dimension(dims.symbols[p.param_symbols[0]]) == "1"
    with pytest.raises(DimensionError, match=r"cannot add time\*\*2 to length\*\*2"):
        problem_dimensions(p, {"x0": "length", "x1": "time"})
    numeric_target = Problem.from_strings(["x"], ["x"], target=[3])
    with pytest.raises(DimensionError, match="cannot add 1 to length"):
        problem_dimensions(numeric_target, {"x": "length"})


# -- check_units -----------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_mechanics_units_gd_inconsistent_others_dimensionless(rule) -> None:
    p = mechanics()
    report = check_units(p, rule, MECH_DIMS)
    x_dims, loss_dim = report.input_dimensions, parse_dimension("length**2")
    if rule.name == "gd":  # the chapter: GD needs [x_i]^2/[L] per component
        expected = [parse_dimension(d**2 / loss_dim) for d in x_dims]
        assert [format_dimension(d) for d in expected] == ["1", "time**2/length**2"]
        assert report.verdict is UnitsVerdict.INCONSISTENT and report.eta_dimension is None
        assert not report.consistent
        assert all(same_dimension(a, b) for a, b in zip(report.required_eta, expected))
        assert report.derivation[-1].startswith("inconsistent")
    else:
        assert report.verdict is UnitsVerdict.CONSISTENT and report.consistent
        assert format_dimension(report.eta_dimension) == "1"
        assert [format_dimension(d) for d in report.delta_dimensions] == ["length", "time"]
    assert report.branches == (2 if rule.name == "pg" else 1)
    assert report.rule == rule.name and report.inputs == ("x0", "x1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.verdict = UnitsVerdict.CONSISTENT  # type: ignore[misc]


@pytest.mark.parametrize("rule", ALL_RULES, ids=RULE_IDS)
def test_required_eta_gives_delta_the_units_of_x_with_real_quantities(rule) -> None:
    """Numeric twin: with η a quantity of the reported dimension, Δx_i comes out in x_i's unit."""
    p = mechanics()
    report = check_units(p, rule, MECH_DIMS)
    found = rule.delta(p)
    rng = np.random.default_rng(7)
    for branch in found if isinstance(found, tuple) else (found,):
        for i in range(p.n):
            need = report.required_eta[i]
            expr = branch[i].subs(ETA, sp.Rational(3, 10) * sp.Symbol("eta_q", positive=True))
            eta_q = sp.Symbol("eta_q", positive=True)
            for _ in range(3):
                quantity = _with_quantities(expr, MECH_DIMS, rng, extra={eta_q: need})
                unit = _units_after_conversion(quantity)
                assert sp.simplify(unit / _unit_of(report.input_dimensions[i])) == 1
                if rule.name == "gd" and i == 1:  # with a dimensionless η, GD's Δx1 is not a time
                    plain = _with_quantities(
                        branch[i].subs(ETA, sp.Rational(1, 10)), MECH_DIMS, rng
                    )
                    assert sp.simplify(_units_after_conversion(plain) / u.second) != 1


def test_gd_is_consistent_when_all_inputs_share_a_dimension() -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1"], loss="k*(y0**2 + y1**2)", params={"k": 2})
    dims = {"x0": "time", "x1": "time", "k": "energy/time**2"}
    report = check_units(p, rules.gd(ETA), dims)
    assert report.consistent
    assert format_dimension(report.eta_dimension) == "time**4/(mass*length**2)"  # [x]^2/[L]
    assert same_dimension(report.eta_dimension, parse_dimension("time**2/energy"))


def test_numeric_eta_is_replaced_by_a_symbol_and_zero_components_fit_any_eta() -> None:
    p = mechanics()
    assert check_units(p, rules.newton(0.5), MECH_DIMS).consistent
    assert not check_units(p, rules.gd(0.5), MECH_DIMS).consistent

    class Half:
        name = "half"

        def delta(self, problem):
            return sp.Matrix([0, -ETA * problem.inputs[1]])

    report = check_units(p, Half(), MECH_DIMS, eta=ETA)
    assert report.required_eta[0] is None and report.delta_dimensions[0] is None
    assert report.consistent and format_dimension(report.eta_dimension) == "1"
    assert "Δx0 = 0: any η" in report.derivation


def test_a_step_that_fits_no_eta_is_inconsistent_and_says_why() -> None:
    p = mechanics()

    class Odd:
        name = "odd"
        eta = ETA

        def delta(self, problem):
            x0, x1 = problem.inputs
            return sp.Matrix([-self.eta * x0 - self.eta**2 * x0**2, -self.eta * x1])

    report = check_units(p, Odd(), MECH_DIMS)
    assert not report.consistent and report.eta_dimension is None
    assert any(
        "Δx0 does not fit any η" in line and "cannot add" in line for line in report.derivation
    )

    class NoEta:
        name = "noeta"

        def delta(self, problem):
            return sp.Matrix([-problem.inputs[0], -problem.inputs[1] / 2])

    plain = check_units(p, NoEta(), MECH_DIMS)
    assert plain.consistent and any("no symbolic eta" in line for line in plain.derivation)


# -- units by the structure of the rule (no expanded Δx) and dimensioned numeric targets --------
UNITS_SPEC = {"m": "mass", "v": "velocity", "p_star": "momentum", "p_ref": "momentum"}
UNITS_SPEC |= {"E_star": "energy", "E_ref": "energy"}


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.name != "hig"], ids=str)
def test_units_by_structure_agree_with_the_expanded_check(rule) -> None:
    """Twin: the structural argument gives what walking every expanded Δx_i gives."""
    from scaleinv.analysis.units_structure import units_by_structure

    units_toml = Problem.from_strings(
        ["m", "v"], ["m*v", "m*v**2/2"],
        loss="((y0 - p_star)/p_ref)**2/2 + ((y1 - E_star)/E_ref)**2/2",
        params={"p_star": 6, "E_star": 9, "p_ref": 1, "E_ref": 1},
    )  # fmt: skip
    for p, table in ((mechanics(), MECH_DIMS), (units_toml, UNITS_SPEC)):
        dims = problem_dimensions(p, table)
        walked, structural = check_units(p, rule, dims), units_by_structure(p, rule.name, dims)
        assert structural.verdict is walked.verdict
        assert [format_dimension(d) for d in structural.required_eta] == [
            format_dimension(d) for d in walked.required_eta
        ]
        assert [format_dimension(d) for d in structural.delta_dimensions] == [
            format_dimension(d) for d in walked.delta_dimensions
        ]


def test_units_by_structure_refuses_hig() -> None:
    from scaleinv.analysis.units_structure import units_by_structure

    p = mechanics()
    with pytest.raises(ProblemError, match="hig's update do not follow from its structure"):
        units_by_structure(p, "hig", problem_dimensions(p, MECH_DIMS))


def test_a_numeric_target_takes_the_declared_dimension_only_with_the_default_loss() -> None:
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1**3/c**2"], target=[1.5, -2], params={"c": 2})
    dims = {"x0": "temperature", "x1": "temperature", "c": "temperature"}
    with pytest.raises(DimensionError, match="cannot add 1 to temperature"):
        problem_dimensions(p, dims)  # without it, the numbers are dimensionless
    found = problem_dimensions(p, {**dims, "target": "temperature"})
    assert format_dimension(found.loss) == "temperature**2"
    found = problem_dimensions(p, {**dims, "target": ["temperature", "temperature"]})
    assert format_dimension(found.loss) == "temperature**2"
    with pytest.raises(DimensionError, match="cannot add"):
        problem_dimensions(p, {**dims, "target": ["temperature", "length"]})
    with pytest.raises(DimensionError, match="needs one dimension or a list of 2"):
        problem_dimensions(p, {**dims, "target": ["temperature"]})
    q = Problem.from_strings(["x0"], ["x0"], loss="(y0 - 3)**4", target=[3])
    with pytest.raises(DimensionError, match="needs the loss ½"):
        problem_dimensions(q, {"x0": "temperature", "target": "temperature"})


# -- a dimensioned numeric target enters every update (the 2-link arm) --------------------------
ARM = ["l1*cos(q0) + l2*cos(q0 + q1)", "l1*sin(q0) + l2*sin(q0 + q1)"]
ARM_DIMS = {"q0": "1", "q1": "1", "l1": "length", "l2": "length"}


def _arm(target_as_params: bool) -> tuple[Problem, dict]:
    """The arm with target (1.2, 0.5) as numbers of dimension length, or as length params."""
    lengths = {"l1": 1, "l2": 0.8}
    if target_as_params:
        params = {**lengths, "t0": 1.2, "t1": 0.5}
        p = Problem.from_strings(["q0", "q1"], ARM, target=["t0", "t1"], params=params)
        return p, {**ARM_DIMS, "t0": "length", "t1": "length"}
    p = Problem.from_strings(["q0", "q1"], ARM, target=[1.2, 0.5], params=lengths)
    return p, {**ARM_DIMS, "target": "length"}


@pytest.mark.parametrize("name", ["gd", "newton", "ig"])
def test_a_dimensioned_numeric_target_gives_the_verdicts_of_the_target_as_params(name) -> None:
    """Twin: the numbers 1.2, 0.5 of dimension length check like params of that dimension."""
    numbers, params = _arm(False), _arm(True)
    found = [check_units(p, rules.REGISTRY[name](ETA), d) for p, d in (numbers, params)]
    assert found[0].verdict is found[1].verdict is UnitsVerdict.CONSISTENT
    assert [str(found[0].need(i)) for i in range(2)] == [str(found[1].need(i)) for i in range(2)]
    expected = "1/length**2" if name == "gd" else "1"  # [q]²/[L] with [L] = length²
    assert format_dimension(found[0].eta_dimension) == expected
    assert not any("cannot add" in line for line in found[0].derivation)
    # the problem the updates are checked on has the target's numbers as its values
    p, d = numbers
    dims = problem_dimensions(p, d)
    twin = dims.problem(p)
    assert [float(twin.params[t]) for t in dims.target] == [1.2, 0.5]
    x = {p.inputs[0]: 0.3, p.inputs[1]: -1.1}
    assert float(twin.loss_x.subs({**x, **twin.params})) == pytest.approx(
        float(p.loss_x.subs({**x, **p.params})), rel=1e-14
    )


def test_a_component_that_fits_no_eta_never_reads_any() -> None:
    p = mechanics()

    class Odd:
        name = "odd"
        eta = ETA

        def delta(self, problem):
            x0, x1 = problem.inputs
            return sp.Matrix([-self.eta * x0 - self.eta**2 * x0**2, 0 * x1])

    report = check_units(p, Odd(), MECH_DIMS)
    assert report.misfits == ("x0",) and not report.consistent
    assert report.need(0) == "none fits" and report.need(1) == "any"
    # the words verify and a notebook print for it
    from scaleinv.reports.spec_verdicts import SpecVerdict
    from scaleinv.reports.verdict_text import verdict_text

    row = SpecVerdict("odd", "Odd", "units", None, "inconsistent", False, False, report)
    assert verdict_text(row) == "[η] needed: x0: none fits, x1: any"


def test_an_input_named_l_is_that_input_not_the_loss() -> None:
    """Issue 17 (names kept apart): ``[units] L`` named the loss even where an input is called
    L (an inductance), which then got the loss's dimension and verify raised."""
    p = Problem.from_strings(["L", "C"], ["1/sqrt(L*C)"], target=[1000.0])
    dims = problem_dimensions(
        p, {"L": "mass*length**2/(time**2*current**2)", "C": "time**4*current**2/(mass*length**2)",
            "target": "1/time", "loss": "1/time**2"},
    )  # fmt: skip
    assert format_dimension(dims.symbols[p.inputs[0]]) == "mass*length**2/(time**2*current**2)"
    assert format_dimension(dims.outputs[0]) == "1/time"
    assert format_dimension(dims.loss) == "1/time**2"
