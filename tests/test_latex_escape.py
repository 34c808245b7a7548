"""Text from specs reaches LaTeX through ``escape``: letters a physicist writes stay letters."""

from __future__ import annotations

import unicodedata

from scaleinv.reports.latex import escape


def test_every_greek_small_letter_becomes_its_macro() -> None:
    for code in range(0x3B1, 0x3CA):
        ch = chr(code)
        if ch == "ς":  # final sigma: no macro of its own
            continue
        name = unicodedata.name(ch).split()[-1].lower().replace("lamda", "lambda")
        if name == "omicron":
            assert escape(ch) == "?"
            continue
        assert escape(ch) == f"$\\{name}$", ch


def test_subscript_letters_and_greek_capitals_with_macros() -> None:
    # the Brusselator's description: u ← u + κᵤ Δu
    assert escape("κᵤ Δu") == r"$\kappa$$_{u}$ $\Delta$u"
    assert escape("Ωₓ") == r"$\Omega$$_{x}$"
    assert escape("Α") == "?"  # a capital alpha has no macro (it looks Latin)
