"""Reparametrizations of a problem: input scalings, output scalings and user maps ``x = g(u)``.

A transform turns a :class:`~scaleinv.symbolic.Problem` in ``x`` into a problem in new inputs
``u`` (:meth:`apply` returns a :class:`Transformed`), together with the map ``x = g(u)`` that
carries updates in ``u`` back to ``x``. Symbols a transform introduces (scales ``s0``, ``c``,
an angle ``theta``) become params of the transformed problem; scales are positive symbols.

A transform's expressions may use the problem's params and new symbols, never its inputs: a
scale or a map ``g`` that mentioned ``x0`` would make ``x = g(u)`` depend on the point (the
invariance question would be another one), so it is refused with a :class:`ProblemError`
naming the input (write such a map in the new inputs, as a :class:`Reparametrization`). New
symbols must not take a name scaleinv reserves (``eta``, the outputs ``y0 ..``; see
:func:`~scaleinv.symbolic.problem.check_user_names`).
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any, TypeAlias

import sympy as sp

from scaleinv.errors import ProblemError
from scaleinv.symbolic import Problem, parse_expr
from scaleinv.symbolic.parsing import make_symbol
from scaleinv.symbolic.problem import check_user_names

__all__ = ["Transformed", "InputScaling", "OutputScaling", "Reparametrization", "listed"]

Scalar: TypeAlias = "str | float | int | sp.Expr"


@dataclass(frozen=True)
class Transformed:
    """A transformed problem and the way back.

    Attributes
    ----------
    problem : Problem
        The problem in the new inputs (``problem.inputs``).
    forward : Matrix
        ``x = g(u)`` (n×1, in the new inputs and params).
    new_params : mapping of Symbol to float
        The symbols the transform introduced (default value 1).
    """

    problem: Problem
    forward: sp.Matrix
    new_params: Mapping[sp.Symbol, float]

    @property
    def inputs(self) -> tuple[sp.Symbol, ...]:
        """The new inputs ``u``."""
        return self.problem.inputs

    @cached_property
    def jacobian(self) -> sp.Matrix:
        """``dg/du`` (n×n), each entry of ``g`` differentiated only by the inputs it contains."""
        column = {u: j for j, u in enumerate(self.inputs)}
        found = sp.zeros(len(self.forward), len(self.inputs))
        for i, expr in enumerate(self.forward):
            for u in expr.free_symbols & set(column):
                found[i, column[u]] = sp.diff(expr, u)
        return found


def _memoized(
    apply: Callable[[Any, Problem], Transformed],
) -> Callable[[Any, Problem], Transformed]:
    """``apply`` computed once per problem and transform (a report asks for it per rule)."""

    @functools.wraps(apply)
    def cached(self: Any, problem: Problem) -> Transformed:
        store = problem.__dict__.setdefault("_transformed", {})
        key = repr(self)
        if key not in store:
            store[key] = apply(self, problem)
        return store[key]

    return cached


def listed(items: Sequence[str], limit: int = 6) -> str:
    """``items`` joined by commas; past ``limit`` the first and last few around an ellipsis.

    A transform of a problem with hundreds of inputs is described on one line.

    Examples
    --------
    >>> listed(["s0", "s1", "s2"])
    's0, s1, s2'
    >>> listed([f"s{i}" for i in range(256)])
    's0, s1, s2, …, s253, s254, s255'
    """
    if len(items) <= limit:
        return ", ".join(items)
    half = limit // 2
    return ", ".join([*items[:half], "…", *items[-half:]])


def _known(problem: Problem) -> dict[str, sp.Symbol]:
    return {str(s): s for s in problem.params}


def _to_expr(
    item: Scalar, known: dict[str, sp.Symbol], positive: bool, problem: Problem
) -> sp.Expr:
    """``item`` as an expression in ``known`` and new symbols (see :func:`_parsed`); one that
    mentions an input of ``problem`` (not also a name in ``known``) is refused."""
    expr = _parsed(item, known, positive)
    inputs = {str(x) for x in problem.inputs} - set(known)
    used = sorted(inputs & {str(s) for s in expr.free_symbols})
    if used:
        raise ProblemError(
            f"the transform's {item!r} mentions the input {used[0]}: a scale or map x = g(u) is "
            "written in params and new symbols (a map that depends on the point needs a "
            "Reparametrization in the new inputs)"
        )
    new = [str(s) for s in expr.free_symbols if str(s) not in known]
    check_user_names(sorted(new), problem.m, "new symbol")
    return expr


def _parsed(item: Scalar, known: dict[str, sp.Symbol], positive: bool) -> sp.Expr:
    """Parse ``item`` (allow-list parser for strings); unknown names become new symbols."""
    if isinstance(item, str):
        try:  # only to list the names; parse_expr below does the (allow-list) parsing
            tree = ast.parse(item.strip(), mode="eval")
        except (SyntaxError, ValueError):
            return parse_expr(item, known)  # raises a ParseError naming the problem
        nodes = list(ast.walk(tree))
        called = {
            n.func.id for n in nodes if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        names = {n.id for n in nodes if isinstance(n, ast.Name)} - called
        table = dict(known)
        for name in sorted(names - set(known)):
            table[name] = make_symbol(name, positive=positive)
        return parse_expr(item, table)
    if isinstance(item, float):
        return sp.nsimplify(item, rational=True)  # exact, so that proofs stay exact
    expr = sp.sympify(item)  # a number or a SymPy expression (strings were parsed above)
    rebind = {}
    for s in expr.free_symbols:
        name = str(s)
        if name in known:
            rebind[s] = known[name]
        else:
            rebind[s] = make_symbol(name, positive=positive or bool(s.is_positive))
    return expr.xreplace(rebind)


def _fresh_inputs(problem: Problem, names: Sequence[str] | None) -> tuple[sp.Symbol, ...]:
    taken = {str(s) for s in problem.params} | {str(y) for y in problem.output_symbols}
    if names is None:  # the defaults also avoid the old inputs (x = g(u) keeps them apart)
        taken |= {str(x) for x in problem.inputs}
        for prefix in ("u", "v", "w", "u_"):
            names = [f"{prefix}{i}" for i in range(problem.n)]
            if not taken & set(names):
                break
    names = list(names or ())
    if len(names) != problem.n or taken & set(names) or len(set(names)) != len(names):
        raise ProblemError(f"new inputs {names} must be {problem.n} distinct unused names")
    return tuple(make_symbol(n) for n in names)


def _substituted(problem: Problem, forward: sp.Matrix, inputs: tuple, extra: dict) -> Transformed:
    at = dict(zip(problem.inputs, forward))
    outputs = tuple(e.xreplace(at) for e in problem.outputs)
    params = {**problem.params, **extra}
    new = Problem(inputs, outputs, problem.loss, problem.target, params)
    return Transformed(new, forward, MappingProxyType(extra))


def _new_symbols(exprs: Sequence[sp.Expr], problem: Problem, inputs: Sequence) -> dict:
    free = set().union(*(sp.sympify(e).free_symbols for e in exprs))
    new = free - set(problem.params) - set(inputs)
    return {s: 1.0 for s in sorted(new, key=str)}


@dataclass(frozen=True)
class InputScaling:
    """``x = S u`` with a diagonal ``S`` of positive scales.

    Parameters
    ----------
    scales : sequence or mapping
        One scale per input (strings, numbers or SymPy expressions), or a mapping from input
        names to scales (the others stay 1). Unknown names become positive symbols.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "alpha*x1"], params={"alpha": 3})
    >>> t = InputScaling({"x1": "1/alpha"}).apply(p)
    >>> t.problem.outputs, t.forward.T
    ((u0, u1), Matrix([[u0, u1/alpha]]))
    """

    scales: Sequence[Scalar] | Mapping[str, Scalar]

    def describe(self) -> str:
        """A one-line description."""
        if isinstance(self.scales, Mapping):
            return "x = S u, " + listed([f"{k} -> {v}*{k}" for k, v in self.scales.items()])
        return f"x = S u, S = diag({listed([str(v) for v in self.scales])})"

    @_memoized
    def apply(self, problem: Problem) -> Transformed:
        """The problem in ``u`` with ``x = S u``."""
        known = _known(problem)
        if isinstance(self.scales, Mapping):
            unknown = set(self.scales) - {str(x) for x in problem.inputs}
            if unknown:
                raise ProblemError(f"InputScaling names unknown inputs {sorted(unknown)}")
            raw = [self.scales.get(str(x), 1) for x in problem.inputs]
        else:
            raw = list(self.scales)
            if len(raw) != problem.n:
                raise ProblemError(f"InputScaling has {len(raw)} scales for {problem.n} inputs")
        scales = [_to_expr(s, known, positive=True, problem=problem) for s in raw]
        if any(s.is_positive is False or s == 0 for s in scales):
            raise ProblemError(f"scales must be positive, got {scales}")
        inputs = _fresh_inputs(problem, None)
        forward = sp.Matrix([s * u for s, u in zip(scales, inputs)])
        return _substituted(problem, forward, inputs, _new_symbols(scales, problem, inputs))


@dataclass(frozen=True)
class OutputScaling:
    """``P -> c P`` with ``y* -> c y*`` and the loss ``L'(y) = c**loss_power · L(y / c)``.

    For the default loss (``loss_power=2``) the new loss is again ``½ |y − c y*|²``, i.e. the
    loss of every ``x`` is multiplied by ``c²``. The inputs stay as they are (``g`` = identity).

    Examples
    --------
    >>> p = Problem.from_strings(["x"], ["x**2"], target=[4])
    >>> OutputScaling("c").apply(p).problem.loss
    (-4*c + y0)**2/2
    """

    c: Scalar = "c"
    loss_power: int = 2

    def describe(self) -> str:
        """A one-line description."""
        return f"P -> {self.c}*P, y* -> {self.c}*y*, L -> {self.c}**{self.loss_power}*L(y/{self.c})"

    @_memoized
    def apply(self, problem: Problem) -> Transformed:
        """The problem with scaled outputs, target and loss."""
        c = _to_expr(self.c, _known(problem), positive=True, problem=problem)
        if c.is_positive is False or c == 0:
            raise ProblemError(f"OutputScaling needs c > 0, got {c}")
        extra = _new_symbols([c], problem, problem.inputs)
        outputs = tuple(c * e for e in problem.outputs)
        target = tuple(c * t for t in problem.target)
        default = Problem(problem.inputs, problem.outputs, None, problem.target, problem.params)
        if sp.expand(default.loss - problem.loss) == 0:
            loss = None  # keep the default form ½|y − c y*|²
        else:
            ys = problem.output_symbols
            loss = c**self.loss_power * problem.loss.xreplace({y: y / c for y in ys})
        new = Problem(problem.inputs, outputs, loss, target, {**problem.params, **extra})
        return Transformed(new, sp.Matrix(problem.inputs), MappingProxyType(extra))


@dataclass(frozen=True)
class Reparametrization:
    """A user map ``x = g(u)`` (``g`` invertible near the points of interest).

    Parameters
    ----------
    mapping : sequence
        ``g``: one expression per original input, in the new inputs (strings are parsed by the
        allow-list parser; unknown names other than the inputs become real symbols).
    inputs : sequence of str, optional
        Names of the new inputs (default ``u0, u1, ...``).
    description : str, optional
        Shown in reports instead of the formulas.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0 + x1", "x0*x1"])
    >>> Reparametrization.rotation(1 / 2).apply(p).forward.T
    Matrix([[3*u0/5 - 4*u1/5, 4*u0/5 + 3*u1/5]])
    >>> Reparametrization(["u0 + a*u1", "u1"]).apply(p).problem.outputs
    (a*u1 + u0 + u1, u1*(a*u1 + u0))
    """

    mapping: Sequence[Scalar]
    inputs: Sequence[str] | None = None
    description: str = ""

    @classmethod
    def rotation(
        cls, t: Scalar = "t", n: int = 2, axes: tuple[int, int] = (0, 1)
    ) -> Reparametrization:
        """``x = R u``, a rotation in the plane of ``axes`` by the angle ``θ = 2 atan(t)``.

        The half-angle parametrization ``cos θ = (1 − t²)/(1 + t²)``, ``sin θ = 2t/(1 + t²)``
        keeps every expression rational in ``t`` (so a proof is a rational-function identity)
        and covers every rotation but ``θ = π``. ``t = 1/2`` is the rotation with cosine 3/5.
        """
        i, j = axes
        shown = t if isinstance(t, str) else str(sp.nsimplify(t, rational=True))
        cos, sin = f"(1 - ({shown})**2)/(1 + ({shown})**2)", f"2*({shown})/(1 + ({shown})**2)"
        rows = [f"u{k}" for k in range(n)]
        rows[i] = f"{cos}*u{i} - {sin}*u{j}"
        rows[j] = f"{sin}*u{i} + {cos}*u{j}"
        where = f"axes {i}, {j}; " if n > 2 else ""
        return cls(tuple(rows), tuple(f"u{k}" for k in range(n)), f"x = R u ({where}t = {shown})")

    def describe(self) -> str:
        """A one-line description."""
        return self.description or f"x = g(u) = ({listed([str(e) for e in self.mapping])})"

    @_memoized
    def apply(self, problem: Problem) -> Transformed:
        """The problem in ``u`` with ``x = g(u)``."""
        if len(self.mapping) != problem.n:
            raise ProblemError(f"the map has {len(self.mapping)} entries for {problem.n} inputs")
        inputs = _fresh_inputs(problem, self.inputs)
        known = {**{str(s): s for s in problem.params}, **{str(u): u for u in inputs}}
        forward = sp.Matrix([_to_expr(e, known, False, problem) for e in self.mapping])
        if forward.jacobian(inputs).det() == 0:
            raise ProblemError(f"the map {list(forward)} is not invertible (dg/du is singular)")
        return _substituted(problem, forward, inputs, _new_symbols(forward, problem, inputs))


Transform = Any  # InputScaling | OutputScaling | Reparametrization (anything with apply/describe)
