"""``scaleinv verify``: the ledger table, one spec's checks, exit codes and help."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

from scaleinv import load_spec, rules
from scaleinv.analysis.claims import CLAIMS, Claim, ClaimVerdict, ledger
from scaleinv.analysis.claims.checks import Finding
from scaleinv.analysis.invariance import InputScaling, InvarianceReport, scale_invariance
from scaleinv.analysis.verdict import Verdict
from scaleinv.cli.exit_status import ExitCode
from scaleinv.cli.main import main
from scaleinv.cli.verify import plain_quote
from scaleinv.reports import spec_verdicts

ROOT = Path(__file__).resolve().parents[1]
TOY = """\
title = "Scaling toy"

[problem]
inputs = ["x1", "x2"]
outputs = ["x1", "alpha*x2"]
loss = "y0**2 + y1**2"

[params]
alpha = 3

[run]
starts = [[1, 1]]
steps = 5

[[rules]]
name = "gd"
eta = 0.01

[[rules]]
name = "newton"

[[rules]]
name = "ig"

[[rules]]
name = "pg"

[units]
x1 = "length"
x2 = "time"
alpha = "length/time"

[analysis]
scalings = [{ x2 = "1/alpha" }]
"""


@pytest.fixture()
def toy(tmp_path: Path) -> Path:
    path = tmp_path / "toy.toml"
    path.write_text(TOY)
    return path


def _rows(out: str) -> dict[tuple[str, str], list[str]]:
    """Table rows keyed by (rule, check) -> [verdict, chapter]; "GD (η=0.01)" is "GD".

    Columns are read at the positions of the rule under the header; a line with an empty
    first column continues the row above (wrapped cells)."""
    lines = out.splitlines()
    rule_line = next(i for i, line in enumerate(lines) if line.startswith("-----"))
    starts = [m.start() for m in re.finditer(r"-+", lines[rule_line])]
    spans = list(zip(starts, [*starts[1:], None]))
    table: list[list[str]] = []
    for line in lines[rule_line + 1 :]:
        if not line.strip():
            break
        cells = [line[a:b].strip() if b else line[a:].strip() for a, b in spans]
        if cells[0] or not table:
            table.append(cells)
        else:
            table[-1] = [f"{old} {new}".strip() for old, new in zip(table[-1], cells)]
    found = {}
    for cells in table:
        rule = cells[0].split(" (η=")[0]
        if rule in ("GD", "Newton", "IG", "PG"):
            found[(rule, cells[1])] = cells[2:4]
    return found


def test_verify_prints_the_whole_ledger(capsys) -> None:
    assert main(["verify"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for c in CLAIMS:
        row = next(line for line in lines if line.startswith(c.id + " "))
        assert c.expected.value in row
    assert f"{len(CLAIMS)} claims:" in out and "corrected" in out


def test_verify_one_claim_shows_quote_correction_and_derivation(capsys) -> None:
    assert main(["verify", "--claim", "pg-quotient-remainder"]) == 0
    out = capsys.readouterr().out
    c = ledger.claim("pg-quotient-remainder")
    assert plain_quote(c.quote) in out and c.correction.text() in out
    assert "-1/(8·x³)" in out and "\\frac" not in out and "\\(" not in out


def test_verify_exits_1_when_a_claim_that_should_hold_fails(monkeypatch, capsys) -> None:
    def broken(budget: float) -> Finding:
        return Finding(False, (), "made to fail")

    fake = Claim("fake-claim", "Somewhere", "q", "a statement", ClaimVerdict.HOLDS, broken)
    monkeypatch.setattr(ledger, "CLAIMS", (fake,))
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "fails !" in out and "fake-claim should hold but fails: made to fail" in out


def test_verify_spec_checks_units_scalings_and_composition(toy, capsys) -> None:
    assert main(["verify", str(toy)]) == 0
    rows = _rows(capsys.readouterr().out)
    scale = "scale invariance: x = S u, x2 -> 1/alpha*x2"
    assert rows[("GD", "units")] == ["inconsistent", "may fail"]
    assert rows[("GD", scale)] == ["refuted", "may fail"]
    for label in ("Newton", "IG", "PG"):
        assert rows[(label, "units")] == ["consistent", "holds"]
        assert rows[(label, scale)] == ["proved", "holds"]
    assert rows[("IG", "composition")] == ["proved", "holds"]
    assert rows[("PG", "composition")] == ["proved", "holds"]
    # the same verdicts straight from the analysis layer
    problem = load_spec(toy).problem
    eta = sp.Symbol("eta", positive=True)
    for name, label in (("gd", "GD"), ("newton", "Newton")):
        r = scale_invariance(
            problem,
            rules.REGISTRY[name](eta),
            InputScaling({"x2": "1/alpha"}),
            budget=4_000_000,
            rng=0,
        )
        assert rows[(label, scale)][0] == r.verdict.value


def test_the_verify_table_fits_the_terminal(toy, capsys) -> None:
    assert main(["verify", str(toy)]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert _rows(out)[("GD", "scale invariance: x = S u, x2 -> 1/alpha*x2")][0] == "refuted"


def test_verify_spec_units_from_the_command_line(capsys) -> None:
    spec = str(ROOT / "reports" / "comparison.toml")
    assert main(["verify", spec, "--units", "x0=length", "x1=length**(1/2)"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows[("GD", "units")][0] == "inconsistent"
    assert rows[("Newton", "units")][0] == "consistent"
    assert rows[("Newton", "composition")] == ["refuted", "may fail"]


def test_verify_spec_exits_1_when_a_promised_invariance_fails(toy, monkeypatch, capsys) -> None:
    real = spec_verdicts.scale_invariance

    def fake(problem, rule, transform, **kw) -> InvarianceReport:
        found = real(problem, rule, transform, **kw)
        if rule.name == "newton":
            return InvarianceReport(rule.name, found.transform, Verdict.REFUTED, (), None, "fake")
        return found

    monkeypatch.setattr(spec_verdicts, "scale_invariance", fake)
    assert main(["verify", str(toy)]) == 1
    out = capsys.readouterr().out
    assert "refuted !" in out and "of those that should hold, 1 failed" in out


def test_verify_spec_exits_3_when_a_promised_invariance_is_undecided(
    toy, monkeypatch, capsys
) -> None:
    """Issue 17: an undecided "should hold" check printed "0 ... failed" and exited 0."""
    real = spec_verdicts.scale_invariance

    def fake(problem, rule, transform, **kw) -> InvarianceReport:
        found = real(problem, rule, transform, **kw)
        if rule.name == "newton":
            return InvarianceReport(rule.name, found.transform, Verdict.UNDECIDED, (), None, "x")
        return found

    monkeypatch.setattr(spec_verdicts, "scale_invariance", fake)
    assert main(["verify", str(toy)]) == 3
    out = capsys.readouterr().out
    assert "undecided ?" in out and "0 failed and 1 not decided" in out


def test_verify_ledger_exits_3_when_a_claim_that_should_hold_is_undecided(
    monkeypatch, capsys
) -> None:
    def unknown(budget: float) -> Finding:
        return Finding(None, (), "ran out of budget")

    fake = Claim("fake-claim", "Somewhere", "q", "a statement", ClaimVerdict.HOLDS, unknown)
    monkeypatch.setattr(ledger, "CLAIMS", (fake,))
    assert main(["verify"]) == 3
    assert "fake-claim should hold but was not decided" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "derive", "export", "verify", "report", "study"])
def test_every_command_documents_its_exit_status(command, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 success" in help_text
    assert "2 bad input or an error" in help_text and "130 interrupted" in help_text
    assert ("3 no such check fails, but one of them was not decided" in help_text) == (
        command == "verify"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["verify", "--units", "x0=length"], "give a SPEC"),
        (["verify", "--claim", "no-such-claim"], "unknown claim"),
        (["verify", "--budget", "-1"], "must be 10_000 to 1_000_000_000 steps"),
        (["verify", "SPEC", "--units", "x0"], "NAME=DIMENSION"),
        (["verify", "SPEC", "--units", "x0=length", "x1=time", "y1=time"], "dimension"),
        (["verify", "SPEC", "--units", "x0=furlong", "x1=time"], "unknown dimension 'furlong'"),
        (["verify", "SPEC", "--claim", "gd-units"], "leave out the SPEC"),
    ],
)
def test_verify_bad_input_exits_2(argv, message, capsys) -> None:
    argv = [str(ROOT / "reports" / "comparison.toml") if a == "SPEC" else a for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_verify_help(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["verify", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "exit status" in out and "--units" in out and "scalings" in out


@pytest.mark.slow
def test_verify_as_a_subprocess() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scaleinv", "verify"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for c in CLAIMS:
        assert f"\n{c.id} " in done.stdout


ARM = """\
title = "Two-link arm reaching a point"

[problem]
inputs = ["q0", "q1"]
outputs = ["l1*cos(q0) + l2*cos(q0 + q1)", "l1*sin(q0) + l2*sin(q0 + q1)"]
target = [1.2, 0.5]

[params]
l1 = 1
l2 = 1

[units]
q0 = "1"
q1 = "1"
l1 = "length"
l2 = "length"
target = "length"

[run]
starts = [[0.3, 0.4]]
steps = 5

[[rules]]
name = "gd"
eta = 0.1

[[rules]]
name = "newton"
eta = 0.5

[[rules]]
name = "ig"
eta = 0.5

[[rules]]
name = "pg"
eta = 0.5
"""


@pytest.mark.slow
def test_verify_checks_a_dimensioned_numeric_target_like_length_params(tmp_path, capsys) -> None:
    """The arm's target (1.2, 0.5) of dimension length: every update sees a length, so
    Newton, IG and PG are consistent and GD needs [q]²/[L] = 1/length² for both angles; the
    same target as length params (the second path) gives the same rows."""
    numbers = tmp_path / "arm.toml"
    numbers.write_text(ARM)
    params = tmp_path / "arm_params.toml"
    params.write_text(
        ARM.replace("target = [1.2, 0.5]", 'target = ["t0", "t1"]')
        .replace("l2 = 1\n", "l2 = 1\nt0 = 1.2\nt1 = 0.5\n")
        .replace('target = "length"', 't0 = "length"\nt1 = "length"')
    )
    found = []
    for spec in (numbers, params):
        # none that should hold fails (PG's composition is undecided while its inverse is numeric)
        assert main(["verify", str(spec)]) != ExitCode.FAILED
        out = capsys.readouterr().out
        assert "any, any" not in out and "cannot add" not in out
        assert "[η] needed: q0: 1/length**2, q1: 1/length**2" in " ".join(out.split())  # GD
        found.append({key: row for key, row in _rows(out).items() if key[1] == "units"})
    assert found[0] == found[1]
    assert found[0][("GD", "units")] == ["consistent", "may fail"]
    for label in ("Newton", "IG", "PG"):
        assert found[0][(label, "units")] == ["consistent", "holds"]
