"""Source of an indexed problem's point kernels: whole-array NumPy over the grid.

A point kernel evaluates formulas at every grid point at once. Its arguments are arrays of
the batch-and-grid shape, one per symbol (an access such as ``u[i+1]`` is a *view* of the
padded field, never a copy), and it writes formula ``k`` into ``out[:, k]``. The formulas are
reduced by :func:`sympy.cse` and printed by the printer of every kernel
(:mod:`scaleinv.numeric.source`), so the source has a line per subexpression whatever the grid
size: a 10⁶-point problem prints what an 8-point one does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.numeric import pysource
from scaleinv.numeric.pysource import balanced
from scaleinv.numeric.source import _clean, _identifier, _Printer, _printer, param_keywords

__all__ = ["point_source", "compile_point_kernel"]


def point_source(
    name: str,
    exprs: Sequence[sp.Expr],
    symbols: Sequence[sp.Symbol],
    params: Mapping[sp.Symbol, float],
    doc: str = "",
) -> str:
    """Source of ``name(out, *arrays, **params)`` writing ``exprs[k]`` into ``out[:, k]``.

    Examples
    --------
    >>> u0, u1, c = sp.symbols("u0 u1 c")
    >>> source = point_source("f", [c * u0 * u1, 2], [u0, u1], {c: 3.0})
    >>> print(source.rstrip())  # doctest: +ELLIPSIS
    def f(out, u0, u1, *, c=3.0):
    ...
            out[:, 0] = c*u0*u1
            out[:, 1] = 2
        return out
    """
    keywords = param_keywords(params)
    taken = {*keywords.values(), "out"}
    rename = {s: sp.Symbol(k) for s, k in keywords.items() if k != s.name}
    arguments = []
    for symbol in symbols:
        ident = _identifier(symbol, taken)
        arguments.append(ident)
        if ident != symbol.name:
            rename[symbol] = sp.Symbol(ident)
    exprs = [_clean(sp.sympify(e), {}) for e in exprs]  # DiracDelta (of |u|'s sign) as 0
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"))
    printer = _ScalarsFirst(_printer(), {rename.get(s, s) for s in params})
    lines = []
    for t, e in temps:
        e = e.xreplace(rename)
        printer.note(t, e)
        lines.append(f"{printer.doprint(t)} = {printer.doprint(e)}")
    lines += [f"out[:, {k}] = {printer.doprint(e.xreplace(rename))}" for k, e in enumerate(reduced)]
    signature = ", ".join(["out", *arguments])
    if keywords:
        signature += ", *, " + ", ".join(f"{k}={float(params[s])!r}" for s, k in keywords.items())
    docstring = f"    {pysource.docstring(doc)}\n" if doc else ""
    body = "\n".join("        " + line for line in lines)
    return (
        f"def {name}({signature}):\n{docstring}"
        f"    with numpy.errstate(all='ignore'):\n{body}\n    return out\n"
    )


class _ScalarsFirst(_Printer):
    """The kernels' printer, multiplying a product's numbers and params (and temporaries made
    of them: :meth:`note`) first: Python multiplies left to right, so ``6*c*dt*u*r`` costs
    two passes over the grid where SymPy's order, ``6*u*r*c*dt``, costs four."""

    def __init__(self, like: _Printer, scalars: set[sp.Symbol]) -> None:
        super().__init__(like._settings)
        self._scalars = set(scalars)

    def note(self, temp: sp.Symbol, expr: sp.Expr) -> None:
        """``temp = expr`` is printed: ``temp`` is a scalar where ``expr`` is."""
        if self._scalar(expr):
            self._scalars.add(temp)

    def _scalar(self, expr: sp.Expr) -> bool:
        return expr.free_symbols <= self._scalars

    def _fast(self, expr: Any) -> str:
        if expr.is_Mul:
            scalars = [a for a in expr.args if self._scalar(a)]
            if 0 < len(scalars) < len(expr.args):
                arrays = [a for a in expr.args if not self._scalar(a)]
                return balanced([self._fast(a) for a in scalars + arrays], "*")
        return super()._fast(expr)


def compile_point_kernel(
    name: str,
    exprs: Sequence[sp.Expr],
    symbols: Sequence[sp.Symbol],
    params: Mapping[sp.Symbol, float],
    doc: str = "",
) -> tuple[str, Callable[..., Any]]:
    """:func:`point_source` and the function it defines."""
    source = point_source(name, exprs, symbols, params, doc)
    scope: dict[str, Any] = {"numpy": np}
    # Printed from SymPy expressions scaleinv built (never from user text).
    exec(compile(source, f"<scaleinv point kernel {name}>", "exec"), scope)  # noqa: S102
    return source, scope[name]
