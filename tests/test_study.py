"""Studies over many starts: counted from the driver's own runs, drawn as a basin map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scaleinv import load_spec, minimize
from scaleinv.errors import SpecError
from scaleinv.numeric import Status
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.cli import main
from scaleinv.reports.study import run_study, study_rows
from scaleinv.reports.study_figure import study_figure
from scaleinv.symbolic import parse_spec

ROOT = Path(__file__).resolve().parents[1]

TWO_MINIMA = {
    "title": "Two minima",
    "problem": {"inputs": ["x"], "outputs": ["x**2"], "target": [4]},
    "run": {"starts": [[1.0]], "steps": 40},
    "rules": [{"name": "newton", "eta": 1}, {"name": "gd", "eta": 0.01}],
    "study": {"region": [[-3, 3]], "starts": 41, "tol": 1e-8},
}


@pytest.fixture(scope="module")
def comparison():
    spec = load_spec(ROOT / "reports" / "comparison.toml")
    return spec, run_study(spec, starts=100)


def test_fractions_and_steps_are_those_of_the_driver(comparison) -> None:
    spec, study = comparison
    assert study.grid == (10, 10) and len(study.starts) == 100
    assert len(study.minima) == 1 and np.allclose(study.minima[0], 0, atol=0.02 * 6)
    o = study.options
    for rule_spec, found in zip(spec.rules, study.rules):
        t = minimize(spec.problem, make_rule(rule_spec), study.starts, o.steps, o.tol, record="all")
        converged = np.asarray(t.status) == Status.CONVERGED
        assert found.fractions[0] == pytest.approx(converged.mean())
        assert sum(found.statuses.values()) == 100
        # steps to tolerance: the first step from which the iterate no longer moves
        for i in np.flatnonzero(converged)[:5]:
            path = t.x[:, i]
            last_move = max(k for k in range(o.steps) if np.any(path[k + 1] != path[k]))
            assert found.steps_taken[i] == last_move + 1
    by_label = {r.label: r for r in study.rules}
    assert by_label["GD"].fractions == (0.0,)  # η = 0.01 crawls: never within 100 steps
    assert by_label["PG"].fractions == (1.0,) and by_label["Newton"].fractions == (1.0,)
    heads, rows = study_rows(study)
    assert heads[1] == "→ minimum 1" and rows[0][-1] == "100 at the step limit"


def test_two_minima_are_told_apart(tmp_path) -> None:
    spec = parse_spec(TWO_MINIMA, source="two.toml")
    study = run_study(spec)
    assert study.names[:2] == ("minimum 1", "minimum 2")
    assert sorted(round(m[0], 6) for m in study.minima[:2]) == [-2.0, 2.0]
    # the start x = 0 has ∂L/∂x = 0 at once: a stationary point, and said to be no minimum
    assert study.names[2:] == ("stationary point 3",) and abs(study.minima[2][0]) < 1e-9
    newton = study.rules[0]
    assert sum(newton.fractions) == pytest.approx(1.0, abs=0.05)  # x = 0 itself is singular
    # where L'' = 6x² − 8 > 0 all the way, Newton ends in the minimum on the start's side
    ends = np.array([study.minima[k][0] if k >= 0 else np.nan for k in newton.outcome])
    ends[np.abs(ends) < 1e-9] = np.nan
    side = np.sign(study.starts[:, 0])
    ok = ~np.isnan(ends) & (np.abs(study.starts[:, 0]) > 1.5)
    assert ok.sum() >= 15
    assert np.all(np.sign(ends[ok]) == side[ok])
    fig, caption = study_figure(study, ["$x$"])
    assert "random" in caption or "fraction" in caption
    assert len(fig.axes) == 1


def test_basin_map_has_a_panel_per_rule(comparison) -> None:
    spec, study = comparison
    fig, caption = study_figure(study, ["$x_{0}$", "$x_{1}$"])
    assert len(fig.axes) == len(spec.rules)
    assert [ax.get_title() for ax in fig.axes] == [r.label for r in study.rules]
    assert "Basin map" in caption and "100 starts" in caption


def test_study_command_prints_the_table(capsys) -> None:
    assert main(["study", "reports/comparison.toml", "--starts", "25"]) == 0
    out = capsys.readouterr().out
    assert "25 starts in [-3, 3] x [-3, 3]" in out and "minimum 1: (x0, x1) = (0, 0)" in out
    assert "Newton" in out and "steps (25/50/75 %)" in out


def test_a_spec_without_a_region_is_a_clear_error(tmp_path, capsys) -> None:
    spec = parse_spec({**TWO_MINIMA, "study": {}}, source="s.toml")
    with pytest.raises(SpecError, match="names no \\[study\\] region"):
        run_study(spec)
    bad = parse_spec({**TWO_MINIMA, "study": {"region": [[1, 0]]}}, source="s.toml")
    with pytest.raises(SpecError, match="study.region"):
        run_study(bad)
    assert main(["study", "reports/scaling.toml"]) == 2
    assert "scaleinv: error:" in capsys.readouterr().err
