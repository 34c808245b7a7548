"""Malformed and hostile spec files: each is one line ``scaleinv: error: ...`` (exit 2) naming
the key at fault — never a traceback, never a silently ignored key, never a run that cannot end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleinv import load_spec
from scaleinv.cli.main import main
from scaleinv.errors import ScaleinvError, SpecError

GOOD = '[problem]\ninputs = ["x0", "x1"]\noutputs = ["x0", "alpha*x1**2"]\n[params]\nalpha = 2\n'

#: (id, spec text, regex the one-line error must match)
BAD_SPECS = [
    (
        "typo-target",
        GOOD.replace("[params]", "targte = [1, 2]\n[params]"),
        r"\[problem.targte\] unknown key \(did you mean 'target'\?\)",
    ),
    (
        "typo-steps",
        GOOD + "[run]\nstepz = 20\n",
        r"\[run.stepz\] unknown key \(did you mean 'steps'\?\)",
    ),
    (
        "typo-starts",
        GOOD + "[run]\nstart = [[1, 2]]\n",
        r"\[run.start\] unknown key \(did you mean 'starts'\?\)",
    ),
    ("typo-tol", GOOD + "[run]\ntoll = 1e-9\n", r"\[run.toll\] .*did you mean 'tol'"),
    (
        "typo-loss",
        GOOD.replace("[params]", 'los = "y0**2"\n[params]'),
        r"\[problem.los\] .*did you mean 'loss'",
    ),
    ("typo-top", "titel = 'x'\n" + GOOD, r"\[titel\] unknown key \(did you mean 'title'\?\)"),
    (
        "typo-rules",
        GOOD + "[[rule]]\nname = 'gd'\n",
        r"\[rule\] unknown key \(did you mean 'rules'\?\)",
    ),
    (
        "typo-rule-eta",
        GOOD + "[[rules]]\nname = 'gd'\netta = 0.1\n",
        r"\[rules\[0\].etta\] .*did you mean 'eta'",
    ),
    (
        "typo-report",
        GOOD + "[report]\nwindw = [[0, 1], [0, 1]]\n",
        r"\[report.windw\] .*did you mean 'window'",
    ),
    (
        "typo-analysis",
        GOOD + "[analysis]\nbudgte = 3\n",
        r"\[analysis.budgte\] .*did you mean 'budget'",
    ),
    (
        "unknown-no-hint",
        GOOD + "[run]\nzzz = 1\n",
        r"\[run.zzz\] unknown key; known: starts, steps, tol",
    ),
    (
        "outputs-int",
        '[problem]\ninputs = ["x0"]\noutputs = 42\n',
        r"\[problem.outputs\] must be a string or a non-empty list",
    ),
    ("outputs-empty", '[problem]\ninputs = ["x0"]\noutputs = []\n', r"\[problem.outputs\] must be"),
    (
        "outputs-table",
        '[problem]\ninputs = ["x0"]\n[problem.outputs]\na = 1\n',
        r"\[problem.outputs\] must be",
    ),
    ("inputs-int", '[problem]\ninputs = 3\noutputs = ["1"]\n', r"\[problem.inputs\] must be"),
    (
        "inputs-nested",
        '[problem]\ninputs = [["x0"]]\noutputs = ["1"]\n',
        r"\[problem.inputs\] must be",
    ),
    (
        "loss-list",
        '[problem]\ninputs = ["x0"]\noutputs = ["x0"]\nloss = ["y0"]\n',
        r"\[problem.loss\] must be a string",
    ),
    (
        "loss-bool",
        '[problem]\ninputs = ["x0"]\noutputs = ["x0"]\nloss = true\n',
        r"\[problem.loss\] must be a string",
    ),
    (
        "target-table",
        '[problem]\ninputs = ["x0"]\noutputs = ["x0"]\ntarget = {a = 1}\n',
        r"\[problem.target\] must be",
    ),
    ("problem-string", 'problem = "x"\n', r"\[problem\] must be a table"),
    ("no-problem", "title = 'x'\n", r"\[problem\] is missing"),
    ("title-table", "[title]\na = 1\n" + GOOD, r"\[title\] must be a string"),
    ("description-int", "description = 3\n" + GOOD, r"\[description\] must be a string"),
    (
        "steps-huge",
        GOOD + "[run]\nsteps = 1000000000000\n",
        r"\[run.steps\] 1000000000000 steps is more than the limit of 1000000",
    ),
    (
        "steps-float",
        GOOD + "[run]\nsteps = 3e7\n",
        r"\[run.steps\] must be a non-negative integer, got 30000000.0",
    ),
    (
        "steps-string",
        GOOD + '[run]\nsteps = "10"\n',
        r"\[run.steps\] must be a non-negative integer",
    ),
    ("steps-bool", GOOD + "[run]\nsteps = true\n", r"\[run.steps\] must be a non-negative integer"),
    (
        "steps-negative",
        GOOD + "[run]\nsteps = -5\n",
        r"\[run.steps\] must be a non-negative integer",
    ),
    (
        "record-too-big",
        GOOD + "[run]\nsteps = 900000\nstarts = " + str([[1, 1]] * 200) + "\n",
        r"\[run.steps\] 900000 steps from 200 starts would record 6.7 GiB, more than the "
        r"limit of 2 GiB; use fewer steps or starts",
    ),
    ("tol-negative", GOOD + "[run]\ntol = -1\n", r"\[run.tol\] must not be negative"),
    ("tol-inf", GOOD + "[run]\ntol = inf\n", r"\[run.tol\] must be a finite number"),
    ("tol-nan", GOOD + "[run]\ntol = nan\n", r"\[run.tol\] must be a finite number"),
    (
        "start-inf",
        GOOD + "[run]\nstarts = [[inf, 1]]\n",
        r"\[run.starts\[0\]\] must be a finite number",
    ),
    (
        "start-nan",
        GOOD + "[run]\nstarts = [[nan, 1]]\n",
        r"\[run.starts\[0\]\] must be a finite number",
    ),
    (
        "start-complex",
        GOOD + '[run]\nstarts = [["sqrt(-1)", 1]]\n',
        r"\[run.starts\[0\]\] cannot parse 'sqrt\(-1\)': a complex value",
    ),
    (
        "start-divzero",
        GOOD + '[run]\nstarts = [["1/0", 1]]\n',
        r"\[run.starts\[0\]\] cannot parse '1/0': not a finite value",
    ),
    (
        "start-short",
        GOOD + "[run]\nstarts = [[1]]\n",
        r"\[run.starts\[0\]\] must be a list of 2 numbers",
    ),
    ("starts-empty", GOOD + "[run]\nstarts = []\n", r"\[run.starts\] must be a non-empty list"),
    (
        "eta-inf",
        GOOD + "[[rules]]\nname = 'gd'\neta = inf\n",
        r"\[rules\[0\].eta\] must be a finite number",
    ),
    (
        "eta-string-inf",
        GOOD + "[[rules]]\nname = 'gd'\neta = '1e999'\n",
        r"number too large for a float",
    ),
    (
        "label-int",
        GOOD + "[[rules]]\nname = 'gd'\nlabel = 3\n",
        r"\[rules\[0\].label\] must be a string",
    ),
    ("name-missing", GOOD + "[[rules]]\neta = 1\n", r"\[rules\[0\]\] needs a name"),
    ("rules-table", GOOD + "[rules]\nname = 'gd'\n", r"\[rules\] must be an array of tables"),
    ("param-inf", GOOD.replace("alpha = 2", "alpha = inf"), r"param 'alpha' needs a finite number"),
    ("param-list", GOOD.replace("alpha = 2", "alpha = [1]"), r"param 'alpha' needs a number"),
    ("param-complex", GOOD.replace("alpha = 2", "alpha = 'sqrt(-4)'"), r"a complex value"),
    ("param-fullwidth", GOOD.replace("alpha = 2", '"ａlpha" = 2'), r"not a valid symbol name"),
    ("output-x0-over-0", '[problem]\ninputs = ["x0"]\noutputs = ["x0/0"]\n', r"not a finite value"),
    ("output-log0", '[problem]\ninputs = ["x0"]\noutputs = ["log(0)*x0"]\n', r"not a finite value"),
    (
        "output-1e999",
        '[problem]\ninputs = ["x0"]\noutputs = ["1e999*x0"]\n',
        r"number too large for a float",
    ),
    ("output-number-inf", '[problem]\ninputs = ["x0"]\noutputs = [inf]\n', r"unknown name: 'inf'"),
    (
        "output-tower",
        '[problem]\ninputs = ["x0"]\noutputs = ["((x0**999)**999)**999"]\n',
        r"exponent too large",
    ),
    (
        "output-fullwidth",
        '[problem]\ninputs = ["x0"]\noutputs = ["ｘ0"]\n',
        r"non-ASCII character U\+FF58",
    ),
    (
        "output-sum-3000",
        '[problem]\ninputs = ["x0"]\noutputs = ["' + "+".join(["x0"] * 3000) + '"]\n',
        r"nested too deeply",
    ),
    (
        "output-minus-5000",
        '[problem]\ninputs = ["x0"]\noutputs = ["' + "-" * 5000 + 'x0"]\n',
        r"nested too deeply",
    ),
    (
        "window-inf",
        GOOD + "[report]\nwindow = [[-inf, 1], [0, 1]]\n",
        r"\[report.window\] must be a list of finite numbers",
    ),
    (
        "window-nan",
        GOOD + "[report]\nwindow = [[0, nan], [0, 1]]\n",
        r"\[report.window\] must be a list of finite numbers",
    ),
    (
        "window-overflowing-width",  # finite ends, infinite width: a ValueError in Matplotlib
        GOOD + "[report]\nwindow = [[-1e308, 1e308], [0, 1]]\n",
        r"\[report.window\] \[-1e\+308, 1e\+308\] for x0 cannot be plotted: its width must be",
    ),
    (
        "window-too-narrow",
        GOOD + "[report]\nwindow = [[0, 1], [1, 1.0000000000000002]]\n",
        r"\[report.window\] \[1, 1\] for x1 cannot be plotted",
    ),
    (
        "alphas-inf",
        GOOD + "[report]\nalphas = [1, inf]\n",
        r"\[report.alphas\] must be a list of finite numbers",
    ),
    (
        "budget-inf",
        GOOD + "[analysis]\nbudget = inf\n",
        r"\[analysis.budget\] is a work limit in steps \(counted Python calls, not seconds\)",
    ),
    ("budget-zero", GOOD + "[analysis]\nbudget = 0\n", r"\[analysis.budget\] is a work limit"),
    (
        "budget-in-seconds",
        GOOD + "[analysis]\nbudget = 5\n",
        r"\[analysis.budget\] is a work limit in steps .* e.g. 1_000_000: 5$",
    ),
    ("not-toml", "[problem\n", r"is not valid TOML"),
    ("binary", "\x00\x01\x02", r"is not valid TOML"),
]
SPEC_IDS = [case[0] for case in BAD_SPECS]

#: The report and analysis tables are read by `report`/`verify`; the rest by every command.
_LATE = {
    "window-inf",
    "window-nan",
    "window-overflowing-width",
    "window-too-narrow",
    "alphas-inf",
    "budget-inf",
    "budget-zero",
    "budget-in-seconds",
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "text", "match"), BAD_SPECS, ids=SPEC_IDS)
def test_bad_spec_is_one_error_line_with_exit_2(tmp_path, capsys, name, text, match) -> None:
    path = _write(tmp_path, text)
    if name in _LATE:
        from scaleinv.reports.content import report_options
        from scaleinv.reports.spec_verdicts import analysis_options

        spec = load_spec(path)
        check = analysis_options if name.startswith("budget") else report_options
        with pytest.raises(SpecError, match=match):
            check(spec)
        return
    with pytest.raises(ScaleinvError, match=match):
        load_spec(path)
    for command in (["run", str(path)], ["derive", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("scaleinv: error: ") and err.count("\n") == 1, err


def test_run_steps_override_is_bounded(tmp_path, capsys) -> None:
    path = _write(tmp_path, GOOD)
    assert main(["run", str(path), "--steps", "100000000"]) == 2
    err = capsys.readouterr().err
    assert err == "scaleinv: error: [--steps] 100000000 steps is more than the limit of 1000000\n"
    assert main(["run", str(path), "--steps", "-3"]) == 2
    assert "must be a non-negative integer" in capsys.readouterr().err


def test_a_hundred_input_report_is_refused_before_any_work(tmp_path, monkeypatch) -> None:
    """A dense hundred-input problem (every output depends on every input) is refused by the
    chain-rule work its Hessian needs, before any derivative is taken; a sparse problem of
    the same size is not refused by its size."""
    from scaleinv.reports.builder import build
    from scaleinv.symbolic.problem import Problem

    def no_derivatives(self):
        raise AssertionError("a derivative was taken")

    monkeypatch.setattr(Problem, "derivatives", no_derivatives)
    names = [f"x{i}" for i in range(100)]
    total = " + ".join(names)
    outputs = [f"{x}*({total})" for x in names]
    path = _write(tmp_path, f"[problem]\ninputs = {names}\noutputs = {outputs}\n")
    with pytest.raises(
        ScaleinvError,
        match=r"a report derives every structurally nonzero entry of J and H exactly, so it is "
        r"limited to 100,000 chain-rule products for H .*; this problem \(100 inputs, 100 "
        r"outputs\) needs more than that \(use `scaleinv run` or `scaleinv export` for it\)$",
    ):
        build(path, tmp_path / "out", pdf=False)
    assert not (tmp_path / "out").exists()
    huge = [f"x{i}" for i in range(3000)]  # sparse, but too many inputs for dense n×n checks
    path = _write(tmp_path, f"[problem]\ninputs = {huge}\noutputs = {huge}\n")
    with pytest.raises(ScaleinvError, match="limited to 2048 inputs and outputs; this problem"):
        build(path, tmp_path / "out", pdf=False)
    assert not (tmp_path / "out").exists()


def test_the_spec_text_is_never_executed(tmp_path, capsys) -> None:
    canary = tmp_path / "canary"
    attack = f"__import__('os').system('touch {canary}')"
    for text in (
        f'[problem]\ninputs = ["x0"]\noutputs = ["{attack}"]\n',
        f'[problem]\ninputs = ["x0"]\noutputs = ["x0"]\nloss = "{attack}"\n',
        f'{GOOD}[run]\nstarts = [["{attack}", 1]]\n',
        f'{GOOD}[[rules]]\nname = "gd"\neta = "{attack}"\n',
        GOOD.replace("alpha = 2", f'alpha = "{attack}"'),
    ):
        assert main(["run", str(_write(tmp_path, text))]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert not canary.exists()
