"""What a user reads before running anything: ``--version`` and every command's ``--help``."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import scaleinv
from scaleinv.cli.exit_status import ExitCode
from scaleinv.cli.main import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_printed_by_the_cli_and_python_m(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"scaleinv {scaleinv.__version__}\n"
    out = subprocess.run(
        [sys.executable, "-m", "scaleinv", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert (out.returncode, out.stdout) == (0, f"scaleinv {scaleinv.__version__}\n")


def test_the_distribution_reads_its_version_from_the_version_module() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    assert module == "scaleinv._version"
    assert getattr(__import__(module, fromlist=[name]), name) == scaleinv.__version__


def _commands() -> dict:
    parser = build_parser()
    return next(a for a in parser._actions if a.dest == "command").choices


@pytest.mark.parametrize("name", ["run", "derive", "export", "verify", "report", "study"])
def test_every_command_help_says_what_it_prints_or_writes_and_its_exit_codes(name) -> None:
    sub = _commands()[name]
    assert sub.description and any(w in sub.description.lower() for w in ("print", "write"))
    text = sub.format_help()
    codes = [ExitCode.OK, ExitCode.ERROR, ExitCode.INTERRUPTED]
    codes += [ExitCode.FAILED, ExitCode.UNDECIDED] if name == "verify" else []
    table = text[text.index("exit status:") :].splitlines()[1:]
    assert sorted(int(line.split()[0]) for line in table if line[:3].strip().isdigit()) == sorted(
        codes
    )


def test_every_command_has_help() -> None:
    assert set(_commands()) == {"run", "derive", "export", "verify", "report", "study"}


def test_the_top_level_help_lists_every_exit_status(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--version" in out
    for code in ExitCode:
        assert f"\n  {int(code):<4} " in out, code


def test_the_command_line_loads_the_analysis_only_for_a_command_that_runs_it() -> None:
    # every command (a study of 10**6 starts too) pays for what its parser imports: the
    # claims ledger, units and branch analysis (scipy.linalg, sympy.physics) cost ~0.7 s
    code = (
        "import sys, scaleinv.cli.main\n"
        "print(sorted(m for m in sys.modules if m.startswith('scaleinv.analysis')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
