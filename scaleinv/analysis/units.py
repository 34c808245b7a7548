"""Physical dimensions of a problem and of each rule's update (the chapter's "Units" argument).

Dimensions are :class:`sympy.physics.units.Dimension` objects and are compared as exponent
dictionaries of the SI base dimensions (``dimsys_SI.get_dimensional_dependencies``), never as
unit scales. :func:`dimension_of` walks an expression and raises
:class:`~scaleinv.errors.DimensionError` naming the term that does not fit; :func:`check_units`
reports, per component of ``Δx``, which dimension the step size ``η`` would need: GD needs
``[x_i]²/[L]`` (no single ``η`` when the inputs differ), Newton, IG and PG a dimensionless one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeAlias

import sympy as sp
from sympy.functions.elementary import hyperbolic as _h
from sympy.functions.elementary import trigonometric as _t
from sympy.physics.units import Dimension
from sympy.physics.units.definitions import dimension_definitions as _defs
from sympy.physics.units.systems.si import dimsys_SI

from scaleinv.errors import DimensionError, ParseError, SpecError, did_you_mean
from scaleinv.symbolic import Problem, parse_expr
from scaleinv.symbolic.problem import squared_distance

__all__ = ["DIMENSION_NAMES", "DIMENSIONLESS", "parse_dimension", "dimension_of", "same_dimension"]
__all__ += ["check_unit_table"]
__all__ += ["format_dimension", "Dimensions", "problem_dimensions", "UnitsVerdict", "UnitsReport"]
__all__ += ["check_units"]

DIMENSIONLESS = Dimension(1)
_ONE = sp.Integer(1)
_BASE = "mass length time current temperature amount_of_substance luminous_intensity".split()
_DERIVED = """velocity acceleration momentum force energy power pressure frequency action area
volume charge voltage capacitance conductance impedance inductance magnetic_density magnetic_flux"""

#: The names a dimension string may use: SI base and derived dimensions; ``angle`` and
#: ``dimensionless`` mean 1 (radians are dimensionless in SI).
DIMENSION_NAMES: Mapping[str, Dimension] = MappingProxyType(
    {
        **{name: getattr(_defs, name) for name in (*_BASE, *_DERIVED.split())},
        "angle": DIMENSIONLESS,
        "dimensionless": DIMENSIONLESS,
    }
)
_TRANSCENDENTAL: tuple[Any, ...] = (sp.exp, sp.log, _t.TrigonometricFunction)
_TRANSCENDENTAL += (_t.InverseTrigonometricFunction,)
_TRANSCENDENTAL += (_h.HyperbolicFunction, _h.InverseHyperbolicFunction)
_Deps = dict[str, sp.Rational]
DimLike: TypeAlias = Dimension | str | int


def _deps(dim: Dimension) -> _Deps:
    found = dimsys_SI.get_dimensional_dependencies(dim)
    return {str(k.name): sp.Rational(v) for k, v in found.items() if v != 0}


def _ordered(deps: _Deps) -> list[str]:
    return sorted(deps, key=lambda n: (_BASE.index(n) if n in _BASE else len(_BASE), n))


def _key(deps: _Deps) -> tuple[tuple[str, sp.Rational], ...]:
    return tuple(sorted(deps.items()))


def _dimension(deps: _Deps) -> Dimension:
    names = _ordered(deps)
    return Dimension(sp.Mul(*(sp.Symbol(n) ** deps[n] for n in names))) if names else DIMENSIONLESS


def _mul(a: _Deps, b: _Deps, power: sp.Rational = _ONE) -> _Deps:
    out = dict(a)
    for name, exp in b.items():
        out[name] = out.get(name, sp.Integer(0)) + exp * power
    return {k: v for k, v in out.items() if v != 0}


def parse_dimension(value: DimLike) -> Dimension:
    """A :class:`Dimension` from a string such as ``"mass*length**2/time**2"``, ``"1"`` or a
    Dimension; strings are parsed by the allow-list parser over :data:`DIMENSION_NAMES`.

    Examples
    --------
    >>> parse_dimension("length/time**2")
    Dimension(length/time**2)
    >>> format_dimension(parse_dimension("energy/velocity"))
    'mass*length/time'
    """
    if isinstance(value, Dimension):
        return _dimension(_deps(value))
    if isinstance(value, int) and not isinstance(value, bool) and value == 1:
        return DIMENSIONLESS
    if not isinstance(value, str):
        raise DimensionError(repr(value), "a dimension must be a string or a Dimension")
    text = value.strip()
    if text in ("", "1", "dimensionless"):
        return DIMENSIONLESS
    try:
        expr = parse_expr(text, {n: sp.Symbol(n) for n in DIMENSION_NAMES})
    except ParseError as err:
        if err.reason.startswith("unknown name"):
            hint = did_you_mean(err.offending, DIMENSION_NAMES)
            hint = hint or f" (known: {', '.join(DIMENSION_NAMES)})"
            raise DimensionError(text, f"unknown dimension {err.offending!r}{hint}") from None
        raise DimensionError(text, f"not a dimension ({err.reason}: {err.offending!r})") from None

    def build(node: sp.Expr) -> _Deps:
        if isinstance(node, sp.Symbol):
            return _deps(DIMENSION_NAMES[node.name])
        if isinstance(node, sp.Mul):
            out: _Deps = {}
            for arg in node.args:
                out = _mul(out, build(arg))
            return out
        if isinstance(node, sp.Pow) and node.exp.is_Rational:
            return _mul({}, build(node.base), node.exp)
        if node == 1:
            return {}
        raise DimensionError(text, f"not a product of powers of dimensions ({node})")

    return _dimension(build(expr))


def same_dimension(a: DimLike, b: DimLike) -> bool:
    """Whether two dimensions agree (as SI exponents, e.g. energy == force*length)."""
    return _deps(parse_dimension(a)) == _deps(parse_dimension(b))


def format_dimension(dim: DimLike) -> str:
    """``"length/time"``, ``"mass/(length*time**2)"``, ``"1/time"`` or ``"1"``.

    Examples
    --------
    >>> format_dimension("force/area")
    'mass/(length*time**2)'
    """
    deps = _deps(parse_dimension(dim))
    names = _ordered(deps)

    def factor(name: str, exp: sp.Rational) -> str:
        return name if exp == 1 else f"{name}**{exp}" if exp.is_Integer else f"{name}**({exp})"

    num = [factor(n, deps[n]) for n in names if deps[n] > 0]
    den = [factor(n, -deps[n]) for n in names if deps[n] < 0]
    top, bottom = "*".join(num) or "1", "*".join(den)
    return top if not den else f"{top}/{bottom}" if len(den) == 1 else f"{top}/({bottom})"


def dimension_of(expr: sp.Expr, dims: Mapping[sp.Symbol | str, DimLike]) -> Dimension:
    """The dimension of ``expr`` given the dimensions of its symbols (by symbol or name).

    Terms of a sum must agree; ``exp``, ``log``, trigonometric and hyperbolic functions need a
    dimensionless argument and give a dimensionless result; powers need a rational exponent
    unless base and exponent are dimensionless; numbers are dimensionless.

    Raises
    ------
    DimensionError
        Naming the offending term (and both dimensions for a sum).

    Examples
    --------
    >>> x, t = sp.symbols("x t", real=True)
    >>> format_dimension(dimension_of(x / t**2 + 3 * x / t**2, {x: "length", t: "time"}))
    'length/time**2'
    >>> dimension_of(sp.exp(x), {x: "length"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    scaleinv.errors.DimensionError: the argument of exp must be dimensionless, ...: exp(x)
    """
    table: dict[Any, _Deps] = {}
    for key, value in dims.items():
        table[key if isinstance(key, sp.Symbol) else str(key)] = _deps(parse_dimension(value))
    return _dimension(_walk(sp.sympify(expr, strict=True), table))


def _walk(expr: sp.Expr, table: Mapping[Any, _Deps]) -> _Deps:
    if not expr.free_symbols:
        return {}
    if isinstance(expr, sp.Symbol):
        found = table.get(expr, table.get(expr.name))
        if found is None:
            raise DimensionError(expr.name, "no dimension declared for symbol")
        return found
    if isinstance(expr, (sp.Add, sp.Min, sp.Max, sp.Piecewise)):
        terms = [a.expr for a in expr.args] if isinstance(expr, sp.Piecewise) else expr.args
        per_term = [_walk(t, table) for t in terms]
        keyed = [_key(d) for d in per_term]
        # the majority dimension among terms with symbols is right; the odd one out is named
        symbolic = [k for k, t in zip(keyed, terms) if t.free_symbols] or keyed
        ref = max(symbolic, key=keyed.count)
        for term, key, deps in zip(terms, keyed, per_term):
            if key != ref:
                first = terms[keyed.index(ref)]
                a, b = format_dimension(_dimension(dict(ref))), format_dimension(_dimension(deps))
                how = f"add {b} to" if isinstance(expr, sp.Add) else f"mix {b} with"
                raise DimensionError(str(term), f"cannot {how} {a} (of {first}) in {expr}")
        return per_term[0]
    if isinstance(expr, sp.Mul):
        out: _Deps = {}
        for arg in expr.args:
            out = _mul(out, _walk(arg, table))
        return out
    if isinstance(expr, sp.Pow):
        base, exp = _walk(expr.base, table), expr.exp
        if exp.is_Rational:
            return _mul({}, base, exp)
        if exp.is_Float:
            return _mul({}, base, sp.nsimplify(exp, rational=True))
        if base or _walk(exp, table):
            raise DimensionError(str(expr), "a non-rational power needs a dimensionless base")
        return {}
    if isinstance(expr, (sp.Abs, sp.re, sp.im, sp.conjugate)):
        return _walk(expr.args[0], table)
    if isinstance(expr, sp.sign):
        _walk(expr.args[0], table)
        return {}
    if isinstance(expr, _TRANSCENDENTAL):
        if isinstance(expr, sp.atan2):
            _walk(expr.args[0] + expr.args[1], table)  # the two lengths of atan2 must agree
            return {}
        for arg in expr.args:
            inner = _walk(arg, table)
            if inner:
                name = type(expr).__name__
                why = f"the argument of {name} must be dimensionless, but it has dimension"
                raise DimensionError(str(expr), f"{why} {format_dimension(_dimension(inner))}")
        return {}
    raise DimensionError(str(expr), f"cannot tell the dimension of a {type(expr).__name__}")


@dataclass(frozen=True)
class Dimensions:
    """The checked dimensions of a problem (see :func:`problem_dimensions`).

    ``symbols`` maps every input and param symbol to its dimension; ``outputs`` gives
    ``[y_i]`` and ``loss`` ``[L]``. A numeric target declared with a dimension becomes the
    symbols ``target`` (also in ``symbols``), whose values are the target's numbers: every
    update is then checked on :meth:`problem`, where they stand in for the numbers.
    """

    symbols: Mapping[sp.Symbol, Dimension]
    outputs: tuple[Dimension, ...]
    loss: Dimension
    target: tuple[sp.Symbol, ...] = ()

    def problem(self, problem: Problem) -> Problem:
        """``problem`` with its numeric target replaced by :attr:`target` (params of the
        target's values), so that the target's numbers carry their dimension in every
        derivative; ``problem`` itself when no target dimension was declared."""
        if not self.target:
            return problem
        values = {s: float(t.subs(problem.params)) for s, t in zip(self.target, problem.target)}
        params = {**problem.params, **values}
        return Problem(problem.inputs, problem.outputs, None, self.target, params)


def check_unit_table(units: Mapping[str, Any], source: str, table: str = "units") -> None:
    """Parse every dimension of a ``[units]`` table (or ``--units``), so that a typo is a
    :class:`SpecError` naming the file and the key; whether they fit the problem is
    :func:`problem_dimensions`'s to check.

    Examples
    --------
    >>> check_unit_table({"x0": "angel"}, "spec.toml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    scaleinv.errors.SpecError: spec.toml: [units.x0] unknown dimension 'angel' (did you mean ...?)
    """
    for key, value in units.items():
        entries = value if isinstance(value, (list, tuple)) else [value]
        for i, entry in enumerate(entries):
            where = f"{table}{' ' if table.startswith('-') else '.'}{key}"
            where += f"[{i}]" if entries is value else ""
            try:
                parse_dimension(entry)
            except DimensionError as err:
                raise SpecError(source, where, err.reason) from None


def problem_dimensions(problem: Problem, dims: Mapping[str, Any]) -> Dimensions:
    """Check and complete the dimensions ``dims`` declares for ``problem``.

    ``dims`` maps input names (all required), param names (missing ones are dimensionless),
    ``"y0" .. "y{m-1}"`` or ``"outputs"`` (a list) and ``"L"`` or ``"loss"`` to dimension
    strings or Dimensions; undeclared outputs and loss are inferred from ``P`` and ``L``. An
    input or param of one of those names (an inductance ``L``) is that symbol, not the key.
    A numeric target other than 0 is dimensionless, unless ``"target"`` gives its dimension
    (one for every entry, or a list): with the default loss ``½|y − y*|²`` the numbers ``y*``
    then carry it (a measured state of 256 temperatures, say); else give a dimensioned target
    as a param.

    Raises
    ------
    DimensionError
        For a missing input, an unknown or repeated key, or ``P``/``L`` not fitting.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "g*x1**2/2"], params={"g": 9.81})
    >>> d = problem_dimensions(p, {"x0": "length", "x1": "time", "g": "length/time**2"})
    >>> [format_dimension(o) for o in d.outputs], format_dimension(d.loss)
    (['length', 'length'], 'length**2')
    >>> q = Problem.from_strings(["T"], ["T"], target=[300])
    >>> format_dimension(problem_dimensions(q, {"T": "temperature", "target": "temperature"}).loss)
    'temperature**2'
    """
    names = {str(s): s for s in (*problem.inputs, *problem.params)}
    ys = [str(y) for y in problem.output_symbols]
    # The problem's own names win: an input or param named L (an inductance) is that symbol,
    # and the loss's dimension is then given as "loss".
    special = {k: k not in names for k in ("outputs", "L", "loss", "target")}
    known = [*names, *ys, *(k for k, free in special.items() if free)]
    unknown = sorted(set(dims) - set(known))
    if unknown:
        raise DimensionError(", ".join(unknown), f"unknown names in the units; known: {known}")
    for pair in (["L", "loss"], ["outputs", *ys]):
        if special[pair[0]] and pair[0] in dims and set(pair[1:]) & set(dims):
            raise DimensionError(", ".join(pair), "declared twice in the units")
    missing = [str(s) for s in problem.inputs if str(s) not in dims]
    if missing:
        raise DimensionError(", ".join(missing), "no dimension declared for input(s)")
    table = {s: parse_dimension(dims.get(n, 1)) for n, s in names.items()}
    declared = [dims.get(y) for y in ys]
    if special["outputs"]:
        declared = dims.get("outputs", declared)
    if isinstance(declared, (str, Dimension)) or len(declared) != problem.m:
        raise DimensionError("outputs", f"needs a list of {problem.m} dimensions, got {declared!r}")
    outputs = []
    for i, (expr, want) in enumerate(zip(problem.outputs, declared)):
        outputs.append(_checked(expr, table, want, f"output y{i} = {expr}"))
    want = next((dims[k] for k in ("L", "loss") if special[k] and k in dims), None)
    at_y = {**table, **dict(zip(problem.output_symbols, outputs))}
    loss, targets = problem.loss, {}
    if special["target"] and "target" in dims:
        targets = _dimensioned_target(problem, dims["target"])
        loss = squared_distance(problem.output_symbols, list(targets))
        at_y.update(targets)
    loss_dim = _checked(loss, at_y, want, "the loss")
    return Dimensions({**table, **targets}, tuple(outputs), loss_dim, tuple(targets))


def _dimensioned_target(problem: Problem, declared: Any) -> dict[sp.Symbol, Dimension]:
    """The target's numbers as symbols (``y0_star``, ...) of the declared dimensions."""
    m = problem.m
    if isinstance(declared, (str, Dimension)):
        declared = [declared] * m
    if not isinstance(declared, (list, tuple)) or len(declared) != m:
        raise DimensionError("target", f"needs one dimension or a list of {m}, got {declared!r}")
    if not problem.has_default_loss:
        raise DimensionError("target", "a dimension of the target needs the loss ½|y − y*|²")
    stars = [sp.Dummy(f"{y}_star", real=True) for y in problem.output_symbols]
    return {t: parse_dimension(d) for t, d in zip(stars, declared)}


def _checked(expr: sp.Expr, table: Mapping[Any, DimLike], want: Any, what: str) -> Dimension:
    have = dimension_of(expr, table)
    if want is not None and not same_dimension(have, want):
        found = f"{what} has dimension {format_dimension(have)}"
        raise DimensionError(str(expr), f"{found}, declared {format_dimension(want)}")
    return have


class UnitsVerdict(StrEnum):
    """Whether one step size ``η`` gives every component of ``Δx`` the dimension of ``x``."""

    CONSISTENT = "consistent"
    INCONSISTENT = "inconsistent"


@dataclass(frozen=True)
class UnitsReport:
    """What :func:`check_units` found for one rule.

    Attributes
    ----------
    rule : str
        The rule's name.
    inputs, input_dimensions : tuple
        The input names and ``[x_i]``.
    delta_dimensions : tuple of Dimension or None
        ``[Δx_i/η]`` (the rate at ``η → 0`` for PG); None where ``Δx_i ≡ 0`` or it has none.
    required_eta : tuple of Dimension or None
        ``[x_i]/[Δx_i/η]``, the dimension ``η`` needs for component i; None where any fits
        (``Δx_i ≡ 0``) or none does (see ``misfits`` and :meth:`need`).
    eta_dimension : Dimension or None
        The one dimension that fits every component (dimensionless when any fits), or None.
    verdict : UnitsVerdict
    derivation : tuple of str
        The argument, one step per line.
    branches : int
        How many ``Δx`` formulas were checked (PG: one per inverse branch).
    misfits : tuple of str
        The inputs whose ``Δx_i`` has the dimension of ``x_i`` for no ``η``.
    """

    rule: str
    inputs: tuple[str, ...]
    input_dimensions: tuple[Dimension, ...]
    delta_dimensions: tuple[Dimension | None, ...]
    required_eta: tuple[Dimension | None, ...]
    eta_dimension: Dimension | None
    verdict: UnitsVerdict
    derivation: tuple[str, ...]
    branches: int = 1
    misfits: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        """True when a single ``η`` fits all components."""
        return self.verdict is UnitsVerdict.CONSISTENT

    def need(self, i: int) -> Dimension | str:
        """What component ``i`` needs of ``η``: a dimension, ``"any"`` (``Δx_i ≡ 0``) or
        ``"none fits"``."""
        if self.inputs[i] in self.misfits:
            return "none fits"
        found = self.required_eta[i]
        return "any" if found is None else found


def check_units(
    problem: Problem, rule: Any, dims: Dimensions | Mapping[str, Any], *, eta: Any = None
) -> UnitsReport:
    """Which dimension ``rule``'s step size needs for each component of its ``Δx``.

    ``rule`` is any object with ``name`` and ``delta(problem)`` (a Matrix, or a tuple of them
    for PG), such as ``scaleinv.rules.gd(eta)``. ``eta`` (default ``rule.eta``) should be a
    SymPy symbol; a numeric ``eta`` of a dataclass rule is replaced by one. Per component, the
    rate ``r_i = ∂Δx_i/∂η`` at ``η = 0`` (exactly ``Δx_i/η`` for GD, Newton and IG) fixes
    ``[η] = [x_i]/[r_i]``; the whole ``Δx_i`` is then walked with that ``[η]`` and must have
    the dimension of ``x_i`` (``η`` inside PG's ``P⁻¹`` forces a dimensionless one).

    Examples
    --------
    >>> from scaleinv import rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "g*x1**2/2"], params={"g": 9.81})
    >>> r = check_units(p, rules.gd(0.1), {"x0": "length", "x1": "time", "g": "length/time**2"})
    >>> r.verdict, [format_dimension(d) for d in r.required_eta]
    (<UnitsVerdict.INCONSISTENT: 'inconsistent'>, ['1', 'time**2/length**2'])
    """
    table = dims if isinstance(dims, Dimensions) else problem_dimensions(problem, dims)
    problem = table.problem(problem)
    eta = getattr(rule, "eta", None) if eta is None else eta
    is_instance = dataclasses.is_dataclass(rule) and not isinstance(rule, type)
    if eta is not None and not isinstance(eta, sp.Symbol) and is_instance:
        eta = sp.Dummy("eta", positive=True)
        rule = dataclasses.replace(rule, eta=eta)
    found = rule.delta(problem)
    branches = found if isinstance(found, tuple) else (found,)
    lines = [f"[{x}] = {format_dimension(table.symbols[x])}" for x in problem.inputs]
    lines += [f"[y{i}] = {format_dimension(d)}" for i, d in enumerate(table.outputs)]
    lines.append(f"[L] = {format_dimension(table.loss)}")
    if not isinstance(eta, sp.Symbol) or eta in table.symbols:
        lines.append("the rule has no symbolic eta: Δx itself must have the dimension of x")
        eta = sp.Dummy("eta")
        branches = tuple(eta * b for b in branches)
    walk = {s: _deps(d) for s, d in table.symbols.items()}
    rates, needs, misfits = [], [], []
    for i, x in enumerate(problem.inputs):
        seen, fits = [], True
        for b, delta in enumerate(branches):
            note = f" [branch {b}]" if len(branches) > 1 else ""
            d = sp.sympify(delta[i], strict=True)
            if d == 0:
                lines.append(f"Δ{x} = 0: any η{note}")
                continue
            pair = _component(d, eta, walk, x, note, lines)
            fits = fits and pair is not None
            seen += [pair] if pair else []
        if len({_key(need) for _, need in seen}) > 1:
            lines.append(f"the branches of Δ{x} need different η")
            fits = False
        if not fits:
            misfits.append(str(x))
        rates.append(_dimension(seen[0][0]) if seen else None)
        needs.append(_dimension(seen[0][1]) if seen and fits else None)
    kinds = {_key(_deps(n)) for n in needs if n is not None}
    eta_dim = None if misfits or len(kinds) > 1 else _dimension(dict(kinds.pop()) if kinds else {})
    if eta_dim is None:
        lines.append("inconsistent: no single η gives every Δx_i the dimension of x_i")
    else:
        lines.append(f"consistent: one η of dimension {format_dimension(eta_dim)} fits every Δx_i")
    return UnitsReport(
        rule=str(getattr(rule, "name", type(rule).__name__)),
        inputs=tuple(str(x) for x in problem.inputs),
        input_dimensions=tuple(table.symbols[x] for x in problem.inputs),
        delta_dimensions=tuple(rates),
        required_eta=tuple(needs),
        eta_dimension=eta_dim,
        verdict=UnitsVerdict.INCONSISTENT if eta_dim is None else UnitsVerdict.CONSISTENT,
        derivation=tuple(lines),
        branches=len(branches),
        misfits=tuple(misfits),
    )


def _component(
    d: sp.Expr, eta: sp.Symbol, walk: dict[Any, _Deps], x: sp.Symbol, note: str, lines: list[str]
) -> tuple[_Deps, _Deps] | None:
    """``([rate], [η needed])`` of one nonzero component ``Δx = d``, or None if none fits."""
    rate = sp.diff(d, eta)
    if eta in rate.free_symbols:
        rate = rate.subs(eta, 0)
    if rate == 0 or rate.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        lines.append(f"Δ{x} = {_short(d)} has no finite first-order rate in η{note}")
        return None
    try:
        rate_deps = _walk(rate, walk)
        need = _mul(walk[x], rate_deps, -1)
        lines.append(
            f"Δ{x}/η = {_short(rate)} has dimension {format_dimension(_dimension(rate_deps))}, "
            f"so η needs {format_dimension(_dimension(need))}{note}"
        )
        full = _walk(d, {**walk, eta: need})
    except DimensionError as err:
        lines.append(f"Δ{x} does not fit any η{note}: {err}")
        return None
    if full != walk[x]:
        lines.append(f"Δ{x} has dimension {format_dimension(_dimension(full))} with that η{note}")
        return None
    return rate_deps, need


def _short(expr: sp.Expr, limit: int = 160) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 1] + "…"
