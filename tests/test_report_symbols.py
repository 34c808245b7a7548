"""Every input, output and param name that reaches the report's LaTeX is typeset as a symbol
(``phi`` as ``\\phi``, ``y0`` as ``y_{0}``), as the formulas set it, never as its code name."""

from __future__ import annotations

import re

import pytest

from scaleinv.reports.content import derive, report_options, run_rules
from scaleinv.reports.document import _target
from scaleinv.reports.landscapes import trajectory_figure
from scaleinv.reports.study import run_study
from scaleinv.reports.study_text import study_tex
from scaleinv.symbolic import parse_spec

#: Three inputs with Greek names: the trajectory figure is a 2-D slice, named in its caption.
POLAR = {
    "title": "polar",
    "problem": {
        "inputs": ["r", "phi", "theta"],
        "outputs": ["r*cos(phi)", "r*sin(phi)", "theta"],
        "target": [1.2, 0.9, 0.3],
    },
    "run": {"starts": [[0.5, 2.0, 1.0]], "steps": 6},
    "rules": [{"name": "gd", "eta": 0.1}, {"name": "ig", "eta": 1}],
    "study": {"region": [[0.5, 2], [-1, 1], [-1, 1]], "starts": 8, "steps": 30, "tol": 1e-6},
}


def _code_names(latex: str, names: list[str]) -> list[str]:
    """The names that stand in ``latex`` as bare words (not as ``\\phi``, ``y_{0}``)."""
    return [n for n in names if re.search(rf"(?<![\\A-Za-z_]){n}(?![A-Za-z_0-9])", latex)]


@pytest.fixture(scope="module")
def polar():
    spec = parse_spec(POLAR)
    _, runs = derive(spec)
    return spec, run_rules(spec, runs), report_options(spec)


def test_the_study_section_typesets_the_input_names(polar) -> None:
    spec, _, _ = polar
    section = study_tex(run_study(spec), spec)
    head = next(line for line in section.splitlines() if line.startswith(r"\textbf{minimum}"))
    assert r"$(r, \phi, \theta)$" in head
    assert _code_names(section, ["phi", "theta"]) == []


def test_the_slice_caption_names_its_plane_as_symbols(polar) -> None:
    spec, runs, options = polar
    _, caption = trajectory_figure(spec.problem, runs, options)
    assert re.search(r"over \$\\(phi|theta)\$ and \$\\(phi|theta)\$|over \$r\$ and", caption)
    assert r"over $y_{0}$ and $y_{1}$" in caption  # output space: y0, y1 move most
    assert _code_names(caption, ["phi", "theta", "y0", "y1", "y2"]) == []


def test_a_loss_blind_to_an_output_names_it_as_a_symbol() -> None:
    spec = parse_spec(
        {
            "problem": {"inputs": ["phi", "theta"], "outputs": ["phi", "theta"],
                        "loss": "(y0 - 1)**2"},
            "run": {"starts": [[0, 0]]},
            "rules": [{"name": "gd", "eta": 0.1}],
        }
    )  # fmt: skip
    text = _target(spec)
    assert "$y_{1}$" in text and _code_names(text, ["y1"]) == []
