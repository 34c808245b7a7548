r"""Statements of the claims ledger as structured data: text with SymPy expressions in it.

A :class:`Statement` is a sequence of parts, each plain text or a SymPy object. Nothing is
pre-rendered: the PDF prints the expressions with SymPy's LaTeX printer, the terminal with its
string printer, a notebook as Markdown with inline math. Names that are not plain symbols
(``Δx_GD``, ``y*``, ``L″``) are symbols with a display name in :data:`DISPLAY_TEX`.

Examples
--------
>>> alpha, eta = sp.symbols("alpha eta", positive=True)
>>> s = Statement.of("L = αx: {dx} = {v} exactly", dx=DX["GD"], v=-eta * alpha)
>>> s.text()
'L = αx: Δx_GD = -α·η exactly'
>>> s.latex_parts(lambda t: t)
'L = αx: $\\Delta x_{\\mathrm{GD}}$ = $- \\alpha \\eta$ exactly'
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pretty.pretty_symbology import pretty_symbol
from sympy.printing.str import StrPrinter

from scaleinv.markup import markdown_math, markdown_text

__all__ = ["Statement", "DX", "DISPLAY_TEX", "statement", "sym", "latex"]

#: Display names (LaTeX) of the ledger's non-plain symbols; their str form is the symbol name.
DISPLAY_TEX: dict[sp.Symbol, str] = {}


def sym(name: str, latex: str) -> sp.Symbol:
    """A symbol printed as ``name`` on the terminal and as ``latex`` in the PDF."""
    symbol = sp.Symbol(name)
    DISPLAY_TEX[symbol] = latex
    return symbol


#: ``Δx`` of each rule (``Δx_GD``, ``Δx_QN``, ``Δx_IG``, ``Δx_PG``).
DX = {r: sym(f"Δx_{r}", rf"\Delta x_{{\mathrm{{{r}}}}}") for r in ("GD", "QN", "IG", "PG")}
sym("Δx", r"\Delta x")
sym("Δy", r"\Delta y")
sym("ΔL", r"\Delta L")
sym("y*", "y^*")
sym("x*", "x^*")


@dataclass(frozen=True)
class Statement:
    """Text and SymPy expressions, in order.

    Attributes
    ----------
    parts : tuple of (str or Basic)
    """

    parts: tuple[Any, ...]

    @classmethod
    def of(cls, template: str, **exprs: Any) -> Statement:
        """``template`` with each ``{name}`` replaced by the SymPy object ``exprs[name]``."""
        parts: list[Any] = []
        for text, name, _, _ in string.Formatter().parse(template):
            if text:
                parts.append(text)
            if name is not None:
                parts.append(exprs[name])
        return cls(tuple(parts))

    @classmethod
    def prose(cls, text: str) -> Statement:
        """Hand-written text with its symbols made SymPy parts.

        ``x0`` becomes the symbol ``x0`` (printed ``x_{0}``), ``Δx_PG`` the rule's ``Δx``,
        ``L''`` and ``y'`` primed symbols, ``x*`` and ``y*`` starred ones; the rest stays text.

        Examples
        --------
        >>> [type(p).__name__ for p in Statement.prose("P(x0 + Δx_PG) = y0").parts]
        ['str', 'Symbol', 'str', 'Symbol', 'str', 'Symbol']
        """
        parts: list[Any] = []
        last = 0
        for match in _TOKEN.finditer(text):
            if match.start() > last:
                parts.append(text[last : match.start()])
            parts.append(_token_symbol(match.group()))
            last = match.end()
        if last < len(text):
            parts.append(text[last:])
        return cls(tuple(parts))

    def __add__(self, other: object) -> Statement:
        if isinstance(other, str):
            return Statement((*self.parts, other))
        if isinstance(other, Statement):
            return Statement((*self.parts, *other.parts))
        return NotImplemented

    def __bool__(self) -> bool:
        return bool(self.parts)

    def text(self) -> str:
        """Plain text: expressions by SymPy's string printer."""
        return "".join(p if isinstance(p, str) else _plain(p) for p in self.parts)

    __str__ = text

    def latex_parts(self, escape: Callable[[str], str]) -> str:
        """LaTeX: text through ``escape``, expressions in ``$…$`` by SymPy's LaTeX printer."""
        return "".join(escape(p) if isinstance(p, str) else f"${latex(p)}$" for p in self.parts)

    def _repr_markdown_(self) -> str:
        return "".join(
            markdown_text(p) if isinstance(p, str) else f"${markdown_math(latex(p))}$"
            for p in self.parts
        )


def latex(expr: Any) -> str:
    """SymPy's LaTeX of ``expr`` with the ledger's display names (``Δy2`` as ``\\Delta y_{2}``)."""
    names = dict(DISPLAY_TEX)
    for symbol in getattr(expr, "free_symbols", ()):
        name = getattr(symbol, "name", "")
        if symbol not in names and name.startswith("Δ") and len(name) > 1:
            names[symbol] = r"\Delta " + sp.latex(sp.Symbol(name[1:]))
    return sp.latex(expr, symbol_names=names)


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


class _OneLine(StrPrinter):
    """SymPy's string printer, made to read as text: Greek letters, ``=``, ``∈``, ``x²``."""

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        return pretty_symbol(expr.name)

    def _print_Equality(self, expr: Any) -> str:
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"

    def _print_Contains(self, expr: Any) -> str:
        return f"{self._print(expr.args[0])} ∈ {self._print(expr.args[1])}"

    def _print_Interval(self, expr: Any) -> str:
        left, right = "(" if expr.left_open else "[", ")" if expr.right_open else "]"
        return f"{left}{self._print(expr.start)}, {self._print(expr.end)}{right}"

    def _print_Derivative(self, expr: Any) -> str:
        (var, count), *_ = expr.variable_count
        order = "" if count == 1 else str(count).translate(_SUPERSCRIPT)
        return f"∂{order}{self._print(expr.expr)}/∂{self._print(var)}{order}"

    def _print_Pow(self, expr: Any, rational: bool = False) -> str:
        base, exp = expr.as_base_exp()
        shown = self.parenthesize(base, PRECEDENCE["Pow"], strict=False)
        if isinstance(base, sp.Derivative):
            shown = f"({shown})"
        if exp == sp.S.Half:
            return f"√{shown}"
        if exp.is_Integer and exp > 0:
            return shown + str(exp).translate(_SUPERSCRIPT)
        if exp.is_Integer and exp < 0:
            return f"1/{shown}" + ("" if exp == -1 else str(-exp).translate(_SUPERSCRIPT))
        return f"{shown}^({self._print(exp)})"

    def _print_Mul(self, expr: Any) -> str:
        return re.sub(r"(?<!\*)\*(?!\*)", "·", super()._print_Mul(expr))


def _plain(expr: Any) -> str:
    return _OneLine({"order": None}).doprint(expr)


_TOKEN = re.compile(
    r"Δ[xyL](?:_(?:GD|QN|IG|PG|[a-z]\b))?|(?<![A-Za-z0-9_])[a-zA-Z]\d(?![A-Za-z0-9_])"
    r"|\b[a-z]_[a-z]\b|\b[A-Za-z]'{1,2}|\b[xy]\*"
)


def _token_symbol(token: str) -> sp.Symbol:
    symbol = sp.Symbol(token)
    if symbol in DISPLAY_TEX or token[-1].isdigit():
        return symbol
    if "_" in token:
        base, sub = token.split("_")
        return sym(token, (r"\Delta " + base[1:] if base[0] == "Δ" else base) + f"_{{{sub}}}")
    if token.endswith("'"):
        return sym(token, token)
    return sym(token, sp.latex(sp.Symbol(token[:-1])) + "^*")


def statement(value: str | Statement) -> Statement:
    """``value`` as a :class:`Statement`; plain text is read by :meth:`Statement.prose`."""
    return value if isinstance(value, Statement) else Statement.prose(value)
