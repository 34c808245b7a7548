"""Figures: each shows the rules it should, in the one colour per rule that every figure shares."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from catalogue import shipped_specs
from matplotlib.colors import to_hex
from matplotlib.text import Annotation

from scaleinv import load_spec
from scaleinv.analysis.graph import FunctionGraph
from scaleinv.errors import SpecError
from scaleinv.reports.colors import RULE_COLORS, rule_style, rule_styles
from scaleinv.reports.content import derive, report_options, run_rules
from scaleinv.reports.figures import (
    graph_figure,
    landscape_family,
    loss_figure,
    make_figures,
    save_plot,
    trajectory_figure,
)
from scaleinv.symbolic import parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _content(source):
    spec = load_spec(source) if isinstance(source, Path) else source
    _, runs = derive(spec)
    return spec, run_rules(spec, runs), report_options(spec)


@pytest.fixture(scope="module")
def scaling():
    return _content(ROOT / "reports" / "scaling.toml")


@pytest.fixture(scope="module")
def sensitivity():
    return _content(ROOT / "reports" / "sensitivity.toml")


def _legend_colors(legend) -> dict[str, str]:
    return {
        text.get_text(): to_hex(handle.get_color())
        for text, handle in zip(legend.get_texts(), legend.legend_handles)
    }


def _arrows(ax) -> list[Annotation]:
    return [a for a in ax.texts if isinstance(a, Annotation) and a.arrow_patch is not None]


def test_every_figure_shows_every_rule_in_its_one_colour(scaling) -> None:
    spec, runs, options = scaling
    expected = {run.label: run.style.color for run in runs}
    family = landscape_family(spec.problem, runs, options)
    trajectories, _ = trajectory_figure(spec.problem, runs, options)
    losses = loss_figure(runs)
    legends = [
        family.figure.legends[0],
        trajectories.legends[0],
        losses.figure.axes[0].get_legend(),
    ]
    for legend in legends:
        assert _legend_colors(legend) == expected
    assert expected["GD (η=0.004)"] == RULE_COLORS["gd"].lower()
    assert len(set(expected.values())) == len(runs)


def test_trajectory_lines_have_the_rule_colours_and_the_driver_iterates(scaling) -> None:
    spec, runs, options = scaling
    fig, _ = trajectory_figure(spec.problem, runs, options)
    ax_x = fig.axes[0]
    for run in runs:
        line = next(ln for ln in ax_x.get_lines() if ln.get_label() == run.label)
        assert to_hex(line.get_color()) == run.style.color
        np.testing.assert_allclose(line.get_xydata(), run.trajectory.x[:, 0, :])


def test_landscape_family_has_a_panel_per_alpha_and_an_arrow_per_rule(scaling) -> None:
    spec, runs, options = scaling
    plot = landscape_family(spec.problem, runs, options)
    axes = plot.figure.axes
    assert [ax.get_title() for ax in axes] == [f"$\\alpha = {a:g}$" for a in options.alphas]
    for ax in axes:
        arrows = _arrows(ax)
        assert len(arrows) == len(runs)
        colors = {to_hex(a.arrow_patch.get_edgecolor()) for a in arrows}
        assert colors == {run.style.color for run in runs}
    assert "1, 10, 100" in plot.caption


def test_landscape_arrows_follow_the_compiled_step(scaling) -> None:
    """GD's step ∝ (x0, α² x1) turns towards −x1 as α grows; Newton's stays ∝ −x."""
    spec, runs, options = scaling
    plot = landscape_family(spec.problem, runs, options)
    direction = {}
    for alpha, ax in zip(options.alphas, plot.figure.axes):
        for run, arrow in zip(runs, _arrows(ax)):
            d = np.array(arrow.xy) - np.array(arrow.xyann)
            direction[run.rule.name, alpha] = d / np.linalg.norm(d)
    np.testing.assert_allclose(direction["newton", 1.0], direction["newton", 100.0], atol=1e-12)
    np.testing.assert_allclose(direction["gd", 1.0], direction["newton", 1.0], atol=1e-12)
    assert abs(direction["gd", 100.0][0]) < 1e-3 and direction["gd", 100.0][1] < -0.99


def test_one_dimensional_figures(sensitivity) -> None:
    spec, runs, options = sensitivity
    plot = landscape_family(spec.problem, runs, options)
    assert len(plot.figure.axes) == len(options.alphas)
    for ax in plot.figure.axes:
        assert len(_arrows(ax)) == len(runs)
    fig, caption = trajectory_figure(spec.problem, runs, options)
    assert "against the iteration" in caption
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == runs[0].label)
    np.testing.assert_allclose(line.get_ydata(), runs[0].trajectory.x[:, 0, 0])


def test_loss_figure_is_log_scale_with_the_driver_losses(scaling) -> None:
    _, runs, _ = scaling
    ax = loss_figure(runs).figure.axes[0]
    assert ax.get_yscale() == "log"
    for run in runs:
        line = next(ln for ln in ax.get_lines() if ln.get_label() == run.label)
        expected = run.trajectory.loss[:, 0]
        shown = line.get_ydata()
        positive = expected > 0
        np.testing.assert_allclose(shown[positive], expected[positive])


def test_a_diverging_rule_does_not_lift_the_other_losses_off_their_values() -> None:
    spec = parse_spec(
        {
            "problem": {
                "inputs": ["x0", "x1"],
                "outputs": ["x0", "10*x1"],
                "loss": "y0**2 + y1**2",
            },
            "run": {"starts": [[2, 1.5]], "steps": 20},
            "rules": [{"name": "gd", "eta": 5}, {"name": "pg", "eta": 0.5}],
        }
    )
    _, runs, _ = _content(spec)
    assert runs[0].trajectory.loss.max() > 1e100  # GD with η = 5 blows up
    ax = loss_figure(runs).figure.axes[0]
    for run in runs:  # PG's small losses are drawn where they are, not at GD's scale
        line = next(ln for ln in ax.get_lines() if ln.get_label() == run.label)
        expected = run.trajectory.loss[:, 0]
        np.testing.assert_allclose(line.get_ydata()[expected > 0], expected[expected > 0])


def test_more_than_two_inputs_get_a_slice_and_say_so() -> None:
    spec = parse_spec(
        {
            "problem": {"inputs": ["a", "b", "c"], "outputs": ["a", "2*b", "3*c"]},
            "run": {"starts": [[1, 1, 1]], "steps": 3},
            "rules": [{"name": "gd", "eta": 0.05}, {"name": "ig", "eta": 0.5}],
        }
    )
    spec, runs, options = _content(spec)
    plots = make_figures(spec.problem, runs, options)
    assert [p.name for p in plots] == ["trajectories", "loss"]
    assert "2-D slice" in plots[0].caption
    assert {t.get_text() for t in plots[0].figure.legends[0].get_texts()} == {r.label for r in runs}


def test_graph_figure_draws_the_composition() -> None:
    graph = FunctionGraph.from_chain([("x", 1), ("y", ["x0**3"]), ("L", "(y0 - 2)**2/2")])
    plot = graph_figure(graph)
    texts = {t.get_text() for t in plot.figure.axes[0].texts}
    assert {"x [1]", "y [1]", "L [1]"} <= texts and "∂y/∂x" in texts


def test_saved_figures_are_vector_pdf_and_png(scaling, tmp_path) -> None:
    spec, runs, options = scaling
    for plot in make_figures(spec.problem, runs, options):
        pdf, png = save_plot(plot, tmp_path)
        assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000


def test_colour_mapping_is_fixed_and_repeats_get_shades() -> None:
    assert rule_style("pg").color == RULE_COLORS["pg"].lower()
    first, second, third = rule_styles(["gd", "gd", "newton"])
    assert first.color == RULE_COLORS["gd"].lower() and second.color != first.color
    assert second.linestyle != first.linestyle and third.color == RULE_COLORS["newton"].lower()
    assert rule_style("unknown").color != rule_style("gd").color


def _texts_inside_axes(fig) -> list[str]:
    """Texts drawn in an axes (labels, |Δx| boxes, node and edge labels) that leave it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.offsetbox import AnchoredOffsetbox

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    outside = []
    for ax in fig.axes:
        window = ax.get_window_extent(renderer).expanded(1.0, 1.0).padded(1.0)
        artists = [t for t in ax.texts if t.get_text()]
        artists += [a for a in ax.artists if isinstance(a, AnchoredOffsetbox)]
        for artist in artists:
            box = artist.get_window_extent(renderer)
            if box.x0 < window.x0 or box.x1 > window.x1 or box.y0 < window.y0 or box.y1 > window.y1:
                outside.append(artist.get_text() if hasattr(artist, "get_text") else repr(artist))
    return outside


@pytest.mark.parametrize("stem", [p.stem for p in shipped_specs()])
def test_every_label_lies_inside_its_axes(stem) -> None:
    from scaleinv.reports.extras import composition_part

    spec, runs, options = _content(ROOT / "reports" / f"{stem}.toml")
    graph, _ = composition_part(spec)
    for plot in make_figures(spec.problem, runs, options, graph, units=dict(spec.units)):
        assert _texts_inside_axes(plot.figure) == [], (stem, plot.name)


def test_axes_carry_the_symbols_and_si_units_of_units() -> None:
    spec, runs, options = _content(ROOT / "reports" / "spring.toml")
    plots = {p.name: p for p in make_figures(spec.problem, runs, options, units=dict(spec.units))}
    ax_x, ax_y = plots["trajectories"].figure.axes[:2]
    assert ax_x.get_xlabel() == r"$k$ [$\mathrm{N}\,\mathrm{m}^{-1}$]"  # k = "force/length"
    assert ax_x.get_ylabel() == r"$v_{0}$ [$\mathrm{m}\,\mathrm{s}^{-1}$]"
    assert ax_y.get_xlabel() == r"$y_{0}$ [$\mathrm{m}$]" and "[$\\mathrm{s}$]" in ax_y.get_ylabel()


def test_axes_show_units_as_declared_and_outputs_as_an_entry_of_their_dimension() -> None:
    """Issue 16 (RC divider): R1 = "voltage/current" read kg m² s⁻³ A⁻², y0 kg m² s⁻³ A⁻¹."""
    from scaleinv.reports.figures import axis_names

    spec = parse_spec(
        {
            "problem": {"inputs": ["R1", "R2"], "outputs": ["Vs*R2/(R1 + R2)", "C*R1*R2/(R1 + R2)"],
                        "loss": "((y0 - V_star)/V_star)**2/2 + ((y1 - tau_star)/tau_star)**2/2"},
            "params": {"Vs": 10, "C": 1e-6, "V_star": 2.5, "tau_star": 1.5e-3},
            "units": {"R1": "voltage/current", "R2": "voltage/current", "Vs": "voltage",
                      "C": "current*time/voltage", "V_star": "voltage", "tau_star": "time"},
            "run": {"starts": [[1000, 1000]]},
            "rules": [{"name": "gd", "eta": 1}],
        }
    )  # fmt: skip
    xs, ys = axis_names(spec.problem, dict(spec.units))
    assert xs == [rf"${x}$ [$\mathrm{{V}}\,\mathrm{{A}}^{{-1}}$]" for x in ("R_{1}", "R_{2}")]
    assert ys == [r"$y_{0}$ [$\mathrm{V}$]", r"$y_{1}$ [$\mathrm{s}$]"]


def test_an_excursion_does_not_squash_the_other_runs() -> None:
    """Newton's far excursion (units spec) is marked at the border instead of setting the
    limits: the window stays near the bulk of the iterates."""
    from scaleinv.reports.landscapes import window_around

    bulk = np.random.default_rng(0).normal(size=(60, 2))
    excursion = np.array([[400.0, -300.0]])
    window = window_around(np.concatenate([bulk, excursion]), always=bulk[:1])
    assert all(hi - lo < 20 for lo, hi in window)
    spec, runs, options = _content(ROOT / "reports" / "units.toml")
    fig, caption = trajectory_figure(spec.problem, runs, options)
    xs = np.concatenate([r.trajectory.x[:, 0, 0] for r in runs])
    low, high = fig.axes[0].get_xlim()
    if xs.max() > high or xs.min() < low:
        assert "Hollow circles" in caption


def test_a_diverging_rule_does_not_set_the_trajectory_window() -> None:
    """Issue 16 (RC divider): HIG diverged to 1e58 and the axes followed it, every other rule a
    dot at the start. Here GD with a step too large for the curvature diverges (|1 - 2η| = 9
    per step); the window stays near the converging rules and the excursion is marked."""
    spec = parse_spec(
        {
            "problem": {"inputs": ["a", "b"], "outputs": ["a", "3*b"], "target": [2, 1]},
            "run": {"starts": [[1, 1]], "steps": 30},
            "rules": [{"name": "gd", "eta": 5}, {"name": "ig", "eta": 0.5},
                      {"name": "newton", "eta": 0.5}],
        }
    )  # fmt: skip
    spec, runs, options = _content(spec)
    assert np.abs(runs[0].trajectory.x[-1]).max() > 1e20  # GD did diverge
    tame = np.concatenate([r.trajectory.x[:, 0, :] for r in runs[1:]])
    fig, caption = trajectory_figure(spec.problem, runs, options)
    for ax, points in zip(fig.axes[:2], (tame, spec.problem.compile().P(tame))):
        spread = np.ptp(points, axis=0).max()
        for (low, high), k in ((ax.get_xlim(), 0), (ax.get_ylim(), 1)):
            assert low <= points[:, k].min() and points[:, k].max() <= high  # all of them shown
            assert high - low < 10 * spread  # not squashed
    assert "Hollow circles" in caption


SPHERICAL = {
    "problem": {"inputs": ["r", "th", "ph"], "target": [1.0, 2.0, 0.5],
                "outputs": ["r*sin(th)*cos(ph)", "r*sin(th)*sin(ph)", "r*cos(th)"]},
    "run": {"starts": [[1.0, 1.0, 0.5], [2.0, 0.3, 2.0]], "steps": 20},
    "rules": [{"name": "gd", "eta": 0.1}, {"name": "newton", "eta": 1.0},
              {"name": "ig", "eta": 1.0}],
}  # fmt: skip


@pytest.fixture(scope="module")
def spherical():
    """Spherical coordinates: IG from the second start ends 17 turns away, at ph ≈ −105
    (runs without the symbolic Δx formulas, which the figure does not read)."""
    from scaleinv.numeric.rules import make_rule
    from scaleinv.reports.content import RuleRun, rule_labels

    spec = parse_spec(SPHERICAL)
    rules = [make_rule(r) for r in spec.rules]
    styles = rule_styles([r.name for r in rules])
    labels = rule_labels(spec.rules, rules)
    runs = tuple(
        RuleRun(s, r, label, style, (), "")
        for s, r, label, style in zip(spec.rules, rules, labels, styles)
    )
    return spec, run_rules(spec, runs), report_options(spec)


def test_an_end_point_turns_away_does_not_set_the_window(spherical) -> None:
    """IG's end at ph ≈ −105 squashed every other path into the top of the figure: the
    window is now set by the bulk of the iterates, the excursion marked at the border."""
    spec, runs, options = spherical
    ig = runs[2].trajectory.x
    assert ig[-1, :, 2].min() < -90  # the excursion is there
    fig, caption = trajectory_figure(spec.problem, runs, options)
    ax = fig.axes[0]
    plane = [ax.get_xlabel(), ax.get_ylabel()]
    k = [str(x) for x in spec.problem.inputs].index(plane[1].strip("$"))
    bulk = np.concatenate([r.trajectory.x[:, b, k] for r in runs[:2] for b in range(2)])
    low, high = ax.get_ylim()
    assert not low <= ig[-1, :, 2].min() <= high  # IG's far end is off the window, marked
    assert high - low < 5 * np.ptp(bulk)  # GD and Newton are not squashed
    assert "Hollow circles" in caption and "modulo" not in caption


def test_periodic_inputs_are_drawn_wrapped_around_the_first_start(spherical) -> None:
    spec, runs, options = spherical
    periods = (None, 2 * np.pi, 2 * np.pi)
    fig, caption = trajectory_figure(spec.problem, runs, replace(options, periods=periods))
    assert "$th$ modulo $2 \\pi$, $ph$ modulo $2 \\pi$ (wrapped around the first start" in caption
    ax = fig.axes[0]
    names = [str(x) for x in spec.problem.inputs]
    plane = [names.index(label.strip("$").replace("\\", "")) for label in
             (ax.get_xlabel(), ax.get_ylabel())]  # fmt: skip
    start = spec.starts[0]
    drawn = [line.get_xydata() for line in ax.get_lines() if len(line.get_xydata()) > 1]
    true = [r.trajectory.x[:, b][:, plane] for r in runs for b in range(2)]
    assert len(drawn) == len(true)
    for shown, path in zip(drawn, true):
        shown = shown[np.isfinite(shown).all(axis=1)]  # NaN rows: where the line breaks
        assert len(shown) == len(path)
        for axis, k in enumerate(plane):
            if periods[k] is None:
                np.testing.assert_array_equal(shown[:, axis], path[:, axis])
                continue
            # within one period around the start, and an integer number of turns from the iterate
            assert np.all(np.abs(shown[:, axis] - start[k]) <= np.pi + 1e-12)
            turns = (path[:, axis] - shown[:, axis]) / (2 * np.pi)
            np.testing.assert_allclose(turns, np.round(turns), atol=1e-9)
    low, high = ax.get_ylim()
    assert high - low <= 2 * np.pi + 1e-9


@pytest.mark.parametrize(
    ("periodic", "match"),
    [
        ({"phi": "2*pi"}, r"report.periodic.phi\] is not an input"),
        ({"ph": -1}, r"report.periodic.ph\] must be positive"),
        ({"ph": "x"}, r"report.periodic.ph\]"),
        (["ph"], r"report.periodic\] must be a table"),
    ],
)
def test_bad_periodic_table_is_a_spec_error(periodic, match) -> None:
    spec = parse_spec({**SPHERICAL, "report": {"periodic": periodic}})
    with pytest.raises(SpecError, match=match):
        report_options(spec)
