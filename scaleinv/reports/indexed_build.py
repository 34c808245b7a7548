"""Build the report of an indexed spec (``scaleinv report`` on ``inputs = "u[0:n]"``).

The same stages as every report (:mod:`~scaleinv.reports.builder`: derive, compile, run,
verify, figures, LaTeX, PDF, written atomically into a folder scaleinv owns), each done the
indexed way: the stencils are derived once, the rules run with their structured steps at the
spec's size, units and invariance are decided per field
(:mod:`~scaleinv.analysis.units_indexed`, :mod:`~scaleinv.analysis.invariance_indexed`), and the
figures draw the sparsity of J and H, the final states over the grid and the loss curves.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scaleinv.analysis.invariance_indexed import field_scaling_invariance
from scaleinv.analysis.units_indexed import check_indexed_units, indexed_dimensions
from scaleinv.errors import NumericInverseWarning, ScaleinvError
from scaleinv.numeric import Status, compile_problem, minimize
from scaleinv.numeric.rules import Rule, make_rule
from scaleinv.reports.build_result import BuildResult, ResultRow
from scaleinv.reports.colors import rule_styles
from scaleinv.reports.content import RuleRun, rule_labels
from scaleinv.reports.document import FigureRef
from scaleinv.reports.figures import Plot, loss_figure, save_plot
from scaleinv.reports.indexed_tex import indexed_document
from scaleinv.reports.pattern_figure import profile_figure
from scaleinv.reports.pdf import LatexError, compile_pdf, how_to_get_pdf, tex_engine
from scaleinv.reports.spec_verdicts import SpecVerdicts
from scaleinv.reports.stencil_figure import field_maps_figure, stencil_pattern_figure
from scaleinv.reports.study_indexed import indexed_study_tex, run_indexed_study
from scaleinv.reports.verdicts import VerdictRow
from scaleinv.symbolic import IndexedProblem, Spec

__all__ = ["build_indexed_into", "indexed_runs", "indexed_verdicts"]

Progress = Callable[[str], None]


def indexed_runs(spec: Spec) -> tuple[RuleRun, ...]:
    """Every rule of the spec from its starts, every step recorded (a failure is kept)."""
    rules = [make_rule(r) for r in spec.rules]
    labels = rule_labels(spec.rules, rules)
    styles = rule_styles([r.name for r in rules])
    starts = np.array(spec.starts)
    runs = []
    for rule_spec, rule, label, style in zip(spec.rules, rules, labels, styles):
        trajectory, error = None, ""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NumericInverseWarning)
                trajectory = minimize(spec.problem, rule, starts, spec.steps, spec.tol,
                                      record="all")  # fmt: skip
        except ScaleinvError as err:
            error = str(err)
        runs.append(RuleRun(rule_spec, rule, label, style, (), "structured step", trajectory,
                            error))  # fmt: skip
    return tuple(runs)


def indexed_verdicts(
    spec: Spec, runs: Sequence[tuple[str, Rule]], units: Mapping[str, Any] | None = None
) -> list[tuple[str, str, str, str]]:
    """``(label, check, verdict, argument)`` per ``(label, rule)``: units (with ``[units]``, or
    ``units``) and invariance under a scaling per field."""
    p = spec.problem
    units = dict(spec.units) if units is None else dict(units)
    dims = indexed_dimensions(p, units) if units else None  # type: ignore[arg-type]
    rows = []
    start = np.asarray(spec.starts[0], dtype=float)
    for label, rule in runs:
        name = rule.name
        if dims is not None:
            try:
                report = check_indexed_units(p, name, dims)  # type: ignore[arg-type]
                needs = ", ".join(
                    f"[η] for {x}: {_dim(d)}" for x, d in zip(report.inputs, report.required_eta)
                )
                rows.append((label, "units", str(report.verdict),
                             f"{report.derivation[-1]}; {needs}"))  # fmt: skip
            except ScaleinvError as err:
                rows.append((label, "units", "not checked", str(err)))
        eta = float(getattr(rule, "eta", 0.1) or 0.1)
        found = field_scaling_invariance(p, name, start, eta)  # type: ignore[arg-type]
        rows.append((label, "scale invariance", str(found.verdict),
                     "; ".join(found.argument)))  # fmt: skip
    return rows


def _dim(d: Any) -> str:
    from scaleinv.analysis.units import format_dimension

    return "any" if d is None else format_dimension(d)


def build_indexed_into(
    spec: Spec, work: Path, final: Path, pdf: bool, say: Progress, lock_fds: tuple[int, ...]
) -> BuildResult:
    """Build into ``work`` (the caller moves it to ``final``); a :class:`BuildResult`."""
    p = spec.problem
    assert isinstance(p, IndexedProblem)  # the builder routes only indexed specs here
    say(f"derive   stencils of J and H at a generic point ({p.n} inputs, never expanded)")
    p.representative_rows()
    say("compile  point kernels of P, J's diagonals and the point Hessians")
    kernels = compile_problem(p)
    say(f"run      {len(spec.rules)} rule(s) x {len(spec.starts)} start(s), {spec.steps} steps")
    runs = indexed_runs(spec)
    say("verify   " + ("units per field, " if spec.units else "") + "invariance per field")
    verdicts = indexed_verdicts(spec, [(run.label, run.rule) for run in runs])
    say("figures  sparsity of J and H, final states over the grid, loss curves")
    figures_dir = work / "figures"
    figures_dir.mkdir()
    fig, caption = stencil_pattern_figure(kernels)
    plots = [Plot("sparsity", fig, caption)]
    if len(p.shape) == 2 and any(r.trajectory is not None for r in runs):
        fig, caption = field_maps_figure(p, runs)
    else:
        fig, caption = profile_figure(runs, "$x$ (field-major)")
    plots.append(Plot("profile", fig, caption))
    plots.append(loss_figure(runs))
    files: list[Path] = []
    for plot in plots:
        files += save_plot(plot, figures_dir)
    refs = [FigureRef(f"figures/{plot.name}.pdf", plot.caption) for plot in plots]
    study = ""
    if spec.study:
        say(f"study    {len(spec.rules)} rule(s) from the [study] starts around the start")
        study = indexed_study_tex(run_indexed_study(spec))
    say("latex    report.tex")
    dims = indexed_dimensions(p, dict(spec.units)) if spec.units else None
    tex = work / "report.tex"
    tex.write_text(indexed_document(spec, runs, verdicts, refs, dims, study), encoding="utf-8")
    pdf_path, note = None, ""
    if pdf and tex_engine() is not None:
        say(f"pdf      {tex_engine()} -pdf report.tex")
        try:
            pdf_path = compile_pdf(tex, keep_fds=lock_fds)
        except LatexError as err:
            raise LatexError(final / tex.name, err.first_error, None) from None
    elif pdf:
        note = how_to_get_pdf(final)
    else:
        note = f"PDF not requested; run `latexmk -pdf report.tex` in {final}"
    results = []
    for run in runs:
        t = run.trajectory
        if t is None:
            results.append(ResultRow(run.label, (), 0, (), float("nan"), f"error: {run.run_error}"))
            continue
        for b, start in enumerate(spec.starts):
            status = Status(int(np.ravel(t.status)[b])).words
            taken = int(np.ravel(t.steps_taken)[b])
            results.append(ResultRow(run.label, tuple(np.asarray(start, float)), taken,
                                     tuple(t.x[-1, b]), float(t.loss[-1, b]), status))  # fmt: skip
    rows = tuple(VerdictRow(check, label, verdict, "") for label, check, verdict, _ in verdicts)
    checks = SpecVerdicts((), {}, {str(s): float(v) for s, v in p.params.items()}, 0)
    return BuildResult(spec.title, work, tex, pdf_path, figures_dir, tuple(files),
                       tuple(results), rows, checks, note, 0.0)  # fmt: skip
