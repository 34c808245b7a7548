"""``P(x) = y`` as polynomial equations: each angle's cos and sin as unknowns on the unit circle
(each hyperbolic angle's cosh and sinh on the unit hyperbola).

A mechanism or a change of coordinates uses its angles only through ``cos`` and ``sin`` (of
sums such as ``q0 + q1``, of multiples such as ``2 a``), and maybe through outputs that add
angles up (an end orientation ``q0 + q1 + q2``); a rapidity or a log-scale input appears only
through ``cosh``, ``sinh``, ``tanh`` and ``exp`` in the same way. :func:`polynomial_system`
turns such a ``P(x) = y`` into polynomial equations:

* an output that is affine in the inputs fixes one input (a *pivot*, e.g. ``q2 = y2 − q0 −
  q1``), which is substituted into the other outputs;
* each remaining angle ``x`` appears as ``cos``/``sin`` of whole multiples of ``t = u x``
  (``u`` the largest such unit); the addition formulas (through ``(c + i s)^k``) write them as
  polynomials in ``c = cos t``, ``s = sin t``, with ``c² + s² = 1``;
* each hyperbolic angle likewise, through ``exp(k t) = (c + s)^k`` with ``c = cosh t``,
  ``s = sinh t`` and ``c² − s² = 1`` (``exp(−t) = c − s``);
* the other inputs must appear polynomially (rational outputs are multiplied out).

The solutions then repeat: each angle by its period ``2π/u`` — jointly with the pivots where
a pivot depends on it (:attr:`PolynomialSystem.joint`); hyperbolic angles do not repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sympy as sp

if TYPE_CHECKING:  # at run time problem -> inverse -> here: no cycle
    from scaleinv.symbolic.problem import Problem

__all__ = ["Angle", "NotPolynomial", "PolynomialSystem", "polynomial_system", "has_angles"]

_CIRCULAR = (sp.sin, sp.cos, sp.tan)
_HYPERBOLIC = (sp.sinh, sp.cosh, sp.tanh, sp.exp)
_TRIG = _CIRCULAR + _HYPERBOLIC


class NotPolynomial(Exception):
    """``P(x) = y`` is not of the form :func:`polynomial_system` handles; the message says why."""


@dataclass(frozen=True)
class Angle:
    """An input that ``P`` uses through ``cos`` and ``sin`` of whole multiples of ``unit * x``
    (``hyperbolic``: through ``cosh``, ``sinh``, ``tanh`` and ``exp``).

    Attributes
    ----------
    input : Symbol
    unit : Expr
        ``u``: every trigonometric argument holds ``x`` as an integer multiple of ``u x``.
    cos, sin : Symbol
        The unknowns standing for ``cos(u x)`` and ``sin(u x)`` (``cosh``, ``sinh``).
    hyperbolic : bool
        The unknowns lie on the unit hyperbola ``c² − s² = 1`` (its branch ``c ≥ 1``) instead
        of the unit circle.
    """

    input: sp.Symbol
    unit: sp.Expr
    cos: sp.Symbol
    sin: sp.Symbol
    hyperbolic: bool = False

    @property
    def period(self) -> sp.Expr | None:
        """``2π/u``; None for a hyperbolic angle."""
        return None if self.hyperbolic else 2 * sp.pi / self.unit

    @property
    def curve(self) -> sp.Expr:
        """The polynomial that vanishes on the unknowns: ``c² ± s² − 1``."""
        return self.cos**2 + (-1 if self.hyperbolic else 1) * self.sin**2 - 1

    def square(self, v: sp.Symbol, other: sp.Expr) -> sp.Expr:
        """``v²`` (``v`` the cos or sin unknown) on the curve where the other one is ``other``."""
        if not self.hyperbolic:
            return 1 - other**2
        return 1 + other**2 if v == self.cos else other**2 - 1


@dataclass(frozen=True)
class PolynomialSystem:
    """Polynomial equations equivalent to ``P(x) = y``.

    Attributes
    ----------
    inputs : tuple of Symbol
        The inputs of ``P``.
    equations : tuple of Expr
        Polynomials in :attr:`unknowns` whose coefficients are rational functions of the
        params, the output symbols and :attr:`knowns`; all vanish exactly at the solutions.
    unknowns : tuple of Symbol
        The inputs that are neither angles nor pivots, then each angle's ``cos`` and ``sin``.
    angles : tuple of Angle
    pivots : dict of Symbol to Expr
        Inputs fixed by affine outputs, in the output symbols, params and the other inputs.
    knowns : dict of Symbol to Expr
        Symbols standing for whole coefficients that are not rational functions of symbols
        (``y0 - l3*cos(y2)``, ``sqrt(3)*b/2``), with what they stand for. Solving with them
        as independent symbols is solving a more general system; its solutions specialize.
    period : tuple of (Expr or None)
        Per input, its period when it shifts alone (angles no pivot depends on).
    joint : tuple of tuple of Expr
        Shifts of all inputs (numbers) that map solutions to solutions: an angle some pivot
        depends on moves by its period and the pivots move with it.
    """

    inputs: tuple[sp.Symbol, ...]
    equations: tuple[sp.Expr, ...]
    unknowns: tuple[sp.Symbol, ...]
    angles: tuple[Angle, ...]
    pivots: dict[sp.Symbol, sp.Expr]
    knowns: dict[sp.Symbol, sp.Expr]
    period: tuple[sp.Expr | None, ...]
    joint: tuple[tuple[sp.Expr, ...], ...]


def has_angles(problem: Problem) -> bool:
    """Whether an output applies ``sin``, ``cos``, ``tan`` or their hyperbolic counterparts
    (or ``exp``) to an input."""
    return any(f.has(*problem.inputs) for p in problem.outputs for f in p.atoms(*_TRIG))


def polynomial_system(problem: Problem) -> PolynomialSystem:
    """The polynomial form of ``P(x) = y``; raises :class:`NotPolynomial` saying why not.

    Examples
    --------
    >>> from scaleinv.symbolic import Problem
    >>> p = Problem.from_strings(["r", "t"], ["r*cos(t)", "r*sin(t)"])
    >>> system = polynomial_system(p)
    >>> system.unknowns
    (r, _c_t, _s_t)
    >>> system.equations[2]
    _c_t**2 + _s_t**2 - 1
    >>> system.period
    (None, 2*pi)
    """
    xs, ys = problem.inputs, problem.output_symbols
    outputs = [sp.sympify(p) for p in problem.outputs]
    for p in outputs:
        _check_functions(p, xs)
    in_trig = {x for p in outputs for f in p.atoms(*_TRIG) for x in f.free_symbols & set(xs)}
    linear = [k for k, p in enumerate(outputs) if _is_affine(p, xs) and p.has(*in_trig)]
    pivots = _pivots([outputs[k] - ys[k] for k in linear], xs, in_trig)
    rest = [k for k in range(problem.m) if k not in linear]
    remaining = [outputs[k].xreplace(pivots) for k in rest]
    free = [x for x in xs if x not in pivots]
    angles = _angles(remaining, free)
    plain = [x for x in free if x not in {a.input for a in angles}]
    if len(rest) != len(plain) + len(angles):
        raise NotPolynomial(
            f"after the {len(pivots)} affine output(s), {len(rest)} equation(s) remain for "
            f"{len(plain) + len(angles)} unknown input(s): the solutions are not isolated"
        )
    to_poly = {f: _expand_trig(f, angles) for p in remaining for f in p.atoms(*_TRIG)}
    unknowns = (*plain, *(s for a in angles for s in (a.cos, a.sin)))
    knowns: dict[sp.Expr, sp.Symbol] = {}
    equations = []
    for p, y in zip(remaining, (ys[k] for k in rest)):
        numer = sp.fraction(sp.together(p.xreplace(to_poly) - y))[0]
        equations.append(_polynomial(sp.expand(numer), unknowns, xs, knowns))
    equations += [a.curve for a in angles]
    period, joint = _periods(xs, angles, pivots)
    return PolynomialSystem(
        inputs=xs,
        equations=tuple(equations),
        unknowns=unknowns,
        angles=tuple(angles),
        pivots=pivots,
        knowns={s: e for e, s in knowns.items()},
        period=period,
        joint=joint,
    )


def _check_functions(p: sp.Expr, xs: tuple[sp.Symbol, ...]) -> None:
    for node in sp.preorder_traversal(p):
        if not node.has(*xs) or isinstance(node, (sp.Symbol, sp.Add, sp.Mul, *_TRIG)):
            continue
        if isinstance(node, sp.Pow) and node.exp.is_Integer and not node.exp.has(*xs):
            continue
        raise NotPolynomial(
            f"{node} is neither polynomial in the inputs nor a cos, sin, tan, cosh, sinh, tanh "
            "or exp of angles"
        )


def _is_affine(p: sp.Expr, xs: tuple[sp.Symbol, ...]) -> bool:
    if any(f.has(*xs) for f in p.atoms(*_TRIG)):
        return False
    return all(not p.diff(x).has(*xs) for x in xs)


def _pivots(rows: list[sp.Expr], xs: tuple, in_trig: set) -> dict[sp.Symbol, sp.Expr]:
    """Solve the affine outputs for one input each, preferring inputs outside ``cos``/``sin``
    and then later inputs (an arm's distal joint takes its end orientation)."""
    preference = [x for x in reversed(xs) if x not in in_trig]
    preference += [x for x in reversed(xs) if x in in_trig]
    pivots: dict[sp.Symbol, sp.Expr] = {}
    for row in rows:
        row = sp.expand(row.xreplace(pivots))
        pivot = next((x for x in preference if row.has(x)), None)
        if pivot is None:
            raise NotPolynomial("the affine outputs depend on each other: no isolated solutions")
        coeff = row.diff(pivot)
        value = sp.expand(pivot - row / coeff)
        pivots = {x: sp.expand(v.xreplace({pivot: value})) for x, v in pivots.items()}
        pivots[pivot] = value
    return pivots


def _angles(outputs: list[sp.Expr], free: list[sp.Symbol]) -> list[Angle]:
    """The angles of ``outputs``: inputs used only through cos/sin/tan of affine arguments
    (hyperbolic ones: through cosh/sinh/tanh/exp)."""
    atoms = {f for p in outputs for f in p.atoms(*_TRIG) if f.has(*free)}
    used = [x for x in free if any(f.has(x) for f in atoms)]
    bare = [p.xreplace({f: sp.Dummy() for f in atoms}) for p in outputs]
    for x in used:
        if any(b.has(x) for b in bare):
            raise NotPolynomial(f"{x} appears both inside and outside cos/sin/tan/cosh/sinh/exp")
    hyperbolic = {x for f in atoms if isinstance(f, _HYPERBOLIC) for x in f.free_symbols}
    for f in atoms:
        mixed = (f.free_symbols & hyperbolic) if isinstance(f, _CIRCULAR) else set()
        if mixed:
            raise NotPolynomial(
                f"{', '.join(map(str, mixed))} appears in both {f} and a "
                "hyperbolic function (cosh/sinh/tanh/exp)"
            )
    angles = []
    for x in used:
        coeffs = []
        for f in sorted(atoms, key=sp.default_sort_key):
            arg = f.args[0]
            a = arg.diff(x)
            if a.has(*used) or sp.expand(arg - a * x).has(x):
                raise NotPolynomial(f"the argument of {f} is not affine in the angles")
            if a != 0:
                coeffs.append(a)
        ratios = [sp.nsimplify(c / coeffs[0]) for c in coeffs]
        if not all(r.is_Rational for r in ratios):
            raise NotPolynomial(f"{x} has incommensurate frequencies {coeffs}: no common period")
        unit = coeffs[0] * sp.gcd_list(ratios) if len(ratios) > 1 else coeffs[0]
        unit = -unit if unit.could_extract_minus_sign() else unit
        cos, sin = sp.Dummy(f"c_{x}", real=True), sp.Dummy(f"s_{x}", real=True)
        angles.append(Angle(x, unit, cos, sin, hyperbolic=x in hyperbolic))
    return angles


def _expand_trig(f: sp.Expr, angles: list[Angle]) -> sp.Expr:
    """``f`` (cos, sin or tan of ``Σ k_j u_j x_j + const``) as a rational function of the
    unknowns: ``exp(i Σ k_j t_j) = Π (c_j + i s_j)^k_j`` (conjugate for negative ``k_j``);
    for cosh, sinh, tanh and exp ``exp(Σ k_j t_j) = Π (c_j ± s_j)^|k_j|`` likewise, its
    parts even and odd in the ``s_j`` being the cosh and the sinh."""
    hyperbolic = isinstance(f, _HYPERBOLIC)
    unit = sp.Integer(1) if hyperbolic else sp.I
    arg, z = f.args[0], sp.Integer(1)
    const = arg
    for a in angles:
        k = sp.nsimplify(arg.diff(a.input) / a.unit)
        if not k.is_Integer:
            raise NotPolynomial(f"{f} holds {a.input} as a fractional multiple of {a.unit}")
        const -= k * a.unit * a.input
        base = a.cos + unit * a.sin if k >= 0 else a.cos - unit * a.sin
        z *= base ** abs(int(k))
    z = sp.expand(z)
    const = sp.expand(const)
    if hyperbolic:
        if isinstance(f, sp.exp):
            return sp.exp(const) * z
        flipped = z.xreplace({a.sin: -a.sin for a in angles})
        re, im = sp.expand((z + flipped) / 2), sp.expand((z - flipped) / 2)
        cos_c, sin_c = sp.cosh(const), sp.sinh(const)
        cos_f, sin_f = re * cos_c + im * sin_c, im * cos_c + re * sin_c
    else:
        im = z.coeff(sp.I)
        re = sp.expand(z - sp.I * im)
        cos_c, sin_c = sp.cos(const), sp.sin(const)
        cos_f, sin_f = re * cos_c - im * sin_c, im * cos_c + re * sin_c
    if isinstance(f, (sp.cos, sp.cosh)):
        return cos_f
    return sin_f if isinstance(f, (sp.sin, sp.sinh)) else sin_f / cos_f


def _polynomial(
    numer: sp.Expr, unknowns: tuple, xs: tuple, knowns: dict[sp.Expr, sp.Symbol]
) -> sp.Expr:
    """``numer`` as a polynomial in ``unknowns`` whose coefficients are rational functions of
    symbols: a coefficient with other atoms (``cos(y2)``, ``sqrt(3)``) becomes a symbol,
    recorded in ``knowns``."""
    try:
        poly = sp.Poly(numer, *unknowns)
    except sp.PolynomialError:
        raise NotPolynomial(f"{numer} is not polynomial in {unknowns}") from None
    terms = []
    for monom, coeff in poly.terms():
        if coeff.has(*xs, *unknowns):
            raise NotPolynomial(f"{numer} is not polynomial in {unknowns}")
        if not _rational_in_symbols(coeff):
            factor, core = coeff.as_coeff_Mul()
            if core.could_extract_minus_sign():
                factor, core = -factor, -core
            coeff = factor * knowns.setdefault(core, sp.Dummy(f"k{len(knowns)}", real=True))
        terms.append(coeff * sp.Mul(*(u**e for u, e in zip(unknowns, monom))))
    return sp.Add(*terms)


def _rational_in_symbols(expr: sp.Expr) -> bool:
    if expr.is_Rational or expr.is_Symbol:
        return True
    if isinstance(expr, (sp.Add, sp.Mul)):
        return all(_rational_in_symbols(a) for a in expr.args)
    return isinstance(expr, sp.Pow) and expr.exp.is_Integer and _rational_in_symbols(expr.base)


def _periods(xs: tuple, angles: list[Angle], pivots: dict) -> tuple[tuple, tuple]:
    period: list[Any] = [None] * len(xs)
    joint = []
    for a in angles:
        if a.period is None:
            continue
        i = xs.index(a.input)
        moves = {p: v.diff(a.input) * a.period for p, v in pivots.items() if v.has(a.input)}
        if not moves:
            period[i] = a.period
            continue
        vector = [moves.get(x, sp.Integer(0)) for x in xs]
        vector[i] = a.period
        if not all(v.is_number for v in vector):
            raise NotPolynomial(
                f"the shift of {a.input} by its period moves other inputs by {vector}: "
                "only numeric joint periods are supported"
            )
        joint.append(tuple(vector))
    return tuple(period), tuple(joint)
