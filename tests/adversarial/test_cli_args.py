"""Hostile and malformed command lines: one line ``scaleinv: error: ...`` on stderr, exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scaleinv.cli import main as cli
from scaleinv.cli.main import main
from scaleinv.symbolic.spec import MAX_STARTS

SPEC = "reports/comparison.toml"

#: (id, argv, regex the error line must match after "scaleinv: error: ")
BAD_ARGS = [
    ("no-command", [], r"the following arguments are required: COMMAND"),
    ("unknown-command", ["bogus"], r"argument COMMAND: invalid choice: 'bogus'"),
    ("unknown-option", ["run", SPEC, "--stepz", "3"], r"unrecognized arguments: --stepz 3"),
    ("steps-text", ["run", SPEC, "--steps", "ten"], r"argument --steps: invalid int value: 'ten'"),
    ("steps-float", ["run", SPEC, "--steps", "3e7"], r"argument --steps: invalid int value: '3e7'"),
    (
        "steps-huge",
        ["run", SPEC, "--steps", "10" + "0" * 12],
        r"\[--steps\] .* more than the limit",
    ),
    ("steps-negative", ["run", SPEC, "--steps", "-1"], r"\[--steps\] must be a non-negative"),
    (
        "starts-steps-huge",  # the many-starts path had no limit (10**12 steps: for ever)
        ["run", SPEC, "--starts", "1", "--steps", "1000001"],
        r"\[--steps\] 1000001 steps is more than the limit of 1000000$",
    ),
    (
        "starts-huge",
        ["run", SPEC, "--starts", "10" + "0" * 10],
        rf"\[--starts\] 10+ starts is more than the limit of {MAX_STARTS}$",
    ),
    ("starts-zero", ["run", SPEC, "--starts", "0"], r"\[--starts\] must be a positive integer"),
    ("chunk-zero", ["run", SPEC, "--starts", "3", "--chunk", "0"], r"\[--chunk\] must be a pos"),
    ("seed-negative", ["run", SPEC, "--starts", "3", "--seed", "-1"], r"\[--seed\] must be a non"),
    (
        "study-starts-huge",
        ["study", SPEC, "--starts", "10" + "0" * 10],
        rf"\[--starts\] 10+ starts is more than the limit of {MAX_STARTS}$",
    ),
    ("missing-spec", ["run", "no/such/spec.toml"], r"no/such/spec.toml: \[file\] cannot be read"),
    ("spec-is-dir", ["run", "reports"], r"reports: \[file\] cannot be read \(Is a directory\)"),
    ("spec-devnull", ["derive", "/dev/null"], r"/dev/null: \[file\] is not a regular file"),
    ("export-no-to", ["export", SPEC], r"the following arguments are required: --to"),
    (
        "budget-zero",
        ["verify", SPEC, "--budget", "0"],
        r"\[--budget\] must be 10_000 to 1_000_000_000 steps",
    ),
    (
        "budget-seconds",
        ["verify", SPEC, "--budget", "5"],
        r"\[--budget\] must be 10_000 to .* got 5$",
    ),
    ("budget-nan", ["verify", SPEC, "--budget", "nan"], r"not a whole number of steps: 'nan'"),
    ("budget-inf", ["verify", SPEC, "--budget", "inf"], r"not a whole number of steps: 'inf'"),
    ("budget-negative", ["verify", SPEC, "--budget", "-5"], r"\[--budget\] must be 10_000 to"),
    ("budget-text", ["verify", SPEC, "--budget", "lots"], r"not a number of steps: 'lots'"),
    ("units-no-spec", ["verify", "--units", "x0=length"], r"\[--units\] units describe a problem"),
    (
        "claim-with-spec",
        ["verify", SPEC, "--claim", "x"],
        r"\[--claim\] claims belong to the ledger",
    ),
    ("units-garbage", ["verify", SPEC, "--units", "x0"], r"--units"),
    ("report-missing", ["report", "nope.toml", "--no-pdf"], r"nope.toml: \[file\] cannot be read"),
    ("nul-in-path", ["run", "spec\x00.toml"], r"cannot be read|embedded null"),
]


@pytest.mark.parametrize(("name", "argv", "match"), BAD_ARGS, ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments_give_one_error_line(capsys, name, argv, match) -> None:
    with pytest.raises(SystemExit) if name in _ARGPARSE else _returns():
        code = main(argv)
        assert code == 2
    lines = capsys.readouterr().err.splitlines()
    if argv[:1] == ["report"]:  # `report` prints its progress to stderr first
        lines = lines[-1:]
    assert len(lines) == 1 and lines[0].startswith("scaleinv: error: "), lines
    assert re.search(match, lines[0]), lines[0]


_ARGPARSE = {
    "no-command",
    "unknown-command",
    "unknown-option",
    "steps-text",
    "steps-float",
    "export-no-to",
    "budget-text",
    "budget-nan",
    "budget-inf",
}


class _returns:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (RecursionError("maximum recursion depth exceeded"), "the input is nested too deeply"),
        (MemoryError(), "the input needs more memory than is available"),
        (OverflowError("int too large to convert to float"), "the input is out of range to"),
    ],
)
def test_resource_exhaustion_is_one_line(monkeypatch, capsys, error, line) -> None:
    def exhausted(args: object) -> int:
        raise error

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_derive(parser(), exhausted))
    assert main(["derive", SPEC]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scaleinv: error: ") and line in err and err.count("\n") == 1


def test_numpys_memory_error_is_reported_as_memory_with_its_size(capsys) -> None:
    # NumPy's _ArrayMemoryError is a subclass of MemoryError: it was reported as "a number out
    # of range (Unable to allocate ...)".
    starts = 10**12  # past the --starts limit, so allocate directly as a command would
    parser = cli.build_parser()
    args = parser.parse_args(["derive", SPEC])
    args.func = lambda _: int(np.empty((starts, 10**6)).size)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "build_parser", lambda: _Fixed(args))
        assert main(["derive", SPEC]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert re.fullmatch(
        r"scaleinv: error: the input needs more memory than is available "
        r"\(Unable to allocate [\d.]+ [EPT]iB for an array with shape .*\)\n",
        err,
    ), err


class _Fixed:
    """A parser that returns fixed arguments."""

    def __init__(self, args: object) -> None:
        self.args = args

    def parse_args(self, argv: object) -> object:
        return self.args


#: Paths and arguments with control characters: the error stays one line (escaped).
FORGED = [
    ("newline-path", ["run", "nope\nscaleinv: error: forged.toml"]),
    ("carriage-return-path", ["derive", "nope\rscaleinv: error: forged"]),
    ("escape-sequence-path", ["run", "\x1b[2Knope.toml"]),
    ("line-separator-path", ["run", "nope\u2028forged.toml"]),
    ("newline-command", ["bogus\nscaleinv: error: forged"]),
    ("newline-flavor", ["export", SPEC, "--to", "x.py", "--flavor", "jax\nforged"]),
]


@pytest.mark.parametrize(("name", "argv"), FORGED, ids=[c[0] for c in FORGED])
def test_control_characters_never_break_an_error_line(capsys, name, argv) -> None:
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scaleinv: error: "), repr(err)
    assert err[:-1].isprintable(), repr(err)


@pytest.mark.parametrize("command", ["run", "derive", "verify", "study"])
def test_a_fifo_as_spec_is_refused_without_opening_it(tmp_path: Path, command: str) -> None:
    # Reading a FIFO blocks until a writer comes: the command used to wait for ever.
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "scaleinv", command, str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr
        == f"scaleinv: error: {fifo}: [file] is not a regular file (a pipe, device or socket)\n"
    )


def test_errors_from_the_python_api_are_one_line_too(tmp_path: Path) -> None:
    from scaleinv.errors import ScaleinvError
    from scaleinv.symbolic import load_spec

    with pytest.raises(ScaleinvError) as caught:
        load_spec(tmp_path / "a\nb\u2028c.toml")
    assert (
        str(caught.value)
        == f"{tmp_path}/a\\nb\\u2028c.toml: [file] cannot be read (No such file or directory)"
    )


def test_a_genuine_bug_still_shows_its_traceback(monkeypatch) -> None:
    def buggy(args: object) -> int:
        raise KeyError("a bug, not bad input")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_derive(parser(), buggy))
    with pytest.raises(KeyError, match="a bug"):
        main(["derive", SPEC])


def _with_derive(parser, func):
    for action in parser._subparsers._group_actions:  # the subcommand table
        action.choices["derive"].set_defaults(func=func)
    return parser


def test_the_console_script_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('[problem]\ninputs = ["x0"]\noutputs = ["' + "-" * 5000 + 'x0"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "scaleinv", "derive", str(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("scaleinv: error: ") and done.stderr.count("\n") == 1
    assert "nested too deeply" in done.stderr
