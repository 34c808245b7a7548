"""Build a report: derive, compile, run, verify, draw, write LaTeX, make the PDF — atomically.

Everything is written into a temporary folder next to the output folder; only when the
whole build (PDF included) succeeded does it replace the output folder, so a failing build
leaves the previous report as it was. :mod:`~scaleinv.reports.outdir` says which folders may
be replaced (only scaleinv's own reports, recognised by their manifest) and how.

The build never prints: it reports its stages to an optional ``progress`` callable (the CLI
prints them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scaleinv.analysis.units import check_unit_table, problem_dimensions
from scaleinv.errors import ScaleinvError
from scaleinv.numeric import Status, compile_problem
from scaleinv.reports.build_result import BuildResult, ResultRow, page_images
from scaleinv.reports.content import RuleRun, derive, report_options, run_rules
from scaleinv.reports.document import FigureRef, render_document
from scaleinv.reports.extras import applicable_claims, composition_part, ledger_rows
from scaleinv.reports.figures import Plot, axis_names, make_figures, save_plot
from scaleinv.reports.formulas import APPENDIX_FILE, Formulas
from scaleinv.reports.indexed_build import build_indexed_into
from scaleinv.reports.outdir import OutputFolder
from scaleinv.reports.pdf import LatexError, compile_pdf, how_to_get_pdf, tex_engine
from scaleinv.reports.selection_note import branch_selection_tex
from scaleinv.reports.spec_verdicts import spec_verdicts, transforms_of
from scaleinv.reports.structure import hessian_work
from scaleinv.reports.study import run_study
from scaleinv.reports.study_figure import study_figure
from scaleinv.reports.study_text import study_tex
from scaleinv.reports.text import numeric_inverse_line
from scaleinv.reports.verdicts import start_tex, verdict_rows
from scaleinv.symbolic import IndexedProblem, Spec, load_spec

__all__ = ["BuildResult", "ResultRow", "build", "default_out_dir", "page_images"]
__all__ += ["MAX_REPORT_WORK", "MAX_REPORT_INPUTS"]

Progress = Callable[[str], None]


#: Most products of derivative entries the chain rule may need for a report's Hessian
#: (:func:`~scaleinv.reports.structure.hessian_work`): a dense problem of about 36 inputs, a
#: 256-point stencil needs 4 600. Derivation time grows with it, not with the input count.
MAX_REPORT_WORK = 100_000
#: Most inputs (or outputs) of a report: its numeric checks (theorem hypotheses, twins) hold
#: dense n×n matrices and factor them.
MAX_REPORT_INPUTS = 2048


def default_out_dir(spec: Spec) -> Path:
    """``out/<spec stem>/`` under the current directory."""
    stem = Path(spec.source).stem if spec.source else "report"
    return Path.cwd() / "out" / stem


def build(
    spec_or_path: Spec | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    pdf: bool = True,
    progress: Progress | None = None,
) -> BuildResult:
    """Build the report of a spec into ``out_dir`` (default ``out/<spec stem>/``).

    Parameters
    ----------
    spec_or_path : Spec or path
        A parsed spec or the path of a TOML spec file.
    out_dir : path, optional
        The output folder; replaced as a whole when the build succeeds. It must be new, empty
        or an earlier report exactly as scaleinv wrote it (see
        :mod:`~scaleinv.reports.outdir`), so that no other files are lost; else the build
        stops at once with :class:`~scaleinv.errors.OutputFolderError`.
    pdf : bool
        Run LaTeX (when installed). Without TeX the .tex and the figures are still written
        and ``BuildResult.note`` says how to get the PDF.
    progress : callable, optional
        Called with one line per stage (derive, compile, run, verify, figures, LaTeX, PDF).

    Raises
    ------
    ScaleinvError
        For a bad spec, or a failing LaTeX run (:class:`~scaleinv.reports.pdf.LatexError`);
        the previous output folder is then left untouched.
    """
    started = time.monotonic()
    say = progress or (lambda line: None)
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(Path(spec_or_path))
    check_unit_table(spec.units, spec.source)  # a typo'd dimension: before any work
    indexed = isinstance(spec.problem, IndexedProblem)  # its stencils, at any n
    if not indexed:
        _check_size(spec)
    final = Path(out_dir) if out_dir is not None else default_out_dir(spec)
    with OutputFolder(final) as out:  # refuses a folder it may not replace before any work
        into = build_indexed_into if indexed else _build_into
        result = into(spec, out.work, final, pdf, say, out.lock_fds)
        out.commit()
    say(f"done     {final} ({time.monotonic() - started:.1f} s)")
    return _relocate(result, final, time.monotonic() - started)


def _check_size(spec: Spec) -> None:
    """Refuse, before any derivative is taken, a problem too big to report in useful time."""
    p, where = spec.expression_problem("this report"), spec.source or "spec"
    instead = "use `scaleinv run` or `scaleinv export` for it"
    size = max(p.n, p.m)
    if size > MAX_REPORT_INPUTS:
        raise ScaleinvError(
            f"{where}: a report's numeric checks factor dense n×n matrices, so it is limited to "
            f"{MAX_REPORT_INPUTS} inputs and outputs; this problem has {p.n} inputs and {p.m} "
            f"outputs ({instead})"
        )
    work = hessian_work(p, limit=MAX_REPORT_WORK)
    if work > MAX_REPORT_WORK:
        raise ScaleinvError(
            f"{where}: a report derives every structurally nonzero entry of J and H exactly, "
            f"so it is limited to {MAX_REPORT_WORK:,} chain-rule products for H (a dense "
            f"problem of about 36 inputs); this problem ({p.n} inputs, {p.m} outputs) needs "
            f"more than that ({instead})"
        )


def _build_into(
    spec: Spec, work: Path, final: Path, pdf: bool, say: Progress, lock_fds: tuple[int, ...]
) -> BuildResult:
    options = report_options(spec)
    problem = spec.expression_problem("this report")
    say(f"derive   J, gradient, Hessian, local inverse and Δx of {len(spec.rules)} rule(s)")
    derivation, runs = derive(spec)
    inverse = derivation.inverse
    if inverse is not None:
        branches = (
            "numeric (PG solves P(x) = y by path-following Gauss-Newton at every step)"
            if inverse.numeric
            else f"{len(inverse.branches)} closed-form branch(es)"
        )
        say(f"         local inverse: {branches}")
    say("compile  batched kernels of P, J, gradient, Hessian, loss and each rule's step")
    compile_problem(problem)
    say(f"run      {len(runs)} rule(s) x {len(spec.starts)} start(s), {spec.steps} steps")
    runs = run_rules(spec, runs)
    checks = ("units, " if spec.units else "") + f"{len(transforms_of(spec))} transform(s)"
    say(f"verify   {checks} and composition of {len(runs)} rule(s)")
    checked = spec_verdicts(spec, runs, progress=lambda line: say(f"         {line}"))
    verdicts = verdict_rows(spec, runs, checked)
    graph, composition_tex = composition_part(spec)
    claims = applicable_claims(spec)
    if claims:
        say(f"verify   claims ledger: {len(claims)} claim(s) of the chapter apply")
    verdicts += ledger_rows(spec, runs)
    say("figures  landscapes, trajectories, loss curves" + (", function graph" if graph else ""))
    figures_dir = work / "figures"
    figures_dir.mkdir()
    plots = make_figures(problem, runs, options, graph, units=dict(spec.units))
    files: list[Path] = []
    for plot in plots:
        files += save_plot(plot, figures_dir)
    study_part = ""
    if spec.study:
        say(f"study    many starts x {len(spec.rules)} rule(s) in the [study] region")
        study = run_study(spec)
        fig, caption = study_figure(study, axis_names(problem, dict(spec.units))[0])
        plots.append(Plot("study", fig, caption))
        files += save_plot(plots[-1], figures_dir)
        study_part = study_tex(study, spec, "fig:study")
    refs = [FigureRef(f"figures/{p.name}.pdf", p.caption) for p in plots]
    say("latex    report.tex")
    dims = _dimensions(spec)
    tex = work / "report.tex"
    extra = composition_tex + branch_selection_tex(spec, checked)
    formulas = Formulas(progress=say)
    text = render_document(
        spec,
        derivation,
        runs,
        verdicts,
        refs,
        dims,
        extra,
        formulas,
        study_part,
        start_tex(spec, checked),
    )
    tex.write_text(text, encoding="utf-8")
    if formulas.overflow:
        (work / APPENDIX_FILE).write_text(formulas.appendix_text(spec.title), encoding="utf-8")
        say(f"         {len(formulas.overflow)} long formula(s) written to {APPENDIX_FILE}")
    pdf_path, note = None, ""
    if pdf and tex_engine() is not None:
        say(f"pdf      {tex_engine()} -pdf report.tex")
        try:
            pdf_path = compile_pdf(tex, keep_fds=lock_fds)
        except LatexError as err:  # the log is removed with the building folder: do not cite it
            raise LatexError(final / tex.name, err.first_error, None) from None
    elif pdf:
        note = how_to_get_pdf(final)
        say(f"pdf      skipped: {note}")
    else:
        note = f"PDF not requested; run `latexmk -pdf report.tex` in {final}"
    return BuildResult(
        spec.title, work, tex, pdf_path, figures_dir, tuple(files), _results(spec, runs),
        tuple(verdicts), checked, note, 0.0,
        numeric_inverse_line(problem, [r.rule for r in runs]) or "",
    )  # fmt: skip


def _dimensions(spec: Spec) -> dict | None:
    if not spec.units:
        return None
    import sympy as sp

    problem = spec.expression_problem("this report")
    found = problem_dimensions(problem, dict(spec.units))
    dims: dict = {s: found.symbols[s] for s in (*problem.inputs, *problem.param_symbols)}
    dims.update(zip(problem.output_symbols, found.outputs))
    dims[sp.Symbol("L")] = found.loss
    return dims


def _results(spec: Spec, runs: tuple[RuleRun, ...]) -> tuple[ResultRow, ...]:
    rows = []
    for run in runs:
        t = run.trajectory
        if t is None:
            rows.append(ResultRow(run.label, (), 0, (), float("nan"), f"error: {run.run_error}"))
            continue
        for b, start in enumerate(spec.starts):
            status = Status(int(np.ravel(t.status)[b])).words
            start_x, final_x = tuple(map(float, start)), tuple(map(float, t.x[-1, b]))
            rows.append(
                ResultRow(run.label, start_x, t.steps, final_x, float(t.loss[-1, b]), status)
            )
    return tuple(rows)


def _relocate(result: BuildResult, final: Path, seconds: float) -> BuildResult:
    work = result.out_dir

    def moved(path: Path | None) -> Path | None:
        return None if path is None else final / path.relative_to(work)

    return BuildResult(
        result.title, final, final / "report.tex", moved(result.pdf), final / "figures",
        tuple(final / f.relative_to(work) for f in result.figures), result.results,
        result.verdicts, result.checks, result.note, seconds, result.inverse_note,
    )  # fmt: skip
