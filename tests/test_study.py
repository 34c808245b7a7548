"""Studies over many starts: counted from the driver's own runs, drawn as a basin map."""

from __future__ import annotations

import math
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from catalogue import ARM, COUPLED_MAP, finite_difference
from matplotlib.colors import to_hex

from scaleinv import load_spec, minimize
from scaleinv.cli.main import main
from scaleinv.errors import NumericInverseWarning, SpecError
from scaleinv.numeric import Status
from scaleinv.numeric.rules import make_rule
from scaleinv.reports.latex import PREAMBLE
from scaleinv.reports.pdf import compile_pdf
from scaleinv.reports.study import LISTED, run_study, study_options
from scaleinv.reports.study_ends import FAR, NOT_A_MINIMUM, NOT_CONVERGED, classify_ends
from scaleinv.reports.study_figure import study_figure
from scaleinv.reports.study_text import minima_rows, study_rows, study_tex
from scaleinv.symbolic import parse_spec
from scaleinv.symbolic.spec import MAX_STARTS, MAX_STEPS

ROOT = Path(__file__).resolve().parents[1]

TWO_MINIMA = {
    "title": "Two minima",
    "problem": {"inputs": ["x"], "outputs": ["x**2"], "target": [4]},
    "run": {"starts": [[1.0]], "steps": 40},
    "rules": [{"name": "newton", "eta": 1}, {"name": "gd", "eta": 0.01}],
    "study": {"region": [[-3, 3]], "starts": 41, "tol": 1e-8},
}


def one_input(output: str, target: float, region, rules, **study) -> dict:
    """A spec of one input ``x`` with a study over ``region``."""
    return {
        "title": output,
        "problem": {"inputs": ["x"], "outputs": [output], "target": [target]},
        "rules": rules,
        "study": {"region": [region], **study},
    }


@pytest.fixture(scope="module")
def comparison():
    spec = load_spec(ROOT / "reports" / "comparison.toml")
    return spec, run_study(spec, starts=100)


def test_fractions_and_steps_are_those_of_the_driver(comparison) -> None:
    spec, study = comparison
    assert study.grid == (10, 10) and len(study.starts) == 100
    assert len(study.minima) == 1 and np.allclose(study.minima[0].point, 0, atol=0.02 * 6)
    o = study.options
    for rule_spec, found in zip(spec.rules, study.rules):
        t = minimize(spec.problem, make_rule(rule_spec), study.starts, o.steps, o.tol, record="all")
        converged = np.asarray(t.status) == Status.CONVERGED
        assert found.share(0) == pytest.approx(converged.mean())
        assert sum(found.statuses.values()) == 100
        # steps to tolerance: the first step from which the iterate no longer moves
        for i in np.flatnonzero(converged)[:5]:
            path = t.x[:, i]
            last_move = max(k for k in range(o.steps) if np.any(path[k + 1] != path[k]))
            assert found.steps_taken[i] == last_move + 1
    by_label = {r.label.split()[0]: r for r in study.rules}  # "GD (η=0.01)": the report's
    assert by_label["GD"].share(0) == 0.0  # η = 0.01 crawls: never within 100 steps
    assert by_label["PG"].share(0) == 1.0 and by_label["Newton"].share(0) == 1.0
    heads, rows = study_rows(study)
    assert heads[1] == "m1" and rows[0][-1] == "step limit: 100"


def test_two_minima_are_told_apart_and_the_maximum_is_none() -> None:
    study = run_study(parse_spec(TWO_MINIMA, source="two.toml"))
    assert sorted(round(m.point[0], 6) for m in study.minima) == [-2.0, 2.0]
    assert [m.loss for m in study.minima] == pytest.approx([0, 0], abs=1e-12)
    newton = study.rules[0]
    # the start x = 0 has ∂L/∂x = 0 at once: a stationary point, counted as no minimum
    at_zero = np.flatnonzero(np.abs(study.starts[:, 0]) < 1e-12)
    assert newton.outcome[at_zero].tolist() == [NOT_A_MINIMUM]
    # where L'' = 6x² − 8 > 0 all the way, Newton ends in the minimum on the start's side
    ok = np.abs(study.starts[:, 0]) > 1.5
    ends = np.array([study.minima[k].point[0] for k in newton.outcome[ok]])
    assert ok.sum() >= 15 and np.all(np.sign(ends) == np.sign(study.starts[ok, 0]))
    fig, caption = study_figure(study, ["$x$"])
    # one input: the starts lie evenly spaced on the line, and the caption says so
    assert study.options.layout() in caption and "evenly spaced" in caption
    assert "random" not in caption
    assert len(fig.axes) == 1


def test_basin_map_has_a_panel_per_rule(comparison) -> None:
    spec, study = comparison
    fig, caption = study_figure(study, ["$x_{0}$", "$x_{1}$"])
    assert len(fig.axes) == len(spec.rules)
    assert [ax.get_title() for ax in fig.axes] == [r.label for r in study.rules]
    assert "Basin map" in caption and "100 starts" in caption


def test_study_command_prints_the_minima_and_the_table(capsys) -> None:
    assert main(["study", "reports/comparison.toml", "--starts", "25"]) == 0
    out = capsys.readouterr().out
    assert "a 5 x 5 grid of 25 starts in [-3, 3] x [-3, 3]" in out and "asked" not in out
    assert "(x0, x1)" in out and "m1       (0, 0)" in out
    assert "Newton" in out and "steps 25/50/75 %" in out


def test_the_grid_rounding_is_said_up_front(capsys) -> None:
    assert main(["study", "reports/comparison.toml", "--starts", "30"]) == 0
    captured = capsys.readouterr()
    said = "30 starts asked for: a 5 x 5 grid of 25 starts"
    assert said in captured.err and said in captured.out
    spec = parse_spec({**TWO_MINIMA, "study": {"region": [[-3, 3]], "starts": 37}})
    assert len(run_study(spec).starts) == 37 == study_options(spec).starts  # exact for 1 input


def test_a_spec_without_a_region_is_a_clear_error(tmp_path, capsys) -> None:
    spec = parse_spec({**TWO_MINIMA, "study": {}}, source="s.toml")
    with pytest.raises(SpecError, match="names no \\[study\\] region"):
        run_study(spec)
    bad = parse_spec({**TWO_MINIMA, "study": {"region": [[1, 0]]}}, source="s.toml")
    with pytest.raises(SpecError, match="study.region"):
        run_study(bad)
    assert main(["study", "reports/scaling.toml"]) == 2
    assert "scaleinv: error:" in capsys.readouterr().err
    with pytest.raises(SpecError, match="region = .* spread and seed are for indexed problems"):
        parse_spec({**TWO_MINIMA, "study": {"spread": 0.1}}, source="s.toml")


@pytest.mark.parametrize("tol", [math.inf, -math.inf, math.nan, 0, -1e-6])
def test_a_tolerance_that_is_not_finite_and_positive_is_refused(tol) -> None:
    spec = parse_spec({**TWO_MINIMA, "study": {"region": [[-3, 3]], "tol": tol}}, source="s.toml")
    with pytest.raises(SpecError, match=r"s.toml: \[study.tol\] must be a finite positive"):
        run_study(spec)


def test_a_study_without_rules_is_a_clear_error(capsys, tmp_path) -> None:
    spec = parse_spec({**TWO_MINIMA, "rules": []}, source="s.toml")
    with pytest.raises(SpecError, match=r"\[rules\] a study compares rules"):
        run_study(spec)
    path = tmp_path / "s.toml"
    path.write_text(ARM.split("[[rules]]")[0] + "[study]" + ARM.split("[study]")[1])
    assert tomllib.loads(path.read_text()).get("rules") is None
    assert main(["study", str(path)]) == 2
    assert "a study compares rules" in capsys.readouterr().err


def test_steps_and_starts_have_the_run_limits(capsys) -> None:
    steps = {"region": [[-3, 3]], "steps": 10**12}
    with pytest.raises(SpecError, match=f"more than the limit of {MAX_STEPS}"):
        study_options(parse_spec({**TWO_MINIMA, "study": steps}))
    with pytest.raises(SpecError, match=f"more than the limit of {MAX_STARTS}"):
        study_options(parse_spec(TWO_MINIMA), starts=MAX_STARTS + 1)
    assert main(["run", "reports/comparison.toml", "--starts", str(MAX_STARTS + 1)]) == 2
    assert f"limit of {MAX_STARTS}" in capsys.readouterr().err


def test_every_status_has_words_and_inverse_not_found_is_counted() -> None:
    assert len({s.words for s in Status}) == len(Status)
    # x + 2 sin x folds where 1 + 2 cos x = 0: PG's numeric inverse cannot pass a fold
    spec = parse_spec(one_input("x + 2*sin(x)", 0.5, [-6, 6], [{"name": "pg", "eta": 1}],
                                starts=41))  # fmt: skip
    study = run_study(spec)
    lost = study.rules[0].statuses[Status.NOT_FOUND]
    assert lost > 0
    assert study_rows(study)[1][0][-1] == f"inverse not found: {lost}"
    (point,) = [m.point for m in study.minima]
    assert point[0] + 2 * math.sin(point[0]) == pytest.approx(0.5, abs=1e-6)


def test_runs_that_converge_far_outside_the_region_reach_no_minimum() -> None:
    # atan(x) < π/2 never reaches 2: GD drifts outwards until |∂L/∂x| ~ 0.4/x² < tol
    spec = parse_spec(one_input("atan(x)", 2, [-1, 1], [{"name": "gd", "eta": 10}],
                                starts=11, steps=5000, tol=1e-3))  # fmt: skip
    study = run_study(spec)
    gd = study.rules[0]
    assert gd.statuses == {Status.CONVERGED: 11} and study.minima == ()
    assert np.all(gd.outcome == FAR)
    assert study_rows(study)[1][0][-1] == "far outside the region: 11"


@pytest.fixture(scope="module")
def many_minima():
    """x·sin(x) = 1 on [-30, 30]: about twenty minima."""
    rules = [{"name": "newton", "eta": 1}, {"name": "gd", "eta": 0.01}]
    spec = parse_spec(one_input("x*sin(x)", 1, [-30, 30], rules, starts=121, steps=300))
    return spec, run_study(spec)


def test_the_most_visited_minima_are_listed_and_the_rest_summed(many_minima) -> None:
    spec, study = many_minima
    assert len(study.minima) > LISTED
    runs = [m.runs for m in study.minima]
    assert runs == sorted(runs, reverse=True)  # most visited first
    heads, rows = study_rows(study)
    assert heads[1 : LISTED + 2] == [*(f"m{k + 1}" for k in range(LISTED)), "other"]
    for rule, row in zip(study.rules, rows):
        assert row[LISTED + 1] == f"{np.mean(rule.outcome >= LISTED):.0%}"
    minima = minima_rows(study)
    assert len(minima) == LISTED + 1 and minima[-1][0] == f"other ({len(study.minima) - LISTED})"

    def loss(x):
        return 0.5 * (x * np.sin(x) - 1) ** 2

    for m, row in zip(study.minima, minima[:LISTED]):
        x = m.point[0]
        assert float(row[2]) == pytest.approx(loss(x), rel=1e-2, abs=1e-20)
        # the twin of the Hessian check: no nearby point is lower
        assert loss(x - 1e-3) >= m.loss and loss(x + 1e-3) >= m.loss


def overfull_boxes(section: str, folder: Path) -> list[str]:
    """Compile a report section alone with the report's preamble; its overfull-box warnings."""
    tex = folder / "section.tex"
    tex.write_text(f"{PREAMBLE}\\begin{{document}}\n{section}\n\\end{{document}}\n")
    compile_pdf(tex)
    log = tex.with_suffix(".log").read_text(errors="replace")
    return [line for line in log.splitlines() if line.startswith("Overfull")]


@pytest.mark.usefixtures("tex")  # skipped without TeX, failed in CI
def test_the_study_tables_fit_the_page(many_minima, tmp_path) -> None:
    spec, study = many_minima
    section = study_tex(study, spec)
    assert "other" in section and "m5" in section
    # two minima: the last column takes the room of the missing ones
    few = parse_spec({**TWO_MINIMA, "rules": [{"name": "newton", "eta": 1, "label": "N" * 12}]})
    assert overfull_boxes(section + study_tex(run_study(few), few), tmp_path) == []


def test_the_study_of_many_minima_fits_the_terminal(tmp_path, capsys) -> None:
    path = tmp_path / "many.toml"
    path.write_text(
        '[problem]\ninputs = ["x"]\noutputs = ["x*sin(x)"]\ntarget = [1]\n'
        '[[rules]]\nname = "newton"\neta = 1\n[[rules]]\nname = "gd"\neta = 0.01\n'
        "[study]\nregion = [[-30, 30]]\nstarts = 121\nsteps = 300\n"
    )
    assert main(["study", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 100
    assert any(line.startswith("other (") for line in lines)


def test_the_legend_fits_and_its_colours_are_distinct(many_minima) -> None:
    _, study = many_minima
    fig, _ = study_figure(study, ["$x$"])
    fig.canvas.draw()
    (legend,) = fig.legends
    box, frame = legend.get_window_extent(), fig.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
    colours = [to_hex(h.get_facecolor()) for h in legend.legend_handles]
    assert len(colours) == len(set(colours)) <= LISTED + 3
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0].startswith("m1 (L = ") and "other minima" in labels[LISTED]


def arm_hand(q: np.ndarray) -> np.ndarray:
    """The arm's forward kinematics, written out in NumPy (the twin of the spec's P)."""
    q0, q1 = q[..., 0], q[..., 1]
    return np.stack([np.cos(q0) + 0.6 * np.cos(q0 + q1), np.sin(q0) + 0.6 * np.sin(q0 + q1)], -1)


def angle(d: np.ndarray) -> np.ndarray:
    return np.mod(d + np.pi, 2 * np.pi) - np.pi


@pytest.fixture(scope="module")
def arm():
    spec = parse_spec(tomllib.loads(ARM), source="arm.toml")
    return spec, run_study(spec)


@pytest.mark.slow
def test_the_arm_reaches_two_poses_modulo_2pi(arm) -> None:
    spec, study = arm
    loss = spec.problem.compile().loss
    assert study.periods == pytest.approx((2 * np.pi, 2 * np.pi))
    # elbow up and elbow down: both put the hand on the target, q1 of opposite signs
    assert len(study.minima) == 2
    points = np.array([m.point for m in study.minima])
    np.testing.assert_allclose(arm_hand(points), [[1.2, 0.5]] * 2, atol=1e-5)
    assert np.sign(points[0, 1]) == -np.sign(points[1, 1])
    assert np.all(np.abs(points) <= np.pi)  # shown in the period around the region's centre
    # every run counted at a minimum ended there, up to whole turns of each joint
    for k, rule in enumerate(study.rules):
        with warnings.catch_warnings():  # PG's numeric inverse: known
            warnings.simplefilter("ignore", NumericInverseWarning)
            t = minimize(spec.problem, make_rule(spec.rules[k]), study.starts, 200, 1e-6,
                         record="last")  # fmt: skip
        ends = t.x[-1]
        at = rule.outcome >= 0
        gap = angle(ends[at] - points[rule.outcome[at]])
        assert np.abs(gap).max() < 0.02 * 6.4
        # the rest: not converged, or converged where the loss still descends
        for i in np.flatnonzero(rule.outcome == NOT_A_MINIMUM)[:3]:
            hessian = finite_difference(lambda x: finite_difference(loss, x, 1e-4), ends[i], 1e-4)
            assert np.linalg.eigvalsh((hessian + hessian.T) / 2).min() < -1e-3
        assert np.all(np.isin(rule.outcome[~at], (NOT_CONVERGED, NOT_A_MINIMUM)))


@pytest.mark.slow
def test_a_study_says_once_that_pg_solves_numerically_and_fits_the_terminal(
    tmp_path, capsys
) -> None:
    """The coupled map has no closed-form inverse: one ``note:`` line; the arm has one (its
    elbow branches): no note. Neither prints a raw warning or a line past 100 columns."""
    for text, notes in ((COUPLED_MAP, 1), (ARM, 0)):
        path = tmp_path / "spec.toml"
        path.write_text(text)
        assert main(["study", str(path), "--starts", "100"]) == 0
        captured = capsys.readouterr()  # (a NumericInverseWarning would fail the test)
        lines = captured.out.splitlines()
        assert max(map(len, lines)) <= 100
        noted = sum(line.startswith("note: PG solves P(x) = y numerically") for line in lines)
        assert noted == notes and "Warning" not in captured.err


@pytest.mark.slow
@pytest.mark.usefixtures("tex")  # skipped without TeX, failed in CI
def test_the_coupled_map_lists_few_minima_with_their_loss(tmp_path, capsys) -> None:
    spec = parse_spec(tomllib.loads(COUPLED_MAP), source="coupled.toml")
    study = run_study(spec)
    assert study.periods == (None, None, None)
    low, high = np.array(study.options.region).T
    for m in study.minima:  # the loss shown is the loss there; no minimum far away
        x0, x1, x2 = m.point
        y = np.array([x0 + x1**3 + np.sin(x2), x1 * x2 + np.exp(x0) / 3, x2**3 + x0 * x1])
        assert m.loss == pytest.approx(0.5 * np.sum((y - [1.5, 1.0, 2.0]) ** 2), abs=1e-12)
        assert np.all((low - 4 <= m.point) & (m.point <= high + 4))
    assert any(m.loss < 1e-12 for m in study.minima)
    path = tmp_path / "coupled.toml"
    path.write_text(COUPLED_MAP)
    assert main(["study", str(path)]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 100
    assert len(study_rows(study)[0]) <= LISTED + 4
    assert overfull_boxes(study_tex(study, spec), tmp_path) == []


def test_end_points_are_one_minimum_across_the_end_of_a_period() -> None:
    def loss(x):
        return 1 + np.cos(x[..., 0])

    def hessian(x):
        return -np.cos(x[..., 0])[..., None, None]

    # the minimum at π is the end of the period [-π, π) around the region's centre: end
    # points either side of it, and three turns further, are one minimum; 0 is the maximum
    ends = np.array([[np.pi - 1e-3], [-np.pi + 1e-3], [7 * np.pi], [0.0]])
    outcome, minima = classify_ends(ends, np.ones(4, bool), [(-3, 3)], [2 * np.pi], loss, hessian)
    assert outcome.tolist() == [0, 0, 0, NOT_A_MINIMUM] and len(minima) == 1
    assert minima[0].runs == 3 and minima[0].loss == pytest.approx(0, abs=1e-12)
    assert -np.pi <= minima[0].point[0] < np.pi
    # without the period: two minima near ±π, and 7π is far outside [-3, 3]
    outcome, minima = classify_ends(ends, np.ones(4, bool), [(-3, 3)], [None], loss, hessian)
    assert outcome.tolist() == [0, 1, FAR, NOT_A_MINIMUM] and len(minima) == 2


@pytest.fixture(scope="module")
def wide_region():
    """Five rules side by side over a region whose tick labels are long (``0.075``)."""
    rules = [{"name": n, "eta": 0.5} for n in ("gd", "newton", "ig", "pg", "hig")]
    spec = parse_spec(
        {
            "problem": {"inputs": ["a", "b"], "outputs": ["a/1000", "b/1000"], "target": [6, 2]},
            "rules": rules,
            "study": {"region": [[0.00123, 0.0987], [100, 20000]], "starts": 16, "steps": 2},
        }
    )
    return spec, run_study(spec)


def test_basin_panels_tick_labels_do_not_collide(wide_region) -> None:
    """Issue 16: neighbouring panels' labels ran together ("10000 200 00"); with five panels
    the labels of a short region touched within a panel as well."""
    from scaleinv.reports.study_figure import tick_label_boxes

    _, study = wide_region
    fig, _ = study_figure(study, ["$a$", "$b$"])
    boxes = [b for ax in fig.axes for b in tick_label_boxes(fig, ax)]
    assert len(boxes) >= len(fig.axes)  # every panel keeps a labelled tick
    assert not [(a, b) for k, a in enumerate(boxes) for b in boxes[k + 1 :] if a.overlaps(b)]


def test_the_closed_form_eigenvalues_agree_with_lapack() -> None:
    from scaleinv.reports.study_ends import _eigen_range

    rng = np.random.default_rng(3)
    for n in (1, 2, 3):
        a = rng.normal(size=(5000, n, n)) * rng.choice([1e-3, 1.0, 1e4], (5000, 1, 1))
        h = a + np.swapaxes(a, -1, -2)
        h[:10] = 0.0  # zero and repeated eigenvalues
        h[10:20] = np.eye(n) * 2.5
        lowest, largest = _eigen_range(h)
        eig = np.linalg.eigvalsh(h)
        scale = np.abs(eig).max(axis=-1)
        assert np.all(np.abs(lowest - eig[:, 0]) <= 1e-14 * scale)  # to rounding of each
        np.testing.assert_allclose(largest, scale, rtol=1e-12)


def test_the_lowest_point_of_each_group_is_argmins() -> None:
    from scaleinv.reports.study_ends import _lowest

    rng = np.random.default_rng(4)
    groups = rng.integers(0, 7, 2000)
    values = rng.integers(0, 5, 2000).astype(float)  # many ties
    values[rng.integers(0, 2000, 5)] = np.nan
    want = [int(np.argmin(np.where(groups == g, values, np.inf))) for g in range(7)]
    assert _lowest(groups, values, 7) == want


@pytest.mark.parametrize("scale", [1, 2**10, 2**40], ids=["table", "keys", "rows"])
def test_the_occupied_cells_come_in_order_of_first_occurrence(scale) -> None:
    from scaleinv.reports.study_ends import _occupied

    rng = np.random.default_rng(5)
    # a table of every cell; one int64 key per cell; past that, rows compared
    cells = rng.integers(-3, 4, (3000, 3)) * scale
    occupied, of_point = _occupied(cells)
    want = list(dict.fromkeys(tuple(c) for c in cells.tolist()))
    assert [tuple(c) for c in occupied.tolist()] == want
    np.testing.assert_array_equal(occupied[of_point], cells)
