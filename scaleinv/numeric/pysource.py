"""Text in generated Python source: the one way user text gets there, as an inert literal.

Titles, descriptions, symbol names and printed expressions reach the modules scaleinv
generates (:mod:`scaleinv.numeric.kernels`, :func:`scaleinv.export`) only inside a docstring
built by :func:`docstring`. Its value is exactly the text, and nothing in the text can end the
literal, start an escape sequence, or break a line of the source.

Long sums and products are written in balanced groups (:func:`balanced`), so that the source
of a large problem stays within what Python's compiler can nest.
"""

from __future__ import annotations

__all__ = ["docstring", "SUM_GROUP", "balanced"]

#: Sums and products of more terms than this are printed as balanced groups of this many
#: (``(a + b + ...) + (...)``): Python's compiler nests a flat ``a + b + ...`` one level per
#: term and gives up (RecursionError) at about 3,000 terms, e.g. the loss of 3,000 outputs.
SUM_GROUP = 64

#: Characters kept as they are, besides the printable ones.
_KEPT = frozenset("\n ")
#: Characters with a short escape (the backslash and the quote escape themselves).
_ESCAPED = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\r": "\\r"}


def _escape(ch: str) -> str:
    if ch in _ESCAPED:
        return _ESCAPED[ch]
    if ch in _KEPT or ch.isprintable():
        return ch
    code = ord(ch)  # control characters, NUL, line and paragraph separators, surrogates
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def docstring(text: str) -> str:
    r"""A triple-quoted Python string literal whose value is exactly ``text``.

    Backslashes and quotes are escaped, every character that is not printable (NUL,
    control characters, U+2028/U+2029 line separators, lone surrogates) becomes a ``\x``,
    ``\u`` or ``\U`` escape, and newlines stay newlines (so the docstring reads as text).

    Examples
    --------
    >>> text = "pwn" + '"' * 3 + "\nimport os  # C:\\new\\N \u2028"
    >>> print(docstring(text)[3:-3])  # between the opening and the closing quotes
    pwn\"\"\"
    import os  # C:\\new\\N \u2028
    >>> import ast
    >>> ast.literal_eval(docstring(text)) == text
    True
    """
    return '"""' + "".join(map(_escape, text)) + '"""'


def balanced(terms: list[str], op: str) -> str:
    """``terms`` joined by ``op``, in parenthesized groups of at most :data:`SUM_GROUP` (then
    groups of groups): the nesting Python's compiler sees grows with the logarithm of the
    number of terms, not with it.

    Examples
    --------
    >>> balanced(["a", "b", "c"], " + ")
    'a + b + c'
    >>> balanced([f"x{i}" for i in range(130)], "*").count("(")
    3
    """
    while len(terms) > SUM_GROUP:
        terms = [f"({op.join(terms[i : i + SUM_GROUP])})" for i in range(0, len(terms), SUM_GROUP)]
    return op.join(terms)
