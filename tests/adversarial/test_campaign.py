"""The command-line campaign: random spec files (valid and not) × random command lines.

Each example writes a spec built from a small grammar of names, expressions, params, units,
rules and study / report / analysis tables — valid values mixed with hostile ones (reserved
names, non-ASCII, code, huge or complex constants, wrong types, unknown keys, broken TOML) —
and runs one ``scaleinv`` command on it with random flags, in its own temporary folder. The
process must either succeed (exit 0, or 1 or 3 for ``verify``'s verdicts) with output and no error
line, or exit 2 with exactly one ``scaleinv: error:`` line; never a traceback (an exception
out of :func:`~scaleinv.cli.main.main`), and never a file written outside the temporary
folder.

The example count follows the hypothesis profile (``tests/conftest.py``): :data:`EXAMPLES`
in CI (derandomized, so a CI run is reproducible), a third of it locally; either takes well
under a minute.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scaleinv.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
#: Examples in CI (derandomized there); each runs a whole command, so fewer than a property.
EXAMPLES = 100
CAMPAIGN = settings(
    max_examples=EXAMPLES if settings().derandomize else EXAMPLES // 3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# -- the grammar ------------------------------------------------------------------------------
HOSTILE_NAMES = st.sampled_from(
    ["eta", "y0", "y1", "sin", "_x", "x 0", "ｘ0", "", "for", "__class__", "1x", "np", "s_0"]
)
NUMBERS = st.sampled_from(["0", "1", "2", "-1", "0.5", "3", "1e308", "600", "pi", "E"])
FUNCTIONS = st.sampled_from(["sin", "cos", "exp", "log", "sqrt", "Abs", "acos", "tanh"])
HOSTILE_EXPRESSIONS = st.sampled_from(
    [
        "__import__('os').system('touch pwned')",
        "x0.__class__",
        "open('f', 'w')",
        "lambda: 1",
        "1/0",
        "9**9**9",
        "(",
        "x0**1001",
        "exp(600)*exp(600)*x0",
        "sqrt(-1)",
        "log(-x0**2 - 1)",
        "x0[0]",
        "y0",
        "eta*x0",
        "x0 +* x1",
        "1" * 1200,
        "(" * 150 + "x0" + ")" * 150,
    ]
)


def _expression(names: list[str]) -> st.SearchStrategy[str]:
    leaves = st.one_of(st.sampled_from(names), NUMBERS)

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        call = st.tuples(FUNCTIONS, inner).map(lambda t: f"{t[0]}({t[1]})")
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**"]), inner)
        return st.one_of(call, binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"))

    sensible = st.recursive(leaves, grow, max_leaves=4)
    return _mostly(sensible, HOSTILE_EXPRESSIONS, 12)


def _mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], one_in: int) -> Any:
    """``good``, or about once in ``one_in`` draws ``bad``."""
    return st.integers(0, one_in - 1).flatmap(lambda k: bad if k == one_in // 2 else good)


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws (not at 0: hypothesis favours the simplest value)."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


def _value() -> st.SearchStrategy[Any]:
    """A TOML value of any type: what a key that wants something else may get."""
    scalars = st.one_of(
        st.integers(-3, 10**6),
        st.sampled_from([0.5, -2.0, 1e300, float("inf"), float("nan"), 1e-9]),
        st.booleans(),
        st.sampled_from(["1/3", "abc", "x0", "", "1e999", "length", "time**2"]),
    )
    return st.one_of(scalars, st.lists(scalars, max_size=3))


@st.composite
def specs(draw: st.DrawFn) -> str:
    """The text of a spec file: mostly valid TOML, mostly sensible, often hostile somewhere."""
    if _rarely(draw, 20):
        return draw(st.sampled_from(["[problem", "inputs = [", "\x00", "a = 1\na = 2", ""]))
    n = draw(st.integers(1, 2))
    inputs = [f"x{i}" for i in range(n)]
    if _rarely(draw, 16):
        inputs[-1] = draw(HOSTILE_NAMES)
    params = draw(st.dictionaries(st.sampled_from(["alpha", "c", "a"]), NUMBERS, max_size=2))
    if _rarely(draw, 16):
        params[draw(HOSTILE_NAMES)] = draw(NUMBERS)
    names = [*inputs, *params]
    m = draw(st.integers(1, 2))
    data: dict[str, Any] = {
        "title": draw(_mostly(st.sampled_from(["t", "Ünïcode \\ {x} $"]), st.just(3), 20)),
        "problem": {
            "inputs": inputs,
            "outputs": draw(st.lists(_expression(names), min_size=m, max_size=m)),
        },
        "params": {k: _number(v) for k, v in params.items()},
    }
    problem = data["problem"]
    if draw(st.booleans()):
        problem["loss"] = draw(_expression([f"y{i}" for i in range(m)] + list(params)))
    if _rarely(draw, 4):
        problem["target"] = draw(st.lists(NUMBERS, min_size=m, max_size=m + 1))
    starts = draw(
        st.lists(
            st.lists(st.sampled_from([1, -2, 0.5, 0, 3]), min_size=n, max_size=n),
            min_size=1,
            max_size=2,
        )
    )
    steps = _mostly(st.sampled_from([0, 1, 3, 5]), st.sampled_from([-1, 10**9, 2.5]), 12)
    data["run"] = {"starts": starts, "steps": draw(steps)}
    rules = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": _mostly(
                        st.sampled_from(["gd", "newton", "ig", "pg", "hig", "bfgs"]),
                        st.just("nope"),
                        12,
                    )
                },
                optional={
                    "eta": _mostly(
                        st.sampled_from([0.1, 0.5, "1/3"]), st.sampled_from([0, -1, "abc", True]), 8
                    ),
                    "fallback": _mostly(st.sampled_from(["keep", "ig", "stop"]), st.just("x"), 8),
                    "beta": _mostly(st.sampled_from([0.5, 1]), st.just("nan"), 8),
                },
            ),
            max_size=3,
        )
    )
    if rules:
        data["rules"] = rules
    tables = {
        "units": st.dictionaries(
            st.sampled_from([*names, "L", "y0", "target"]), _value(), max_size=3
        ),
        "analysis": st.fixed_dictionaries(
            {},
            optional={
                "scalings": st.sampled_from(
                    [[{"x0": "2"}], [{"x0": "x1"}], [["s", "t"]], "x", [{"x0": "eta"}]]
                ),
                "budget": st.sampled_from([0.05, 0.2, 0, -1, 1e9, "fast"]),
                "output_scalings": st.sampled_from([["c"], [2], [True], ["x0"]]),
            },
        ),
        "study": st.fixed_dictionaries(
            {"region": _mostly(st.just([[-1, 1]] * n), st.sampled_from([[[1, -1]] * n, "r"]), 8)},
            optional={
                "starts": _mostly(st.sampled_from([4, 9]), st.sampled_from([0, -3, 10**9]), 6),
                "steps": _mostly(st.sampled_from([2, 5]), st.just(-1), 8),
                "tol": st.sampled_from([1e-6, -1.0, "x"]),
            },
        ),
        "report": st.dictionaries(
            st.sampled_from(["param", "alphas", "sample", "window", "bogus"]), _value(), max_size=2
        ),
    }
    for key, strategy in tables.items():
        if draw(st.booleans()):
            data[key] = draw(strategy)
    if _rarely(draw, 12):
        data[draw(st.sampled_from(["problme", "rules", "run"]))] = draw(_value())
    return _toml(data)


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _toml(data: dict[str, Any]) -> str:
    """``data`` as TOML: scalars and arrays first, then tables and arrays of tables."""
    lines = [f"{json.dumps(k)} = {_inline(v)}" for k, v in data.items() if not _is_table(v)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()]
        elif _is_table(value):
            for item in value:
                lines.append(f"[[{json.dumps(key)}]]")
                lines += [f"{json.dumps(k)} = {_inline(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_inline(v) for v in value) + "]"


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command with random flags (valid and not), ``SPEC`` standing for the spec file."""
    # verify does symbolic work per rule and check (each bounded by --budget): drawn least
    command = draw(st.sampled_from(["run", "derive", "export", "study"] * 2 + ["verify"]))
    valid, invalid = {
        "run": ([["--steps", "2"], ["--starts", "3"], ["--seed", "1"]], [["--starts", "0"]]),
        "derive": ([["--help"]], [["--steps", "2"]]),
        "export": ([["--to", "module.py"], ["--flavor", "numpy"]], [["--flavor", "fortran"]]),
        "verify": ([["--budget", "20_000"], ["--units", "x0=length"]], [["--units", "x0"]]),
        "study": ([["--starts", "4"]], [["--starts", "-1"], ["--budget", "1"]]),
    }[command]
    flags = st.lists(st.sampled_from(valid), max_size=2, unique_by=tuple)
    chosen = draw(_mostly(flags, st.lists(st.sampled_from(invalid), min_size=1, max_size=1), 8))
    argv = [command, "SPEC", *(part for flag in chosen for part in flag)]
    if command == "export" and "--to" not in argv and not _rarely(draw, 6):
        argv += ["--to", "module.py"]
    if command == "verify" and "--budget" not in argv:
        argv += ["--budget", "20_000"]  # bounded symbolic work per check
    return argv


def _tree(root: Path) -> dict[str, float]:
    """Every file under ``root`` (but caches) with its modification time."""
    skip = {".git", "__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                found[path] = os.stat(path).st_mtime
    return found


@pytest.fixture(scope="module")
def untouched() -> Any:
    """The repository is the same before and after the campaign (nothing written there)."""
    before = _tree(ROOT)
    yield
    assert _tree(ROOT) == before


@CAMPAIGN
@given(text=specs(), argv=command_lines())
def test_every_command_on_any_spec_succeeds_or_is_one_error_line(
    untouched, tmp_path_factory, monkeypatch, text, argv
) -> None:
    folder = tmp_path_factory.mktemp("campaign")
    spec = folder / "spec.toml"
    spec.write_text(text, encoding="utf-8")
    monkeypatch.chdir(folder)
    argv = [str(spec) if a == "SPEC" else a for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with warnings.catch_warnings(record=True):  # a warning is output, not a failure
            warnings.simplefilter("always")
            try:
                code = main(argv)
            except SystemExit as stop:  # argparse: usage errors and --help
                code = stop.code
    errors = [line for line in err.getvalue().splitlines() if line.startswith("scaleinv: error:")]
    event(f"{argv[0]}: exit {code}")  # the mix, with --hypothesis-show-statistics
    assert "Traceback" not in err.getvalue() + out.getvalue()
    if code == 0 or (code in (1, 3) and argv[0] == "verify"):
        assert out.getvalue().strip() and not errors, (argv, text, err.getvalue())
    else:
        assert code == 2 and len(errors) == 1, (argv, text, code, err.getvalue())
    assert not (folder / "pwned").exists()
    outside = {p.name for p in folder.iterdir()} - {"spec.toml", "module.py", "out"}
    assert not outside, outside
