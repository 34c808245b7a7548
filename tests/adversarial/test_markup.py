"""Adversarial: text from a user reaches notebook Markdown escaped, never as HTML."""

from __future__ import annotations

import dataclasses
import html
import re

import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from scaleinv import Problem, rules
from scaleinv.analysis.claims.statement import Statement
from scaleinv.analysis.invariance import InputScaling, scale_invariance
from scaleinv.markup import markdown_math, markdown_text
from scaleinv.reports.verdicts import VerdictRow

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def _unescaped(markdown: str) -> str:
    """Undo both escapes (a second path: what a renderer shows as text)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


@given(st.text(max_size=60))
def test_markdown_text_shows_any_text_literally(text: str) -> None:
    shown = markdown_text(text)
    assert "<" not in shown and ">" not in shown and "\n" not in shown
    assert _unescaped(shown) == " ".join(text.splitlines())


@given(st.text(max_size=60))
def test_markdown_math_never_holds_a_tag(tex: str) -> None:
    shown = markdown_math(tex)
    assert "<" not in shown and ">" not in shown
    assert html.unescape(shown) == " ".join(tex.splitlines())


def test_a_verdict_row_with_a_hostile_label_renders_no_html() -> None:
    row = VerdictRow(
        check="units", subject=HOSTILE, verdict="consistent", detail=f"$x$ {HOSTILE}",
        aspect=HOSTILE,
    )  # fmt: skip
    shown = row._repr_markdown_()
    assert "<" not in shown and "alert(1)" in shown


def test_a_statement_and_an_invariance_result_render_no_html() -> None:
    assert "<" not in Statement((HOSTILE, sp.Symbol("x")))._repr_markdown_()
    p = Problem.from_strings(["x0", "x1"], ["x0", "x1"], "y0**2 + y1**2")
    result = scale_invariance(p, rules.gd(sp.Symbol("eta")), InputScaling({"x1": "2"}), rng=0)
    result = dataclasses.replace(result, rule=HOSTILE, note=HOSTILE)
    shown = result._repr_markdown_()
    assert "<" not in shown and "onerror" in shown
