"""Escaping for the markup languages a notebook renders: one function per language.

Jupyter renders a ``_repr_markdown_`` as Markdown *with* raw HTML, so any text that came
from a user (a rule's label, a spec's names) must reach it escaped, exactly as LaTeX
(:func:`scaleinv.reports.latex.escape`) and Python source (:mod:`scaleinv.numeric.pysource`)
already are. Mathematics between ``$…$`` goes through :func:`markdown_math` (HTML escaped,
LaTeX untouched); everything else through :func:`markdown_text`.
"""

from __future__ import annotations

import html

__all__ = ["markdown_math", "markdown_text"]

#: Characters that start Markdown syntax inline (emphasis, code, links, tables, math).
_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]|$~#!"})


def markdown_text(text: object) -> str:
    """``text`` as Markdown that shows it literally: no HTML, no emphasis, one line.

    Examples
    --------
    >>> markdown_text("<img src=x onerror=alert(1)> *GD* & $x$")
    '&lt;img src=x onerror=alert(1)&gt; \\\\*GD\\\\* &amp; \\\\$x\\\\$'
    """
    one_line = " ".join(str(text).splitlines())
    return html.escape(one_line, quote=False).translate(_MARKDOWN)


def markdown_math(tex: object) -> str:
    """LaTeX meant for ``$…$`` in Markdown: HTML-escaped, so it can never become a tag.

    The browser turns ``&lt;`` back into ``<`` before MathJax reads the formula.

    Examples
    --------
    >>> markdown_math(r"x < \\frac{1}{2}")
    'x &lt; \\\\frac{1}{2}'
    """
    return html.escape(" ".join(str(tex).splitlines()), quote=False)
