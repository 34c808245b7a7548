"""One generated NumPy function per (problem, rule): the whole step on coordinate columns.

The NumPy engine's step of a small problem makes one call per kernel (the gradient, the
Hessian, then the solve, each over ``(samples, n)`` arrays whose columns are strided), and the
tolerance check evaluates the gradient again. For GD, Newton and IG on problems of at most
:data:`MAX_SOLVE_N` inputs (GD: :data:`MAX_GD_N`), this module prints instead one function
``fused(x0, x1, ..., **params) -> (dx0, ..., trusted, g2)`` over one contiguous array per
coordinate: the kernels' own straight-line programs one after the other (the same expressions,
so the same values bit for bit), then the rule's solve written out as
:func:`scaleinv.numeric.runtime.solve` computes it (Cramer's rule, ``b / diag`` for a
structurally diagonal matrix), its trust test, and ``|dL/dx|²`` for the tolerance check.

``trusted`` (None for GD) is where :func:`~scaleinv.numeric.runtime.solve` trusts Cramer's
rule before the finiteness of the solution; everywhere else the loop
(:mod:`scaleinv.numeric.column_loop`) takes the rule's own step, so statuses (singular samples)
come from the same code as before.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.numeric import runtime
from scaleinv.numeric.kernels import StraightLine, flavor_kernels
from scaleinv.numeric.rules import Rule
from scaleinv.numeric.source import param_keywords, renaming_printer
from scaleinv.symbolic import Problem

__all__ = ["FusedStep", "fused_step", "MAX_SOLVE_N", "MAX_GD_N"]

#: Newton and IG are fused up to this many inputs (Cramer's rule; larger systems go to LAPACK).
MAX_SOLVE_N = 2
#: GD is fused up to this many inputs (beyond, the columns' Python overhead outweighs the gain).
MAX_GD_N = 8


@dataclass(frozen=True)
class FusedStep:
    """A rule's fused step: ``func(*columns)`` returns the ``n`` columns of ``Δx``, where the
    solve is trusted (None: always) and ``|dL/dx|²`` (None unless built ``with_norm``)."""

    func: Callable[..., tuple[Any, ...]]
    source: str
    n: int


_CACHE: weakref.WeakKeyDictionary[Problem, dict[tuple[Rule, bool], FusedStep | None]] = (
    weakref.WeakKeyDictionary()
)


def fused_step(problem: Problem, rule: Rule, with_norm: bool) -> FusedStep | None:
    """The fused step of ``rule`` on ``problem`` (cached), or None where there is none: other
    rules, too many inputs, a non-square Jacobian (IG's pseudo-inverse), a sparse matrix."""
    per_problem = _CACHE.setdefault(problem, {})
    key = (rule, with_norm)
    if key not in per_problem:
        per_problem[key] = _build(problem, rule, with_norm)
    return per_problem[key]


class _Writer:
    """Collects the lines of the fused function: programs printed one after the other with
    their temporaries renamed apart, inputs as ``_x<i>`` and params as their keywords."""

    def __init__(self, problem: Problem) -> None:
        self.keywords = param_keywords(problem.params)
        self.names: dict[sp.Basic, str] = dict(self.keywords)
        self.names.update((x, f"_x{i}") for i, x in enumerate(problem.inputs))
        self.names.update((y, f"_y{j}") for j, y in enumerate(problem.output_symbols))
        self.lines: list[str] = []
        self.programs = 0

    def program(self, program: StraightLine | None, prefix: str) -> dict[tuple[int, ...], str]:
        """Print ``program``'s temporaries and outputs; return each output entry's name, or
        its value where it is a constant (a structurally zero entry is ``"0"``)."""
        if program is None:
            raise _NotFused("the kernel has no straight-line program")
        self.programs += 1
        names = dict(self.names)
        names.update((t, f"_p{self.programs}t{k}") for k, (t, _) in enumerate(program.temps))
        printer = renaming_printer(names)

        def text(expr: sp.Expr) -> str:
            if expr.has(sp.DiracDelta):  # as the kernels print it (see source._clean)
                expr = expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0))
            return str(printer.doprint(expr))

        for t, expr in program.temps:
            self.lines.append(f"{names[t]} = {text(expr)}")
        entries = {index: "0" for index in np.ndindex(*program.shape)}
        for index, expr in program.outputs:
            if expr.is_Number:  # a constant entry is written where it is used
                entries[index] = text(expr)
                continue
            name = f"{prefix}{''.join(map(str, index))}"
            self.lines.append(f"{name} = {text(expr)}")
            entries[index] = name
        return entries


class _NotFused(Exception):
    """The rule or problem has no fused step (the loop takes the rule's own)."""


def _build(problem: Problem, rule: Rule, with_norm: bool) -> FusedStep | None:
    n = problem.n
    limit = MAX_GD_N if rule.name == "gd" else MAX_SOLVE_N
    if rule.name not in ("gd", "newton", "ig") or n > limit:
        return None
    kernels = flavor_kernels(problem)
    writer = _Writer(problem)
    eta = repr(float(rule.settings()["eta"]))
    try:
        g = None
        if rule.name != "ig" or with_norm:
            g = writer.program(kernels.gradient.program, "_g")
        trusted = "None"
        if rule.name == "gd":
            dx = [f"(-{eta}) * {g[(i,)]}" for i in range(n)] if g else []
        elif rule.name == "newton":
            if kernels.hessian_pattern.sparse:
                return None
            a = writer.program(kernels.hessian.program, "_h")
            assert g is not None
            x, trusted = _solve_lines(writer.lines, a, [g[(i,)] for i in range(n)])
            dx = [f"(-{eta}) * {v}" for v in x]
        else:  # IG: J⁻¹ (η · newton_dy(P(x)))
            if problem.m != n or kernels.newton_dy is None or kernels.jacobian_pattern.sparse:
                return None
            y = writer.program(kernels.P.program, "_y")
            _alias(writer.lines, y)
            d = writer.program(kernels.newton_dy.program, "_d")
            b = []
            for j in range(n):
                writer.lines.append(f"_b{j} = {eta} * {d[(j,)]}")
                b.append(f"_b{j}")
            a = writer.program(kernels.jacobian.program, "_j")
            dx, trusted = _solve_lines(writer.lines, a, b)
    except _NotFused:
        return None
    norm = "None"
    if with_norm and g is not None:
        norm = _sum_of_squares([g[(i,)] for i in range(n)])
    params = [f"{ident}={float(problem.params[s])!r}" for s, ident in writer.keywords.items()]
    args = ", ".join([f"_x{i}" for i in range(n)] + (["*", *params] if params else []))
    body = "\n".join(f"        {line}" for line in writer.lines)
    returns = ", ".join([*dx, trusted, norm])
    source = (
        f"def fused({args}):\n"
        f'    """{rule.label} step of {problem.n} columns: (dx..., trusted, |g|²)."""\n'
        f"    with numpy.errstate(all='ignore'):\n{body}\n"
        f"        return ({returns},)\n"
    )
    scope: dict[str, Any] = {"numpy": np}
    # The source is printed from scaleinv's own expressions (never from user text).
    exec(compile(source, f"<scaleinv fused {rule.name} step>", "exec"), scope)  # noqa: S102
    return FusedStep(scope["fused"], source, n)


def _alias(lines: list[str], y: dict[tuple[int, ...], str]) -> None:
    """Name P's outputs ``_y<j>``, the symbols the y-space programs read (a constant output
    has no name yet)."""
    for (j,), name in y.items():
        if name != f"_y{j}":
            lines.append(f"_y{j} = {name}")


def _sum_of_squares(parts: Sequence[str]) -> str:
    """``|g|²`` summed left to right, as :func:`runtime._squared_norms` does for n <= 2."""
    return " + ".join(f"({p})*({p})" for p in parts)


def _times(a: str, b: str) -> str:
    """``a * b`` with a factor 1 left out (exact: no pass over the samples)."""
    return b if a == "1" else a if b == "1" else f"{a} * {b}"


def _over(a: str, b: str) -> str:
    """``a / b`` with a divisor 1 left out (exact)."""
    return a if b == "1" else f"{a} / {b}"


def _solve_lines(
    lines: list[str], a: dict[tuple[int, ...], str], b: Sequence[str]
) -> tuple[list[str], str]:
    """Lines solving ``a x = b`` as :func:`runtime._cramer_into` does; the names of ``x`` and
    of the trust test (Cramer's rule trusted before the finiteness of ``x``). Entries that are
    structurally 0 or 1 are left out of the arithmetic (exactly: the same values)."""
    limit = repr(runtime._CRAMER_LIMIT)
    if len(b) == 1:
        lines.append(f"_s0 = {_over(b[0], a[0, 0])}")
        lines.append(f"_fine = numpy.abs({a[0, 0]}) > 0")
        return ["_s0"], "_fine"
    a00, a01, a10, a11 = a[0, 0], a[0, 1], a[1, 0], a[1, 1]
    if a01 == "0" and a10 == "0":  # runtime._diagonal_into
        lines.append(f"_s0 = {_over(b[0], a00)}")
        lines.append(f"_s1 = {_over(b[1], a11)}")
        lines.append(f"_det = {_times(a00, a11)}")
        lines.append(f"_sq = {_times(a00, a00)} + {_times(a11, a11)}")
    else:
        lines.append(f"_det = {_times(a00, a11)} - {_times(a01, a10)}")
        lines.append(f"_s0 = ({_times(a11, b[0])} - {_times(a01, b[1])}) / _det")
        lines.append(f"_s1 = ({_times(a00, b[1])} - {_times(a10, b[0])}) / _det")
        squares = " + ".join(_times(e, e) for e in (a00, a01, a10, a11))
        lines.append(f"_sq = {squares}")
    lines.append(f"_fine = _sq < numpy.abs(_det) * {limit}")
    return ["_s0", "_s1"], "_fine"
