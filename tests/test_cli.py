from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from catalogue import PROJECTILE

from scaleinv import load_spec, minimize
from scaleinv.numeric.rules import make_rule
from scaleinv.numeric.status import Status
from scaleinv.reports.cli import main
from scaleinv.symbolic.parsing import parse_expr

SPEC = "reports/comparison.toml"


def test_run_prints_a_row_per_rule_with_the_driver_results(capsys) -> None:
    assert main(["run", SPEC]) == 0
    out = capsys.readouterr().out
    spec = load_spec(SPEC)
    for rule_spec in spec.rules:
        rule = make_rule(rule_spec)
        t = minimize(spec.problem, rule, np.array(spec.starts), spec.steps)
        row = next(line for line in out.splitlines() if line.startswith(rule.label + " "))
        assert f"{t.loss[-1, 0]:.6g}" in row and Status(int(t.status[0])).words in row
        assert "max_steps" not in row  # statuses in words, as the study and the report say them


def test_run_from_many_starts_counts_statuses_in_words(capsys) -> None:
    assert main(["run", SPEC, "--starts", "6", "--steps", "3", "--seed", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("GD ")]
    assert rows and rows[0].endswith(f"{Status.MAX_STEPS.words}: 6")
    assert "max_steps" not in rows[0]


def test_the_run_table_of_six_inputs_fits_the_terminal(tmp_path, capsys) -> None:
    xs = [f"u{i}" for i in range(6)]
    spec = tmp_path / "six.toml"
    spec.write_text(
        f"[problem]\ninputs = {xs}\noutputs = {[f'{x} + {x}**3/3' for x in xs]}\n"
        "target = [0.1234567, 0.2345678, 0.3456789, 0.4567891, 0.5678912, 0.6789123]\n"
        "[run]\nstarts = [[-0.7654321, 0.8765432, -0.9876543, 0.1987654, -0.2198765, 0.3219876]]\n"
        'steps = 2\n[[rules]]\nname = "newton"\neta = 0.5\n'.replace("'", '"'),
        encoding="utf-8",
    )
    assert main(["run", str(spec)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    table = "\n".join(lines[lines.index(next(t for t in lines if t.startswith("rule"))) :])
    t = minimize(
        load_spec(spec).problem,
        make_rule(load_spec(spec).rules[0]),
        np.array(load_spec(spec).starts),
        2,
    )
    for v in t.x[-1, 0]:  # every entry of the final x is still printed, on wrapped lines
        assert f"{v:.6g}" in table


def test_export_says_which_rule_of_the_spec_it_left_out(tmp_path, capsys) -> None:
    pytest.importorskip("jax")
    spec = tmp_path / "fold.toml"
    spec.write_text(
        '[problem]\ninputs = ["x"]\noutputs = ["x + sin(x)"]\n[[rules]]\nname = "pg"\n'
        '[[rules]]\nname = "gd"\n',
        encoding="utf-8",
    )
    target = tmp_path / "k.py"
    assert main(["export", str(spec), "--to", str(target), "--flavor", "jax"]) == 0
    out = capsys.readouterr().out
    assert "def pg_step(" not in target.read_text(encoding="utf-8")
    assert "note: not exported: pg_step" in out and "gd_step" not in out


def test_derive_prints_derivatives_branches_and_updates(capsys) -> None:
    assert main(["derive", SPEC]) == 0
    out = capsys.readouterr().out
    for text in [
        "J[y1, x1] = 2*x1",
        "dL/dx0 = 2*x0",
        "dL/dx1 = 4*x1**3",
        "H[x1, x1] = 12*x1**2",
        "x1 = sqrt(y1)",
        "y1 >= 0",
        "Newton update (eta=1/3)",  # η as the spec wrote it
        "Δx1 = -eta*x1/3",
    ]:
        assert text in out
    # each printed update is the rule's Δx (parsed back, evaluated at a point)
    p = load_spec(SPEC).problem
    at = {**dict(zip(p.inputs, (0.7, -1.3))), sp.Symbol("eta"): 0.25}
    newton = make_rule(load_spec(SPEC).rules[1])
    block = out.split("Newton update")[1].split("\n\n")[0]
    for x, expected in zip(p.inputs, symbolic_delta(newton, p)):
        line = next(t for t in block.splitlines() if t.strip().startswith(f"Δ{x} = "))
        printed = parse_expr(
            line.split(" = ", 1)[1], {"eta": sp.Symbol("eta")} | {str(v): v for v in p.inputs}
        )
        assert float(printed.subs(at)) == pytest.approx(float(expected.subs(at)))


def test_derive_wraps_long_formulas_with_named_parts(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "projectile.toml"
    spec.write_text(PROJECTILE, encoding="utf-8")
    assert main(["derive", str(spec)]) == 0
    out = capsys.readouterr().out
    long = [line for line in out.splitlines() if len(line) > 100]
    assert not long, long
    assert ", where" in out and "xi1 = " in out


def symbolic_delta(rule, problem):
    from scaleinv.reports.content import ETA, symbolic_rule

    return [e.subs(ETA, sp.Symbol("eta")) for e in symbolic_rule(rule).delta(problem)]


def test_export_writes_a_module(tmp_path: Path, capsys) -> None:
    target = tmp_path / "kernels.py"
    assert main(["export", SPEC, "--to", str(target)]) == 0
    assert target.exists() and "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "derive", "export"])
def test_help_for_every_command(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and "spec" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["run", "missing.toml"], "cannot be read"),
        (["export", SPEC, "--to", "/nonexistent/dir/k.py"], "folder does not exist"),
        (["export", SPEC, "--to", "k.txt"], "must be a .py file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, match: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("scaleinv: error:") and match in err and err.count("\n") == 1


def test_console_script_errors_have_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[problem]\ninputs = ["x"]\noutputs = ["x.__class__"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "scaleinv.reports.cli", "run", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "attribute access is not allowed" in result.stderr


def test_derive_of_a_large_problem_prints_representative_entries(tmp_path: Path, capsys) -> None:
    """Past FEW inputs ``derive`` prints the first and a middle row of J and H, each entry
    the one the sparse derivation holds, and every rule's structure, not 256 components."""
    from catalogue import per_expression_diffusion

    from scaleinv.reports.formulas import decimal_numbers
    from scaleinv.reports.text import format_formula

    path = tmp_path / "diffusion.toml"
    path.write_text(per_expression_diffusion(256), encoding="utf-8")
    assert main(["derive", str(path)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 60 and max(len(line) for line in out.splitlines()) <= 100
    p = load_spec(path).problem
    for i, j in [(0, 0), (0, 255), (128, 127), (128, 128), (128, 129)]:
        assert format_formula(f"J[y{i}, x{j}]", p.sparse.jacobian[i, j]) in out
    for i, j in [(0, 1), (0, 254), (128, 130)]:
        shown = format_formula(f"H[x{i}, x{j}]", decimal_numbers(p.sparse.hessian[i, j]))
        assert shown in out
    assert "J[y1," not in out and "H[x1," not in out  # only the first and a middle row
    assert "Newton update: Δx = −η H⁻¹ ∂L/∂x  (not expanded at n = 256)" in out
    assert "  y* = (-7.97973e-18, 0.01227, 0.0245331, …," in out


@pytest.mark.slow
def test_derive_of_an_arm_prints_its_elbow_branches_within_the_width(tmp_path: Path, capsys):
    """Issue 16: the arm's closed form (two elbow branches, periodic by 2π) and no line of
    derive's output past the terminal width (the validity conditions ran to 170 columns)."""
    from catalogue import ARM

    spec = tmp_path / "arm.toml"
    spec.write_text(ARM, encoding="utf-8")
    assert main(["derive", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "branch 2:" in out and "branch 3:" not in out and out.count("acos(") >= 2
    assert "2*pi" in out and not [line for line in out.splitlines() if len(line) > 100]


#: Two points of an explicit heat step with a source, the observed state given as decimals:
#: exact fractions of 12-digit integers inside, long formulas.
HEAT_PAIR = """\
[problem]
inputs = ["u0", "u1"]
outputs = ["u0 + k*(u1 - 2*u0) + q*u0**2", "u1 + k*(u0 - 2*u1) + q*u1**2"]
target = [0.133480441447, 0.252765086936]
[params]
k = 0.2
q = 0.5
[run]
starts = [[0, 0]]
[[rules]]
name = "newton"
eta = 1
[[rules]]
name = "pg"
eta = 1
"""


def test_derive_shows_decimals_and_stays_within_the_width(tmp_path: Path, capsys) -> None:
    """Issue 16: the target's exact fractions printed as 12-digit integers, and lines 2-4
    characters past the width (wrapped before the indent was added)."""
    from scaleinv.reports.text import WIDTH

    spec = tmp_path / "heat.toml"
    spec.write_text(HEAT_PAIR, encoding="utf-8")
    assert main(["derive", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "L = (y0 - 0.13348)**2/2 + (y1 - 0.252765)**2/2" in out
    assert "133480441447" not in out and "1000000000000" not in out
    assert not re.search(r"(?<![0-9.])[12]\.0\*", out)  # 1.00000*k (a decimal's rounding) as k
    assert [line for line in out.splitlines() if len(line) > WIDTH] == []
    # the printed gradient is the exact one, to the digits shown
    p = load_spec(spec).problem
    lines = out.split("  dL/du1 = ", 1)[1].splitlines()
    text = " ".join([lines[0], *itertools.takewhile(lambda t: t.startswith("      "), lines[1:])])
    printed = parse_expr(text, {str(s): s for s in (*p.inputs, *p.params)})
    at = {**dict(zip(p.inputs, (0.3, -0.2))), **p.params}
    assert float(printed.subs(at)) == pytest.approx(float(p.gradient[1].subs(at)), rel=1e-5)
