"""Plain-text rendering for the terminal: tables and readable formulas."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

__all__ = ["format_table", "format_vector", "format_expr", "format_formula", "format_ends"]
__all__ += ["vector_stats", "numeric_inverse_line"]

#: Width of the terminal output of formulas.
WIDTH = 100


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], wrap: Mapping[int, int] | None = None
) -> str:
    """A left-aligned text table with a rule under the header.

    ``wrap`` maps column indices to widths: longer cells in those columns wrap onto further
    lines of the row (at spaces) instead of being cut.

    Examples
    --------
    >>> print(format_table(["rule", "loss"], [["gd", "1.0"], ["newton", "0.5"]]))
    rule    loss
    ------  ----
    gd      1.0
    newton  0.5
    >>> print(format_table(["rule", "why"], [["gd", "steps too small"]], wrap={1: 6}))
    rule  why
    ----  -----
    gd    steps
          too
          small
    """
    wrap = dict(wrap or {})
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    split = [
        [textwrap.wrap(c, wrap[i]) or [""] if i in wrap else [c] for i, c in enumerate(row)]
        for row in cells
    ]
    widths = [max(len(line) for row in split for line in row[i]) for i in range(len(headers))]
    lines = []
    for row in split:
        for k in range(max(len(c) for c in row)):
            parts = [(c[k] if k < len(c) else "").ljust(w) for c, w in zip(row, widths)]
            lines.append("  ".join(parts).rstrip())
    header_lines = max(len(c) for c in split[0])
    lines.insert(header_lines, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_vector(values: np.ndarray, digits: int = 6) -> str:
    """``(a, b, ...)`` with ``digits`` significant digits.

    Examples
    --------
    >>> format_vector(np.array([0.052, 2.0 / 3.0]))
    '(0.052, 0.666667)'
    """
    return "(" + ", ".join(f"{float(v):.{digits}g}" for v in np.ravel(values)) + ")"


def format_ends(values: np.ndarray | Sequence[float], digits: int = 6, keep: int = 3) -> str:
    """``(a, b, c, …, x, y, z)``: the first and last ``keep`` entries of a long vector.

    Examples
    --------
    >>> format_ends(np.arange(256.0))
    '(0, 1, 2, …, 253, 254, 255)'
    >>> format_ends(np.array([0.5, 2.0]))
    '(0.5, 2)'
    """
    flat = np.ravel(values)
    if flat.size <= 2 * keep + 1:
        return format_vector(flat, digits)
    ends = [*flat[:keep], *flat[-keep:]]
    shown = [f"{float(v):.{digits}g}" for v in ends]
    return "(" + ", ".join([*shown[:keep], "…", *shown[keep:]]) + ")"


def vector_stats(values: np.ndarray, name: str = "x", digits: int = 4) -> tuple[str, str, str]:
    """``|v|``, the smallest and the largest entry with its index, for a summary table.

    Examples
    --------
    >>> vector_stats(np.array([3.0, -4.0, 0.0]))
    ('5', '-4 (x1)', '3 (x0)')
    """
    flat = np.ravel(np.asarray(values, dtype=float))
    low, high = int(np.argmin(flat)), int(np.argmax(flat))
    return (
        f"{float(np.linalg.norm(flat)):.{digits}g}",
        f"{flat[low]:.{digits}g} ({name}{low})",
        f"{flat[high]:.{digits}g} ({name}{high})",
    )


def _inline(expr: Any) -> str:
    # SymPy's plain string form: one line, and valid input for scaleinv's own parser.
    return sp.sstr(expr)


def format_expr(expr: Any) -> str:
    """A SymPy expression, vector or matrix as plain text, one line per matrix row.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> print(format_expr(sp.Matrix([x**2, 2 * x])))
    (x**2, 2*x)
    >>> print(format_expr(sp.Matrix([[1, x / 2], [0, 1]])))
    [1, x/2]
    [0, 1]
    """
    if isinstance(expr, (tuple, list)):
        return "(" + ", ".join(_inline(e) for e in expr) + ")"
    if isinstance(expr, sp.MatrixBase):
        if expr.cols == 1:
            return format_expr(list(expr))
        return "\n".join("[" + ", ".join(_inline(e) for e in row) + "]" for row in expr.tolist())
    return _inline(expr)


def format_formula(name: str, expr: Any, width: int = WIDTH) -> str:
    """``name = expr`` wrapped at ``width`` columns; long ones with named subexpressions.

    A formula that does not fit on one line is written with its repeated parts named
    (``x0_ = …``, SymPy's ``cse``) and every line wrapped at spaces, continuation lines
    indented. Nothing is cut.

    Examples
    --------
    >>> x, y = sp.symbols("x y")
    >>> print(format_formula("f", (x + 2 * y) ** 2 + sp.sin(x + 2 * y), width=30))
    f = xi1**2 + sin(xi1), where
      xi1 = x + 2*y
    """
    one = f"{name} = {sp.sstr(expr)}"
    if len(one) <= width:
        return one
    from scaleinv.reports.formulas import named_parts

    subs, reduced = named_parts(expr)
    lines = _wrap(f"{name} = {sp.sstr(reduced)}" + (", where" if subs else ""), width)
    for sym, part in subs:
        lines += _wrap(f"  {sym} = {sp.sstr(part)}", width, indent="      ")
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "    ") -> list[str]:
    return textwrap.wrap(
        text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    ) or [text]


def numeric_inverse_line(problem: Any, rules: Sequence[Any]) -> str | None:
    """``note: PG solves P(x) = y numerically at every step (why)`` for the first of ``rules``
    whose step does, wrapped at :data:`WIDTH`; None when none does. The commands print this
    once instead of the driver's :class:`~scaleinv.errors.NumericInverseWarning` per run.

    Examples
    --------
    >>> from scaleinv.numeric import rules
    >>> from scaleinv.symbolic import Problem
    >>> numeric_inverse_line(Problem.from_strings("x", "x + sin(x)"), [rules.pg()])[:41]
    'note: PG solves P(x) = y numerically at e'
    """
    from scaleinv.numeric.inverse import numeric_inverse_note

    for rule in rules:
        why = numeric_inverse_note(problem, rule)
        if why is not None:
            line = f"note: {rule.label} solves P(x) = y numerically at every step ({why})"
            return "\n".join(textwrap.wrap(line, WIDTH, subsequent_indent="  "))
    return None
