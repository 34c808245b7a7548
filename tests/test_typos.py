"""A misspelt rule, function or unit name: one line naming the file and the key, with the
closest known name."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleinv.analysis.units import check_unit_table, parse_dimension
from scaleinv.cli.main import main
from scaleinv.errors import DimensionError, ParseError, RuleError, did_you_mean
from scaleinv.numeric.rules import REGISTRY, make_rule
from scaleinv.symbolic import Problem
from scaleinv.symbolic.spec import RuleSpec

SPEC = """\
[problem]
inputs = ["x0", "x1"]
outputs = ["x0", "{f}(x1)"]
[run]
starts = [[1.0, 1.0]]
steps = 3
[[rules]]
name = "gd"
eta = 0.1
[[rules]]
name = "{rule}"
eta = 0.5
[units]
x0 = "{unit}"
x1 = "length"
"""


def _spec(tmp_path: Path, f: str = "sin", rule: str = "newton", unit: str = "angle") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(f=f, rule=rule, unit=unit))
    return path


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed before the error
    *progress, line = captured.err.splitlines()  # `report` says first what it builds
    assert line.startswith("scaleinv: error: ") and progress in (
        [],
        [f"scaleinv {argv[0]} {argv[1]}"],
    )
    return line.removeprefix("scaleinv: error: ")


def test_did_you_mean_names_the_closest_known_name_or_nothing() -> None:
    assert did_you_mean("newtn", REGISTRY) == " (did you mean 'newton'?)"
    assert did_you_mean("sinn", ["sin", "sinh", "cos"]) == " (did you mean 'sin'?)"
    assert did_you_mean("zzz", REGISTRY) == ""


@pytest.mark.parametrize("command", [["derive"], ["run"], ["export", "--to", "m.py"]])
def test_a_misspelt_rule_names_the_file_and_key(tmp_path, capsys, command) -> None:
    spec = _spec(tmp_path, rule="newtn")
    argv = [command[0], str(spec), *command[1:]]
    assert _error(capsys, argv) == (
        f"{spec}: [rules[1].name] unknown rule 'newtn' (did you mean 'newton'?); "
        "known: gd, newton, ig, pg, hig, bfgs"
    )


def test_a_misspelt_rule_outside_a_spec_file_is_a_rule_error() -> None:
    with pytest.raises(RuleError, match=r"^unknown rule 'hgi' \(did you mean 'hig'\?\); known"):
        make_rule(RuleSpec("hgi", {"eta": 0.1}))


def test_a_misspelt_function_names_the_file_and_the_output(tmp_path, capsys) -> None:
    spec = _spec(tmp_path, f="sinn")
    assert _error(capsys, ["derive", str(spec)]) == (
        f"{spec}: [problem.outputs[1]] cannot parse 'sinn(x1)': "
        "call of an unknown function (did you mean 'sin'?): 'sinn'"
    )


def test_a_misspelt_symbol_gets_the_closest_input() -> None:
    with pytest.raises(ParseError, match=r"unknown name \(did you mean 'theta'\?\): 'thetta'"):
        Problem.from_strings(["theta"], ["thetta**2"])


@pytest.mark.parametrize("command", [["verify"], ["report", "--no-pdf", "--out", "out"]])
def test_a_misspelt_unit_names_the_file_and_key(tmp_path, capsys, command) -> None:
    spec = _spec(tmp_path, unit="angel")
    argv = [command[0], str(spec), *[a if a != "out" else str(tmp_path / a) for a in command[1:]]]
    assert _error(capsys, argv) == (
        f"{spec}: [units.x0] unknown dimension 'angel' (did you mean 'angle'?)"
    )
    assert not (tmp_path / "out").exists()


def test_a_misspelt_unit_on_the_command_line_names_the_option(tmp_path, capsys) -> None:
    spec = _spec(tmp_path)
    assert _error(capsys, ["verify", str(spec), "--units", "x1=lenght"]) == (
        "[--units x1] unknown dimension 'lenght' (did you mean 'length'?)"
    )


def test_an_unknown_unit_lists_the_known_names_as_text_not_a_python_list() -> None:
    with pytest.raises(DimensionError) as caught:
        parse_dimension("qqq/time")
    text = str(caught.value)
    assert text.startswith("unknown dimension 'qqq' (known: mass, length, time, ")
    assert "[" not in text
    with pytest.raises(Exception, match=r"\[units\.outputs\[1\]\] unknown dimension 'tme'"):
        check_unit_table({"outputs": ["length", "tme"]}, "s.toml")
