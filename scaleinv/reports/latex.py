r"""LaTeX building blocks: escaped text, numbers, tables, and formulas that fit the page.

Formulas come from :func:`sympy.latex`; this module only arranges them. A long sum is split
at its top-level terms into several lines of an ``aligned`` environment, a matrix too wide
for one line is written entry by entry, and every display is wrapped in ``\fitmath``, which
shrinks it to the line width only if it still overflows. Only packages of
``texlive-latex-base`` and ``texlive-latex-recommended`` are used (no ``breqn``, no
``adjustbox``): :data:`PREAMBLE` defines ``\fitmath`` with ``graphicx``'s ``\resizebox``.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

import sympy as sp

from scaleinv.symbolic.budget import with_budget

__all__ = ["PREAMBLE", "escape", "prose", "number", "vector", "text_vector", "tex"]
__all__ += ["visible_length"]
__all__ += ["split_sum", "display", "equations", "table", "Latex", "readable"]

#: The document preamble (article class, base/recommended packages, ``\fitmath``).
PREAMBLE = r"""\documentclass[10pt,a4paper]{article}
\usepackage[margin=2.2cm]{geometry}
\usepackage{amsmath,amssymb}
\usepackage{graphicx}
\usepackage{booktabs,longtable,array}
\usepackage{float}
\usepackage[font=small,labelfont=bf]{caption}
\usepackage[hidelinks]{hyperref}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
\setlength{\LTpre}{0.5em}
\setlength{\LTpost}{0.5em}
% Start a new page unless #1 lines are left on this one (keeps a heading with its content).
\makeatletter
\newcommand{\needlines}[1]{\par\begingroup\dimen@=#1\baselineskip
\dimen@ii=\pagegoal\advance\dimen@ii-\pagetotal
\ifdim\dimen@>\dimen@ii\ifdim\dimen@ii>\z@\vfil\fi\penalty-\@M\fi\endgroup}
\makeatother
% A display that shrinks to the line width only when it would overflow.
\newcommand{\fitmath}[1]{\begin{center}%
\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{$\displaystyle #1$}%
\end{center}}
"""

#: Visible characters per display line before a sum is split (10 pt, A4, 2.2 cm margins).
LINE_BUDGET = 72
#: Formulas longer than this many visible characters are not printed (say so instead).
PRINT_LIMIT = 3000

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
# fmt: off
_UNICODE = {
    "½": r"$\frac{1}{2}$", "²": r"$^2$", "³": r"$^3$", "⁻": r"$^{-}$", "¹": r"$^1$",
    "→": r"$\to$", "←": r"$\leftarrow$", "↦": r"$\mapsto$", "∂": r"$\partial$",
    "∇": r"$\nabla$", "Δ": r"$\Delta$", "η": r"$\eta$", "α": r"$\alpha$", "β": r"$\beta$",
    "θ": r"$\theta$", "σ": r"$\sigma$", "Σ": r"$\Sigma$", "λ": r"$\lambda$", "μ": r"$\mu$",
    "π": r"$\pi$", "τ": r"$\tau$", "ω": r"$\omega$", "φ": r"$\phi$", "γ": r"$\gamma$",
    "≤": r"$\le$", "≥": r"$\ge$", "≠": r"$\ne$", "≈": r"$\approx$", "≡": r"$\equiv$",
    "×": r"$\times$", "·": r"$\cdot$", "∘": r"$\circ$", "−": "$-$", "–": "--", "—": "---",
    "‖": r"$\|$", "∞": r"$\infty$", "∈": r"$\in$", "√": r"$\surd$", "…": r"\dots{}",
    "⁺": r"$^{+}$", "⊤": r"$^\top$", "ᵀ": r"$^\top$", "‘": "`", "’": "'", "“": "``",
    "”": "''", "✓": "yes", "✗": "no", "±": r"$\pm$", "∝": r"$\propto$",
    "∥": r"$\parallel$", "∫": r"$\int$", "ˣ": r"$^{x}$", "ᵛ": r"$^{v}$", "ẋ": r"$\dot{x}$",
    "⁽": r"$^{(}$", "⁾": r"$^{)}$", "∑": r"$\sum$", "∏": r"$\prod$", "≪": r"$\ll$",
    "≫": r"$\gg$", "⇒": r"$\Rightarrow$", "⇔": r"$\Leftrightarrow$", "ℒ": r"$\mathcal{L}$",
    "𝒫": r"$\mathcal{P}$", "∼": r"$\sim$", "ᵢ": r"$_{i}$", "ⱼ": r"$_{j}$", "ₖ": r"$_{k}$",
    "ₙ": r"$_{n}$", "₊": r"$_{+}$", "₋": r"$_{-}$",
}
# fmt: on
_UNICODE.update({chr(0x2080 + d): f"$_{{{d}}}$" for d in range(10)})  # subscript digits
_UNICODE.update({ch: f"$^{{{d}}}$" for d, ch in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")})  # superscripts
_MACRO = re.compile(r"\\[A-Za-z]+|\\.")


def escape(text: str) -> str:
    r"""Plain text as LaTeX: specials escaped, common Unicode symbols as math.

    Other non-ASCII characters are reduced to ASCII (accents dropped) or shown as ``?``, and
    control characters (but newlines) become spaces, so no user text can break the document.

    Examples
    --------
    >>> escape("x_1 & 50% of ½|y − y*|² → η")
    'x\\_1 \\& 50\\% of $\\frac{1}{2}$\\textbar{}y $-$ y*\\textbar{}$^{2}$ $\\to$ $\\eta$'
    """
    out = []
    for ch in text:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ch in _UNICODE:
            out.append(_UNICODE[ch])
        elif ch == "\n" or " " <= ch < "\x7f":
            out.append(ch)
        elif ord(ch) < 128 or unicodedata.category(ch) in ("Zl", "Zp", "Cc"):
            out.append(" ")  # control characters (NUL, form feed, DEL, ...) and line separators
        else:
            out.append(_by_name(ch))
    return "".join(out)


def _by_name(ch: str) -> str:
    """A character outside the tables: a Greek letter or a subscript letter by its Unicode
    name (``κ`` → ``$\\kappa$``, ``ᵤ`` → ``$_{u}$``), else reduced to ASCII or ``?``."""
    name = unicodedata.name(ch, "")
    words = name.split()
    if name.startswith(("GREEK SMALL LETTER ", "GREEK CAPITAL LETTER ")) and len(words) == 4:
        letter = words[3].lower().replace("lamda", "lambda")
        if words[1] == "SMALL" and letter in _GREEK:
            return f"$\\{letter}$"
        if words[1] == "CAPITAL" and letter in _GREEK_CAPITALS:
            return f"$\\{letter.capitalize()}$"
    if name.startswith("LATIN SUBSCRIPT SMALL LETTER ") and len(words) == 5:
        return f"$_{{{words[4].lower()}}}$"
    plain = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
    return escape(plain) if plain else "?"


#: The Greek letters LaTeX names, and those whose capitals have a macro (the others look Latin).
_GREEK = set(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau "
    "upsilon phi chi psi omega".split()
)
_GREEK_CAPITALS = set("gamma delta theta lambda xi pi sigma upsilon phi psi omega".split())


#: A variable in the library's own prose: one letter (not the article "a"), then a subscript
#: (``L_yy``, ``s_0``, ``Δx_PG``) or digits (``x0``) and primes (``P'``); not inside a word,
#: an abbreviation (``e.g.``), a contraction (``it's``) or a compound (``1-D``).
_VARIABLE = re.compile(
    r"(?<![A-Za-z0-9_'’.\-])([B-Zb-zA])(?:_([A-Za-z0-9]+)|([0-9]+))?('*)"
    r"(?![A-Za-z0-9_'’]|\.[A-Za-z])"
)


def prose(text: str) -> str:
    r"""The library's own plain-text sentences (verdict notes, the ledger's statements) as
    LaTeX: like :func:`escape`, with its variables in math italic, as the formulas set them.

    Never for user text (titles, descriptions, labels): those go through :func:`escape`.

    Examples
    --------
    >>> print(prose("L_yy nonsingular at a point, e.g. x0; Δx_PG − y"))
    $L_{yy}$ nonsingular at a point, e.g. $x_{0}$; $\Delta$$x_{\mathrm{PG}}$ $-$ $y$
    >>> print(prose("it's O(Δy²) in 1-D, P'(x) ≠ 0, JᵀJ"))
    it's $O$($\Delta$$y$$^{2}$) in 1-D, $P'$($x$) $\ne$ 0, $J$$^\top$$J$
    """
    out, at = [], 0
    for found in _VARIABLE.finditer(text):
        out.append(escape(text[at : found.start()]))
        letter, sub, digits, primes = found.groups()
        index = sub if sub is not None else digits
        if index is not None:
            shown = rf"\mathrm{{{index}}}" if index.isupper() and len(index) > 1 else index
            letter += f"_{{{shown}}}"
        out.append(f"${letter}{primes}$")
        at = found.end()
    out.append(escape(text[at:]))
    return "".join(out)


def number(value: float, digits: int = 4) -> str:
    r"""A float as LaTeX math (no ``$``): ``1.5``, ``3 \times 10^{-7}``, ``\infty``.

    Examples
    --------
    >>> number(0.0000325), number(2.0), number(float("inf"))
    ('3.25 \\times 10^{-5}', '2', '\\infty')
    """
    value = float(value)
    if math.isnan(value):
        return r"\mathrm{nan}"
    if math.isinf(value):
        return r"\infty" if value > 0 else r"-\infty"
    text = f"{value:.{digits}g}"
    if "e" in text:
        mantissa, exp = text.split("e")
        return f"{mantissa} \\times 10^{{{int(exp)}}}"
    return text


def vector(values: Sequence[float], digits: int = 4) -> str:
    """``(a, b, ...)`` as LaTeX math (no ``$``)."""
    return r"\left(" + ", ".join(number(v, digits) for v in values) + r"\right)"


def text_vector(values: Iterable[float], digits: int = 4, keep: int = 6) -> str:
    r"""``(a, b, ...)`` for text and table cells: each number in math, breakable after commas.

    A vector longer than ``keep`` shows its first entries and its length.

    Examples
    --------
    >>> text_vector([1.5, 2e-9])
    '$(1.5$, $2 \\times 10^{-9})$'
    >>> text_vector(range(20), keep=3)
    '$(0$, $1$, $2$, $\\dots)$ (20 entries)'
    """
    values = list(values)
    shown = [number(v, digits) for v in values[:keep]]
    if len(values) > keep:
        return "$(" + "$, $".join([*shown, r"\dots"]) + f")$ ({len(values)} entries)"
    return "$(" + "$, $".join(shown) + ")$"


def tex(expr: object) -> str:
    """:func:`sympy.latex` of an expression, matrix, relation or boolean.

    Symbols named ``<name>_star`` print as ``<name>^*`` (the chapter's ``y^*``).

    Examples
    --------
    >>> tex(sp.Symbol("z_star") - sp.Symbol("y0"))
    '- y_{0} + z^{*}'
    """
    names = {
        s: sp.latex(sp.Symbol(s.name[:-5])) + "^{*}"
        for s in getattr(expr, "free_symbols", ())
        if isinstance(s, sp.Symbol) and s.name.endswith("_star") and len(s.name) > 5
    }
    return sp.latex(expr, symbol_names=names) if names else sp.latex(expr)


def visible_length(latex: str) -> int:
    r"""A rough width of rendered LaTeX in characters (macros count one, braces none).

    Examples
    --------
    >>> visible_length(r"\alpha^{2} x_{1}")
    4
    """
    stripped = latex.replace(r"\left", "").replace(r"\right", "")
    stripped = _MACRO.sub("#", stripped)
    return sum(1 for ch in stripped if ch not in "{}^_ ")


def split_sum(
    expr: sp.Expr, budget: int = LINE_BUDGET, printer: Callable[[sp.Basic], str] | None = None
) -> list[str]:
    r"""``expr`` as LaTeX lines of at most about ``budget`` visible characters.

    A sum is cut between its top-level terms (each later line starts with its sign); anything
    else stays one line (``\fitmath`` shrinks it if needed). ``printer`` (default :func:`tex`)
    writes each piece.

    Examples
    --------
    >>> x = sp.symbols("x0:12")
    >>> lines = split_sum(sum(xi**2 for xi in x), budget=30)
    >>> len(lines) > 1, lines[1].startswith("+")
    (True, True)
    """
    expr = sp.sympify(expr)
    tex_ = printer or tex
    whole = tex_(expr)
    if not isinstance(expr, sp.Add) or visible_length(whole) <= budget:
        return [whole]
    lines: list[str] = []
    current = ""
    for i, term in enumerate(expr.as_ordered_terms()):
        negative = term.could_extract_minus_sign()
        body = tex_(-term if negative else term)
        if isinstance(-term if negative else term, sp.Add):
            body = rf"\left({body}\right)"
        piece = ("- " if negative else "") + body if i == 0 else ("- " if negative else "+ ") + body
        if current and visible_length(current + piece) > budget:
            lines.append(current.rstrip())
            current = ""
        current += piece + " "
    lines.append(current.rstrip())
    return lines


def display(latex: str) -> str:
    r"""One display formula, shrunk to the line width if it would overflow."""
    return f"\\fitmath{{{latex}}}\n"


def readable(expr: sp.Basic, steps: int = 400_000) -> sp.Basic:
    """``expr`` in its shortest printed form among itself, ``simplify`` and ``factor``.

    Only for display: every candidate equals ``expr``. Expressions that already fit on one
    line are returned unchanged; each rewrite runs within ``steps`` counted steps
    (:func:`~scaleinv.symbolic.budget.with_budget`).

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> readable(x**2 + 2 * x + 1)
    x**2 + 2*x + 1
    """
    expr = sp.sympify(expr)
    best, width = expr, visible_length(tex(expr))
    if width <= LINE_BUDGET or isinstance(expr, sp.MatrixBase):
        return expr
    for rewrite in (sp.factor, sp.simplify):
        try:
            candidate = with_budget(functools.partial(rewrite, expr), steps, "display rewrite")
        except Exception:  # noqa: BLE001 - a display rewrite may fail; keep the formula as is
            continue
        size = visible_length(tex(candidate))
        if size < width:
            best, width = candidate, size
    return best


def equations(entries: Sequence[tuple[str, sp.Basic]], budget: int = LINE_BUDGET) -> str:
    r"""Displays of ``lhs = rhs`` rows (lhs LaTeX, rhs SymPy) that fit the page.

    Each ``rhs`` is first put in its shortest form (:func:`readable`). A long sum is split
    over lines at its terms; a long fraction is written ``N_k / D_k`` with numerator and
    denominator on their own (split) lines. Rows are grouped into ``aligned`` blocks of at
    most 12 lines so that page breaks can fall between blocks. A formula longer than
    :data:`PRINT_LIMIT` visible characters is replaced by a sentence saying how many
    operations it has.
    """
    lines: list[str] = []
    fractions = 0
    for lhs, rhs in entries:
        rhs = readable(rhs)
        room = max(budget - visible_length(lhs), 30)
        if visible_length(tex(rhs)) > PRINT_LIMIT:
            note = rf"\text{{(too long to print: {sp.count_ops(rhs)} operations)}}"
            lines.append(f"{lhs} &= {note}")
            continue
        num, den = sp.fraction(sp.together(rhs)) if not isinstance(rhs, sp.Add) else (rhs, 1)
        if visible_length(tex(rhs)) > room and den != 1:
            fractions += 1
            n, d = f"N_{{{fractions}}}", f"D_{{{fractions}}}"
            lines.append(rf"{lhs} &= {n} / {d}, \quad \text{{where}}")
            for name, part in ((n, num), (d, den)):
                pieces = split_sum(sp.expand(part) if _shorter_expanded(part) else part, room)
                lines.append(f"{name} &= {pieces[0]}")
                lines.extend(rf"&\quad {piece}" for piece in pieces[1:])
            continue
        parts = split_sum(rhs, room)
        lines.append(f"{lhs} &= {parts[0]}")
        lines.extend(rf"&\quad {part}" for part in parts[1:])
    blocks = [lines[i : i + 12] for i in range(0, len(lines), 12)]
    return "".join(
        display("\\begin{aligned}\n" + " \\\\\n".join(block) + "\n\\end{aligned}")
        for block in blocks
    )


def _shorter_expanded(expr: sp.Expr) -> bool:
    """Whether a product is better shown expanded (so that it can be split at its terms)."""
    return not isinstance(expr, sp.Add) and visible_length(tex(expr)) > LINE_BUDGET


class Latex(str):
    r"""Text that is LaTeX already, so :func:`table` sets it as it is (a head such as
    ``$(r, \phi)$``); plain ``str`` heads are escaped."""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], spec: str) -> str:
    r"""A ``longtable`` with booktabs rules; ``headers`` are plain text (or :class:`Latex`),
    cells are LaTeX.

    ``spec`` is the column specification, e.g. ``"l l >{\raggedright\arraybackslash}p{6cm}"``.
    No page break falls after the first row or before the last (``\\*``), so a table is
    never split leaving one row alone.
    """
    heads = (h if isinstance(h, Latex) else escape(h) for h in headers)
    head = " & ".join(rf"\textbf{{{h}}}" for h in heads) + r" \\"
    ends = [r" \\*" if k == 0 or k >= len(rows) - 2 else r" \\" for k in range(len(rows))]
    body = "\n".join(" & ".join(row) + end for row, end in zip(rows, ends))
    return (
        f"\\begin{{longtable}}{{{spec}}}\n\\toprule\n{head}\n\\midrule\n\\endhead\n"
        f"{body}\n\\bottomrule\n\\end{{longtable}}\n"
    )
