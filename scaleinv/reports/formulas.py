r"""Formulas a reader can read: a length budget per formula, named subexpressions, an appendix.

Every formula of a report goes through :class:`Formulas`. A formula that fits its budget is
shown as :func:`~scaleinv.reports.latex.equations` lays it out (sums split at their terms,
fractions as ``N/D``). One that does not is shown with its repeated parts named
(``… where ξ_1 = …``, SymPy's ``cse``); past that too it is not set in the document at all:
the document says so, and the full expression goes to ``derivations.txt`` beside the report
(SymPy's plain-text printer, one formula per paragraph). So no formula is ever set below
8 pt (lines of at most :data:`MAX_LINE` visible characters at 10 pt) or longer than
:data:`MAX_LINES` display lines (about half a page).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sympy as sp

from scaleinv.reports.latex import (
    LINE_BUDGET,
    display,
    readable,
    split_sum,
    tex,
    visible_length,
)
from scaleinv.symbolic.budget import steps_spent, tree_size

__all__ = ["Formulas", "MAX_LINE", "MAX_LINES", "APPENDIX_FILE", "named_parts", "decimal_numbers"]
__all__ += ["MAX_TYPESET_NODES", "MAX_WRITTEN_NODES"]

#: Visible characters of one display line that still print at 8 pt (10 pt scaled by 0.8).
MAX_LINE = int(LINE_BUDGET / 0.8)
#: Display lines one formula may take (about half an A4 page).
MAX_LINES = 16
#: The file beside ``report.tex`` that holds every formula too long for the page.
APPENDIX_FILE = "derivations.txt"
#: Names of the subexpressions ``cse`` pulls out (``\xi_1, \xi_2, …``).
_XI = "xi"
#: Rewriting for display (``simplify``/``factor``) only below this many operations.
_REWRITE_OPS = 400
#: Counted steps each display rewrite may take, and all of them together in one report (past
#: that, formulas are shown as derived): a report of many mid-sized formulas stays bounded.
REWRITE_STEPS = 400_000
REWRITE_STEPS_IN_ALL = 8_000_000
#: Formulas of more nodes than this are not laid out (nor printed, nor named by ``cse``): far
#: past what :data:`MAX_LINES` lines can show, and the layout's work grows with the size.
MAX_TYPESET_NODES = 20_000
#: Formulas of more nodes than this are not written to the appendix file either.
MAX_WRITTEN_NODES = 200_000


def named_parts(
    expr: sp.Basic, prefix: str = _XI, start: int = 1, min_ops: int = 2
) -> tuple[list[tuple[sp.Symbol, sp.Basic]], sp.Basic]:
    """``expr`` with its repeated parts named (SymPy's ``cse``), trivial parts kept inline.

    A part with fewer than ``min_ops`` operations (``1/g``, ``2 v``) reads better in place
    than as a name; such parts are substituted back. Names are renumbered from ``start``.

    Examples
    --------
    >>> x, g = sp.symbols("x g")
    >>> e = (sp.sin(x) / g + 1) ** 2 + sp.cos(sp.sin(x) / g + 1)
    >>> named_parts(e)
    ([(xi1, 1 + sin(x)/g)], xi1**2 + cos(xi1))
    """
    subs, (reduced,) = sp.cse(expr, optimizations="basic")
    kept: list[tuple[sp.Symbol, sp.Basic]] = []
    inline: dict[sp.Symbol, sp.Basic] = {}
    for sym, part in subs:
        part = part.xreplace(inline)
        if sp.count_ops(part) < min_ops:
            inline[sym] = part
        else:
            kept.append((sym, part))
    names = dict(zip((s for s, _ in kept), sp.numbered_symbols(prefix, start=start)))
    renamed = [(names[s], p.xreplace(inline).xreplace(names)) for s, p in kept]
    return renamed, reduced.xreplace(inline).xreplace(names)


def decimal_numbers(expr: sp.Basic, digits: int = 6) -> sp.Basic:
    """``expr`` with every fraction whose denominator has more than ``digits`` digits shown as
    a decimal of ``digits`` significant digits (display only: such fractions are the exact
    values of floats in a spec, ``6134983751806243/500000000000000000`` for ``0.01227``).

    Examples
    --------
    >>> y = sp.Symbol("y")
    >>> decimal_numbers(y - sp.Rational(6134983751806243, 500000000000000000))
    y - 0.01227
    >>> decimal_numbers(y / 3 + sp.Rational(1, 20))
    y/3 + 1/20
    """
    big = [r for r in expr.atoms(sp.Rational) if not r.is_Integer and abs(r.q) >= 10**digits]
    if not big:
        return expr
    return _spread(expr.xreplace({r: sp.Float(r, digits) for r in big}), 10**digits)


def _spread(expr: sp.Basic, big: int) -> sp.Basic:
    """``8e-12*(125000000000*k - 31595635867)*u`` as ``(k - 0.252765)*u``: a decimal factor
    multiplied into the sum whose long integers it scales (SymPy keeps ``c/q`` as ``c*(1/q)``
    over a common denominator)."""
    if expr.is_Atom:
        return expr
    expr = expr.func(*(_spread(a, big) for a in expr.args))
    if not isinstance(expr, sp.Mul):
        return expr
    coeff, rest = expr.as_coeff_Mul()
    if not isinstance(coeff, sp.Float):
        return expr
    factors = list(sp.Mul.make_args(rest))
    for k, factor in enumerate(factors):
        if isinstance(factor, sp.Add) and any(
            abs(t.as_coeff_Mul()[0]) >= big for t in factor.args if t.as_coeff_Mul()[0].is_Integer
        ):
            spread = sp.Add(*(coeff * t for t in factor.args))
            whole = {  # 1.00000 (the decimal's own rounding) as 1
                f: sp.Integer(round(f)) for f in spread.atoms(sp.Float)
                if round(f) != 0 and abs(f - round(f)) * big <= abs(f)
            }  # fmt: skip
            factors[k] = spread.xreplace(whole)
            return sp.Mul(*factors)
    return expr


@dataclass
class Formulas:
    """Lays out formulas within their budget and collects the ones that do not fit.

    Attributes
    ----------
    overflow : list of (str, Basic)
        ``(title, expression)`` of every formula sent to :data:`APPENDIX_FILE`.
    rewrite_steps : int
        Counted steps left for display rewrites (``factor``, ``simplify``; at most
        :data:`REWRITE_STEPS` each); once spent, formulas are shown as derived.

    Examples
    --------
    >>> x = sp.symbols("x0:3")
    >>> f = Formulas()
    >>> short = f.block([("y", x[0] + x[1])])
    >>> "aligned" in short, f.overflow
    (True, [])
    >>> huge = sum(x[0] ** k * x[1] ** (99 - k) / (k + 1) for k in range(100))
    >>> "derivations.txt" in f.block([("z", huge)], title="z"), len(f.overflow)
    (True, 1)
    """

    overflow: list[tuple[str, sp.Basic]] = field(default_factory=list)
    progress: Callable[[str], None] | None = None
    rewrite_steps: int = REWRITE_STEPS_IN_ALL
    _names: int = 0  # fractions and subexpressions named so far (names stay unique)
    _laid: int = 0
    _said: float = field(default_factory=time.monotonic)

    def block(self, entries: Sequence[tuple[str, sp.Basic]], title: str = "") -> str:
        """Displays of ``lhs = rhs`` rows (lhs LaTeX, rhs SymPy) within the budget.

        Rows are laid out one by one; each one that does not fit even with named
        subexpressions is replaced by a note, and the whole group is sent to the appendix
        file under ``title`` and its left-hand side.
        """
        groups: list[list[str]] = []
        too_long: list[tuple[str, sp.Basic]] = []
        self._names = 0  # names (N_k, ξ_k) are local to one group of displays
        for lhs, rhs in entries:
            self._tell()
            laid = self._lay_out(lhs, rhs)
            if laid is None:
                too_long.append((lhs, rhs))
                continue
            groups.append(laid)
        out = _displays(groups)
        if too_long:
            names = ", ".join(f"${lhs}$" for lhs, _ in too_long)
            sizes = [tree_size(rhs, MAX_TYPESET_NODES) for _, rhs in too_long]
            if max(sizes) > MAX_TYPESET_NODES:
                size = f"more than {MAX_TYPESET_NODES:,} nodes"
            else:
                size = f"{sum(sizes):,} nodes in all"
            out += (
                f"Too long to print readably ({names}: {size}); "
                f"written out in \\texttt{{{APPENDIX_FILE}}} beside this report.\n"
            )
            for lhs, rhs in too_long:
                self.overflow.append((f"{title}: {lhs}" if title else lhs, rhs))
        return out

    def _tell(self) -> None:
        """Say how far the layout is, every few seconds (long formulas take a while)."""
        self._laid += 1
        if self.progress is not None and time.monotonic() - self._said > 3.0:
            self._said = time.monotonic()
            self.progress(f"latex    {self._laid} formulas laid out, {len(self.overflow)} too long")

    def appendix_text(self, title: str) -> str:
        """The contents of :data:`APPENDIX_FILE` (SymPy's plain-text printer)."""
        parts = [f"{title}\n\nFormulas too long for the PDF, in full (SymPy's str form).\n"]
        for name, expr in self.overflow:
            if tree_size(expr, MAX_WRITTEN_NODES) > MAX_WRITTEN_NODES:
                shown = f"(too large to write out: more than {MAX_WRITTEN_NODES:,} nodes)"
            else:
                shown = sp.sstr(expr)
            parts.append(f"{name} =\n{shown}\n")
        return "\n".join(parts)

    def _lay_out(self, lhs: str, rhs: sp.Basic) -> list[str] | None:
        """Aligned lines of ``lhs = rhs`` within the budget, or None when it does not fit."""
        if tree_size(rhs, MAX_TYPESET_NODES) > MAX_TYPESET_NODES:
            return None  # too large to typeset: each step below walks the whole tree
        rhs = decimal_numbers(sp.sympify(rhs))
        if sp.count_ops(rhs) <= _REWRITE_OPS and self.rewrite_steps > 0:
            before = steps_spent()
            rhs = readable(rhs, min(REWRITE_STEPS, self.rewrite_steps))
            self.rewrite_steps -= steps_spent() - before
        room = max(LINE_BUDGET - visible_length(lhs), 30)
        direct = self._lines(lhs, rhs, room)
        if _fits(direct):
            return direct
        subs, reduced = named_parts(rhs, start=self._names + 1)
        self._names += len(subs)
        if not subs:
            return None
        names = ", ".join(tex(s) for s, _ in subs)
        lines = self._lines(lhs, reduced, room)
        lines[-1] += (
            rf", \quad \text{{where }} {names}:" if len(subs) > 1 else r", \quad \text{where}"
        )
        for sym, part in subs:
            lines += self._lines(tex(sym), part, room)
        return lines if _fits(lines) else None

    def _lines(self, lhs: str, rhs: sp.Basic, room: int) -> list[str]:
        if isinstance(rhs, sp.MatrixBase):
            return [f"{lhs} &= {tex(rhs)}"]
        num, den = sp.fraction(sp.together(rhs)) if not isinstance(rhs, sp.Add) else (rhs, 1)
        if visible_length(tex(rhs)) > room and den != 1:
            self._names += 1
            n, d = f"N_{{{self._names}}}", f"D_{{{self._names}}}"
            out = [rf"{lhs} &= \frac{{{n}}}{{{d}}}, \quad \text{{where}}"]
            for name, part in ((n, num), (d, den)):
                pieces = split_sum(part, room)
                out.append(f"{name} &= {pieces[0]}")
                out.extend(rf"&\quad {piece}" for piece in pieces[1:])
            return out
        parts = split_sum(rhs, room)
        return [f"{lhs} &= {parts[0]}"] + [rf"&\quad {part}" for part in parts[1:]]


def _displays(groups: list[list[str]]) -> str:
    """Aligned displays of whole formulas, at most :data:`MAX_LINES` lines each (page breaks
    fall between displays, so never inside a formula)."""
    blocks: list[list[str]] = []
    for lines in groups:
        if blocks and len(blocks[-1]) + len(lines) <= MAX_LINES:
            blocks[-1] += lines
        else:
            blocks.append(list(lines))
    return "".join(
        display("\\begin{aligned}\n" + " \\\\\n".join(block) + "\n\\end{aligned}")
        for block in blocks
    )


def _fits(lines: list[str]) -> bool:
    return len(lines) <= MAX_LINES and all(visible_length(line) <= MAX_LINE for line in lines)
