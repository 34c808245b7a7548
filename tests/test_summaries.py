"""Terminal summaries of ``run --starts``, ``study`` and ``report``: one ``note:`` line where a
rule solves ``P(x) = y`` numerically (never the raw warning), and every row named."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleinv.cli.main import main
from scaleinv.numeric import Status

#: PG's inverse of x + 2 sin x is numeric, and fails at its folds (1 + 2 cos x = 0).
FOLD = """\
title = "Fold"

[problem]
inputs = ["x"]
outputs = ["x + 2*sin(x)"]
target = [0.5]

[run]
starts = [[1.0], [-4.0]]
steps = 20

[[rules]]
name = "gd"
eta = 0.3

[[rules]]
name = "pg"
eta = 1

[study]
region = [[-6, 6]]
starts = 41
"""

NOTE = "note: PG solves P(x) = y numerically at every step"


@pytest.fixture()
def fold(tmp_path) -> Path:
    path = tmp_path / "fold.toml"
    path.write_text(FOLD, encoding="utf-8")
    return path


def _one_note(out: str) -> None:
    """The note once, on its own line (the raw warning would fail the test: it is an error
    under the test suite's warning filter)."""
    assert sum(line.startswith(NOTE) for line in out.splitlines()) == 1


@pytest.mark.parametrize(
    "command", [["run"], ["run", "--starts", "20"], ["study"], ["study", "--starts", "15"]]
)
def test_a_numeric_inverse_is_one_note_line(fold, capsys, command) -> None:
    assert main([command[0], str(fold), *command[1:]]) == 0
    captured = capsys.readouterr()
    _one_note(captured.out)
    assert "Warning" not in captured.err and "Warning" not in captured.out


@pytest.mark.slow
def test_the_report_summary_has_the_note_a_start_column_and_the_study(
    fold, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    assert main(["report", str(fold), "--out", str(out), "--no-pdf"]) == 0
    captured = capsys.readouterr()
    _one_note(captured.out)
    assert "Warning" not in captured.err
    lines = captured.out.splitlines()
    head = lines.index("results") + 1
    assert lines[head].split()[:2] == ["rule", "start"]
    gd = [row for row in lines[head + 2 : head + 6] if row.startswith("GD (η=0.3)")]
    assert [row.split()[2] for row in gd] == ["(1)", "(-4)"]  # each start named
    tex = (out / "report.tex").read_text(encoding="utf-8")
    # the study's PG runs that meet a fold are counted in words (a status without words
    # crashed the report)
    assert "Many starts" in tex and f"{Status.NOT_FOUND.words}: " in tex
