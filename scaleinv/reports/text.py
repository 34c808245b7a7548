"""Plain-text rendering for the terminal: tables and readable formulas."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from scaleinv.symbolic.budget import tree_size

__all__ = ["format_table", "format_vector", "format_expr", "format_formula", "format_ends"]
__all__ += ["vector_stats", "numeric_inverse_line", "fitting_wrap", "indented_formula"]

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


def fitting_wrap(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    columns: Mapping[int, float],
    width: int = WIDTH,
) -> dict[int, int]:
    """The ``wrap`` of :func:`format_table` that makes the table fit ``width`` columns by
    wrapping ``columns`` (at their spaces), which share the room the other columns leave in
    proportion to their weights; ``{}`` when the table fits as it is.

    Examples
    --------
    >>> rows = [["gd", "(0.129838, 0.23482, 0.292389, 0.292389, 0.23482, 0.129838)", "1e-08"]]
    >>> fitting_wrap(["rule", "final x", "final loss"], rows, {1: 1}, width=40)
    {1: 22}
    >>> fitting_wrap(["rule", "final x", "final loss"], rows, {1: 1}, width=100)
    {}
    """
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    natural = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    gaps = 2 * (len(headers) - 1)
    if sum(natural) + gaps <= width:
        return {}
    room = width - gaps - sum(w for i, w in enumerate(natural) if i not in columns)
    total = sum(columns.values())
    return {i: min(natural[i], max(12, int(room * w / total))) for i, w in columns.items()}


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


def vector_stats(
    values: np.ndarray, name: str | Callable[[int], str] = "x", digits: int = 4
) -> tuple[str, str, str]:
    """``|v|``, the smallest and the largest entry with its index, for a summary table
    (``name``: a prefix of the index, or what names the entry at a flat index).

    Examples
    --------
    >>> vector_stats(np.array([3.0, -4.0, 0.0]))
    ('5', '-4 (x1)', '3 (x0)')
    >>> vector_stats(np.array([3.0, -4.0]), lambda k: f"u[{k}]")[1]
    '-4 (u[1])'
    """
    flat = np.ravel(np.asarray(values, dtype=float))
    low, high = int(np.argmin(flat)), int(np.argmax(flat))
    named = name if callable(name) else lambda k: f"{name}{k}"
    return (
        f"{float(np.linalg.norm(flat)):.{digits}g}",
        f"{flat[low]:.{digits}g} ({named(low)})",
        f"{flat[high]:.{digits}g} ({named(high)})",
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
    indented. Nothing is cut, but formulas of more than
    :data:`~scaleinv.reports.formulas.MAX_TYPESET_NODES` nodes are printed without names and
    those of more than :data:`~scaleinv.reports.formulas.MAX_WRITTEN_NODES` not at all (a line
    says so): the work grows with the size.

    Examples
    --------
    >>> x, y = sp.symbols("x y")
    >>> print(format_formula("f", (x + 2 * y) ** 2 + sp.sin(x + 2 * y), width=30))
    f = xi1**2 + sin(xi1), where
      xi1 = x + 2*y
    """
    from scaleinv.reports.formulas import MAX_TYPESET_NODES, MAX_WRITTEN_NODES, named_parts

    size = tree_size(expr, MAX_WRITTEN_NODES)
    if size > MAX_WRITTEN_NODES:
        return f"{name} = (too large to print: more than {MAX_WRITTEN_NODES:,} nodes)"
    one = f"{name} = {sp.sstr(expr)}"
    if len(one) <= width:
        return one
    if size > MAX_TYPESET_NODES:  # too large for cse (its work grows with the size)
        return "\n".join(_wrap(one, width))
    subs, reduced = named_parts(expr)
    lines = _wrap(f"{name} = {sp.sstr(reduced)}" + (", where" if subs else ""), width)
    for sym, part in subs:
        lines += _wrap(f"  {sym} = {sp.sstr(part)}", width, indent="      ")
    return "\n".join(lines)


def indented_formula(name: str, expr: Any, indent: str = "  ", width: int = WIDTH) -> str:
    """:func:`format_formula` for a listing: every line starts with ``indent`` and none runs
    past ``width`` with it; fractions with long denominators (the exact values of a spec's
    decimals) are shown as decimals (printing only, the derivation keeps them exact).

    Examples
    --------
    >>> y = sp.Symbol("y0")
    >>> print(indented_formula("L", (y - sp.Rational(133480441447, 10**12)) ** 2 / 2))
      L = (y0 - 0.13348)**2/2
    """
    from scaleinv.reports.formulas import decimal_numbers

    text = format_formula(name, decimal_numbers(sp.sympify(expr)), width - len(indent))
    return "\n".join(indent + line for line in text.splitlines())


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
    from scaleinv.numeric.indexed_steps import inverse_note

    for rule in rules:
        why = inverse_note(problem, rule)
        if why is not None:
            line = f"note: {rule.label} solves P(x) = y numerically at every step ({why})"
            return "\n".join(textwrap.wrap(line, WIDTH, subsequent_indent="  "))
    return None
