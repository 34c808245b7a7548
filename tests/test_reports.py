"""Reports: every shipped spec builds to a PDF whose text comes from the lower layers; failed
builds leave the previous report untouched; the ``report`` command prints where things are.

Each shipped spec is built once per session (two at a time, in worker processes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from catalogue import PROJECTILE, per_expression_diffusion, shipped_specs

from scaleinv import load_spec, minimize
from scaleinv.cli.exit_status import ExitCode
from scaleinv.cli.main import main
from scaleinv.errors import ScaleinvError
from scaleinv.numeric.rules import make_rule
from scaleinv.numeric.status import Status
from scaleinv.reports import build
from scaleinv.reports.content import ETA, FEW, symbolic_rule
from scaleinv.reports.formulas import decimal_numbers
from scaleinv.reports.latex import LINE_BUDGET, number, tex, visible_length
from scaleinv.reports.pdf import LatexError, compile_pdf, first_error

ROOT = Path(__file__).resolve().parents[1]
SPECS = shipped_specs()
#: Shipped specs whose report takes tens of seconds (diffusion.toml: 256 inputs): built once,
#: on first use, by the tests marked slow only.
LARGE = {"diffusion"}


def _stems(stems) -> list:
    return [pytest.param(s, marks=pytest.mark.slow) if s in LARGE else s for s in stems]


STEMS = _stems(s.stem for s in SPECS)
HAS_TEX = shutil.which("latexmk") is not None
needs_tex = pytest.mark.usefixtures("tex")  # skipped without TeX, failed in CI

TINY = """\
title = "A_b & c % $d$ #1 ~x^2 {y} \\\\ ½ → ∂ <tiny>"
description = "Symbols with underscores: k_spring, x_a; specials: 50% & $5 # ~ ^ _ { } |."

[problem]
inputs = ["x_a"]
outputs = ["k_spring*x_a**2"]
target = [4]

[params]
k_spring = 1

[run]
starts = [[3]]
steps = 4

[[rules]]
name = "gd"
eta = 0.01

[[rules]]
name = "newton"
eta = 0.5
label = "Newton, half step"
"""


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """``{stem: BuildResult}`` for every shipped spec and the projectile (built once, in
    parallel)."""
    out = tmp_path_factory.mktemp("reports")
    projectile = out / "projectile.toml"
    projectile.write_text(PROJECTILE, encoding="utf-8")
    small = [s for s in SPECS if s.stem not in LARGE]
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = {s.stem: pool.submit(build, s, out / s.stem, HAS_TEX) for s in small}
        futures["projectile"] = pool.submit(build, projectile, out / "projectile-out", HAS_TEX)
        return _Built(out, {stem: future.result() for stem, future in futures.items()})


class _Built(dict):
    """The session's reports by stem; a :data:`LARGE` one is built when first asked for."""

    def __init__(self, out: Path, found: dict) -> None:
        super().__init__(found)
        self.out = out

    def __missing__(self, stem: str):
        path = ROOT / "reports" / f"{stem}.toml"
        if stem == "diffusion":  # the shipped one is indexed: its 256-output twin
            path = self.out / "diffusion.toml"
            path.write_text(per_expression_diffusion(256), encoding="utf-8")
        self[stem] = build(path, self.out / stem, HAS_TEX)
        return self[stem]


@pytest.fixture()
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY, encoding="utf-8")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_the_shipped_specs_are_the_ones_the_issue_asks_for() -> None:
    assert {s.stem for s in SPECS} >= {
        "scaling", "comparison", "sensitivity", "composition", "units", "spring",
    }  # fmt: skip


@needs_tex
@pytest.mark.parametrize("stem", STEMS)
def test_every_shipped_spec_builds_a_pdf_that_renders(built, stem, tmp_path) -> None:
    result = built[stem]
    assert result.pdf is not None and result.pdf.read_bytes().startswith(b"%PDF")
    done = subprocess.run(
        ["pdftoppm", "-png", "-r", "20", str(result.pdf), str(tmp_path / "page")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 3
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 500 for p in pages)
    assert not list(result.out_dir.glob("*.aux"))  # auxiliary files are cleaned up


@pytest.mark.parametrize("stem", STEMS)
def test_every_figure_is_written_as_pdf_and_png(built, stem) -> None:
    result, spec = built[stem], load_spec(ROOT / "reports" / f"{stem}.toml")
    names = {f.stem for f in result.figures}
    expected = {"trajectories", "loss"} | ({"study"} if spec.study else set())
    expected |= {"profile", "sparsity"} if spec.problem.n > FEW else set()
    expected |= {"landscape"} if spec.report.get("alphas") else set()
    expected |= {"graph"} if spec.analysis.get("composition") else set()
    assert names == expected
    for name in names:
        for suffix in (".pdf", ".png"):
            path = result.figures_dir / f"{name}{suffix}"
            assert path.stat().st_size > 1000
            assert f"figures/{name}.pdf" in result.tex.read_text()


@pytest.mark.parametrize("stem", STEMS)
def test_tex_shows_what_the_symbolic_layer_derived(built, stem) -> None:
    source = built[stem].tex.read_text()
    spec = load_spec(ROOT / "reports" / f"{stem}.toml")
    p = spec.problem
    if p.n > FEW:  # representative entries: the first and a middle row of J and H
        exprs = [*_two_rows(p.sparse.jacobian), *_two_rows(p.sparse.hessian), *p.outputs[:8]]
        exprs = [decimal_numbers(e) for e in exprs]
    else:
        exprs = [*p.outputs, *p.jacobian, *p.gradient, *p.hessian]
        for rule_spec in spec.rules:
            rule = make_rule(rule_spec)
            if rule.symbolic:
                found = symbolic_rule(rule).delta(p)
                exprs += [e for d in (found if isinstance(found, tuple) else (found,)) for e in d]
        assert ETA in set().union(*(sp.sympify(e).free_symbols for e in exprs))
    short = [tex(e) for e in exprs if e != 0 and visible_length(tex(e)) <= LINE_BUDGET - 10]
    assert len(short) >= 4
    missing = [s for s in short if s not in source]
    assert missing == []


def _two_rows(entries: dict) -> list:
    """The entries of the first and the middle row of a sparse matrix, upper triangle."""
    rows = sorted({i for i, _ in entries})
    keep = {rows[0], rows[len(rows) // 2]}
    return [e for (i, j), e in sorted(entries.items()) if i in keep and i <= j]


@pytest.mark.parametrize("stem", STEMS)
def test_results_table_has_the_driver_numbers(built, stem) -> None:
    result = built[stem]
    tex = result.tex.read_text()
    spec = load_spec(ROOT / "reports" / f"{stem}.toml")
    x0 = np.array(spec.starts)
    for rule_spec, row in zip(spec.rules, result.results):
        t = minimize(spec.problem, make_rule(rule_spec), x0, spec.steps, spec.tol)
        assert row.final_loss == pytest.approx(float(t.loss[-1, 0]), rel=1e-9, abs=1e-300)
        assert f"${number(t.loss[-1, 0], 6)}$" in tex
        assert row.status == t.statuses()[0].words


def test_verdicts_match_the_chapter_on_the_scaling_toy(built) -> None:
    verdicts = {(v.check, v.subject.split()[0]): v.verdict for v in built["scaling"].verdicts}
    assert verdicts[("scale invariance", "GD")] == "refuted"
    for rule in ("Newton", "IG", "PG"):
        assert verdicts[("scale invariance", rule)] == "proved"
    assert any(check == "ledger" for check, _ in verdicts)


def test_units_verdicts_on_the_units_spec(built) -> None:
    units = {v.subject.split()[0]: v.verdict for v in built["units"].verdicts if v.check == "units"}
    assert units == {
        "GD": "inconsistent", "Newton": "consistent", "IG": "consistent", "PG": "consistent",
    }  # fmt: skip


def test_composition_spec_reports_the_intermediate_step(built) -> None:
    rows = {v.subject.split()[0]: v.verdict for v in built["composition"].verdicts
            if v.check == "composition"}  # fmt: skip
    assert rows["IG"] == "proved" and rows["PG"] == "proved" and rows["Newton"] == "refuted"
    assert "\\subsection{Composition}" in built["composition"].tex.read_text()


@needs_tex
def test_a_build_with_hostile_text_compiles(tiny, tmp_path) -> None:
    result = build(tiny, tmp_path / "out")
    assert result.pdf is not None and result.pdf.stat().st_size > 1000
    tex = result.tex.read_text()
    assert r"A\_b \& c \% \$d\$ \#1" in tex and "k_{spring}" in tex


def test_failure_after_files_were_written_keeps_the_previous_report(tiny, tmp_path, monkeypatch):
    out = tmp_path / "out"
    build(tiny, out, pdf=False)
    before = _snapshot(out)
    written: list[Path] = []

    def failing(spec, *args, **kwargs):
        written.extend((out.parent).glob(".out.building-*/figures/*"))
        raise ScaleinvError("injected failure while writing LaTeX")

    monkeypatch.setattr("scaleinv.reports.builder.render_document", failing)
    with pytest.raises(ScaleinvError, match="injected failure"):
        build(tiny, out, pdf=False)
    assert written  # the failure came after figures were written into the temporary folder
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.toml"]  # no leftovers


@needs_tex
def test_a_latex_error_names_the_first_error_and_keeps_the_previous_report(
    tiny, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    build(tiny, out)
    before = _snapshot(out)
    from scaleinv.reports import builder

    original = builder.render_document

    def broken(*args, **kwargs):
        return original(*args, **kwargs).replace(r"\section{Results}", r"\notacommand")

    monkeypatch.setattr(builder, "render_document", broken)
    with pytest.raises(LatexError, match="Undefined control sequence"):
        build(tiny, out)
    assert _snapshot(out) == before


def test_without_tex_the_tex_and_figures_are_written_with_instructions(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr("scaleinv.reports.builder.tex_engine", lambda: None)
    result = build(tiny, tmp_path / "out")
    assert result.pdf is None and result.tex.exists()
    assert "latexmk -pdf report.tex" in result.note and str(tmp_path / "out") in result.note
    assert not (tmp_path / "out" / "report.pdf").exists()


def test_progress_reports_every_stage(tiny, tmp_path) -> None:
    lines: list[str] = []
    build(tiny, tmp_path / "out", pdf=False, progress=lines.append)
    stages = [line.split()[0] for line in lines if not line.startswith(" ")]
    for stage in ("derive", "compile", "run", "verify", "figures", "latex", "done"):
        assert stage in stages


def test_report_command_prints_progress_and_a_summary(tiny, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["report", str(tiny), "--out", str(out), "--no-pdf"]) == 0
    captured = capsys.readouterr()
    assert "derive" in captured.err and "figures" in captured.err
    assert "report.tex" in captured.out and "figures" in captured.out
    assert "Newton, half step" in captured.out and Status.MAX_STEPS.words in captured.out
    assert "max_steps" not in captured.out  # statuses in words, as in the PDF and the study
    assert "verdicts" in captured.out


def test_default_output_folder_is_out_spec_stem(tiny, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = build(tiny, pdf=False)
    assert result.out_dir == tmp_path / "out" / "tiny"


def test_a_folder_of_other_files_is_never_replaced(tiny, tmp_path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(ScaleinvError, match="holds files scaleinv did not write"):
        build(tiny, folder, pdf=False)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_report_command_reports_a_bad_spec_in_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[problem]\ninputs = ["x"]\noutputs = ["x"]\n[report]\nalphas = [1, 2]\n')
    assert main(["report", str(bad), "--out", str(tmp_path / "o"), "--no-pdf"]) == 2
    assert "report.alphas" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_first_error_reads_a_latex_log() -> None:
    log = "This is pdfTeX\n(./report.tex\n! Missing $ inserted.\n<inserted text>\nl.42 x_1\n"
    assert first_error(log) == "Missing $ inserted. (l.42 x_1)"


@needs_tex
def test_compile_pdf_raises_with_the_log_line(tmp_path) -> None:
    tex = tmp_path / "broken.tex"
    tex.write_text("\\documentclass{article}\\begin{document}\\oops\\end{document}\n")
    with pytest.raises(LatexError, match=r"Undefined control sequence.*l\.1"):
        compile_pdf(tex)


# -- what a reader sees -------------------------------------------------------------------

#: Code where mathematics belongs: none of these may appear in a report's text.
CODE_TOKENS = (
    "**", "ˆ", "Interval", "Derivative(", "!=", "_PG", "_GD", "_QN", "_IG", "Piecewise(",
    "max_steps", "_star", "branch(es)", "sympy", "Eq(", "Contains(", "Abs(", "sqrt(",
    # a transform, a matrix, a subscript or a minus written as code, not as mathematics
    "s_0", "s_1", "L_yy", "L yy", "->", "[[", "∂L/∂x_i", "x_i", "x_{", "_CapHit", " - ",
)  # fmt: skip
READERS = [s.stem for s in SPECS if s.stem not in LARGE] + ["projectile"]


def _pages(pdf: Path) -> list[str]:
    done = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout.split("\f")[:-1]


@needs_tex
@pytest.mark.parametrize("stem", _stems([*READERS, *LARGE]))
def test_every_page_reads_as_mathematics_not_code(built, stem) -> None:
    pages = _pages(built[stem].pdf)
    info = subprocess.run(["pdfinfo", str(built[stem].pdf)], capture_output=True, text=True)
    assert f"Pages:           {len(pages)}" in info.stdout
    for number_, page in enumerate(pages, 1):
        for token in CODE_TOKENS:
            at = page.find(token)
            assert at < 0, (stem, number_, token, page[max(at - 60, 0) : at + 60])


@needs_tex
def test_the_users_problem_comes_first_and_the_chapter_in_an_appendix(built) -> None:
    for stem in READERS:
        text = "".join(_pages(built[stem].pdf))
        own = text.find("Verdicts about this problem")
        assert 0 < own < text.find("Results"), stem
        appendix = text.find("The chapter’s own examples")
        if any(v.check == "ledger" for v in built[stem].verdicts):
            assert appendix > text.find("Figures") > own, stem
        else:
            assert appendix < 0, stem


@needs_tex
def test_the_target_is_the_minimiser_of_the_specs_loss(built) -> None:
    composition = " ".join("".join(_pages(built["composition"].pdf)).split())
    assert re.search(r"smallest at the target y ?∗ = z ?∗ = 16", composition), composition[:2000]
    projectile = " ".join("".join(_pages(built["projectile"].pdf)).split())
    assert re.search(r"y\s*∗\s*=\s*\(R\s*∗\s*,\s*T\s*∗\s*\)\s*=\s*\(40,\s*2\.5\)", projectile)
    assert "y ∗ = [0" not in projectile and "y∗ = [0" not in projectile


def test_counterexamples_use_the_specs_params_and_step_size(built) -> None:
    rows = [v for v in built["projectile"].verdicts if v.check == "scale invariance"]
    shown = [v for v in rows if "e.g." in v.detail]  # the rows with a counterexample
    assert shown, [v.detail for v in rows]
    for v in shown:
        assert "g = 9.81" in v.detail and "R^{*} = 40" in v.detail and "T^{*} = 2.5" in v.detail
        eta = {"GD": "0.001", "Newton": "0.5", "PG": "0.5"}[v.subject.split()[0]]
        if "\\eta =" in v.detail:  # a symbolic step size is searched at the rule's value
            assert f"\\eta = {eta}" in v.detail


def test_an_identity_transform_is_trivial_not_a_refutation(built) -> None:
    rows = [v for v in built["sensitivity"].verdicts if v.check == "scale invariance"]
    assert rows and {v.verdict for v in rows} == {"trivial"}
    assert all("identity" in v.detail for v in rows)
    gd = next(v for v in rows if v.subject.startswith("GD"))
    assert "For general values: refuted" in gd.detail


@needs_tex
def test_long_formulas_stay_readable_and_go_to_the_appendix_file(built) -> None:
    from scaleinv.reports.content import symbolic_rule as symbolic
    from scaleinv.reports.formulas import APPENDIX_FILE, MAX_LINE, MAX_LINES
    from scaleinv.symbolic.parsing import parse_expr

    result = built["projectile"]
    source = result.tex.read_text()
    for block in re.findall(r"\\begin\{aligned\}\n(.*?)\n\\end\{aligned\}", source, re.S):
        lines = block.split(" \\\\\n")
        assert len(lines) <= MAX_LINES
        assert all(visible_length(line) <= MAX_LINE for line in lines), block[:200]
    # Newton's Δx is too long for the page: it is in derivations.txt, and reads back exactly
    text = (result.out_dir / APPENDIX_FILE).read_text()
    spec = load_spec_text(PROJECTILE)
    p = spec.problem
    newton = symbolic(make_rule(spec.rules[1])).delta(p)
    names = {str(s): s for s in (*p.inputs, *p.params)} | {"eta": ETA}
    at = {**dict(zip(p.inputs, (17.0, 0.6))), **p.params, ETA: 0.5}
    for x, expected in zip(p.inputs, newton):
        head = f"Newton (η=0.5): Delta x: \\Delta {tex(x)} =\n"
        assert head in text
        printed = parse_expr(text.split(head)[1].split("\n")[0], names)
        assert float(printed.subs(at)) == pytest.approx(float(expected.subs(at)), rel=1e-10)


def load_spec_text(text: str):
    from scaleinv.symbolic.spec import parse_spec

    return parse_spec(tomllib.loads(text), source="projectile.toml")


@needs_tex
def test_a_build_shows_its_pages_in_a_notebook(built) -> None:
    html = built["comparison"]._repr_html_()
    pages = built["comparison"].pages(dpi=20)
    assert len(pages) >= 3 and all(p.startswith(b"\x89PNG") for p in pages)
    assert html.count("data:image/png;base64,") == len(built["comparison"].pages())


def _diffusion(n: int) -> str:
    """One explicit nonlinear diffusion step on a periodic grid of ``n`` points."""
    outputs = [
        f"x{i} + (x{(i + 1) % n} - 2*x{i} + x{(i - 1) % n})/10 + x{i}**3/20" for i in range(n)
    ]
    names = ", ".join(f'"x{i}"' for i in range(n))
    target = ", ".join(str(round(0.5 + 0.2 * np.sin(2 * np.pi * i / n), 3)) for i in range(n))
    return (
        f'title = "Diffusion step, n = {n}"\n[problem]\ninputs = [{names}]\n'
        f"outputs = [{', '.join(repr(o).replace(chr(39), chr(34)) for o in outputs)}]\n"
        f"target = [{target}]\n[run]\nstarts = [[{', '.join(['0.5'] * n)}]]\nsteps = 5\n"
        '[[rules]]\nname = "gd"\neta = 0.5\n[[rules]]\nname = "newton"\neta = 1\n'
        "[analysis]\nbudget = 200_000\n"
    )


def test_a_mid_size_problem_is_summarised_with_its_sparsity(tmp_path) -> None:
    from scaleinv.reports.structure import sparsity_of

    path = tmp_path / "diffusion.toml"
    path.write_text(_diffusion(12), encoding="utf-8")
    result = build(path, tmp_path / "out", pdf=False)
    source = result.tex.read_text()
    assert "(The nonzero entries of the first and a middle row: 6 of 36.)" in source  # J
    assert "sparse" in source and "fig:sparsity" in source
    assert "Not expanded at this size ($n$ = 12)" in source  # Newton: the structure only
    assert {f.stem for f in result.figures} >= {"sparsity", "profile", "trajectories", "loss"}
    # the pattern is the one of the dense derivatives, checked at a random point
    p = load_spec(path).problem
    s = sparsity_of(p)
    x = np.random.default_rng(1).uniform(0.2, 1.0, size=p.n)
    jac, hess = p.compile().jacobian(x), p.compile().hessian(x)
    assert set(s.jacobian) == {tuple(ij) for ij in np.argwhere(jac != 0)}
    assert set(s.hessian) == {tuple(ij) for ij in np.argwhere(hess != 0)}


# -- a problem with 256 inputs: summarised, not printed in full -------------------------------
@needs_tex
@pytest.mark.slow
def test_the_diffusion_report_summarises_what_256_inputs_would_print_in_full(built) -> None:
    result = built["diffusion"]
    pages = _pages(result.pdf)
    text = " ".join("".join(pages).split())
    assert len(pages) <= 10 and len(text) < 16_000  # no page-long walls of symbols
    # the sparsity pattern is a figure, the derivations name their structure
    assert re.search(r"Figure \d+: Sparsity pattern of the Jacobian and the Hessian", text)
    assert "J has 768 nonzero entries of 65536, H has 1280 of 65536" in text
    assert "The nonzero entries of the first and a middle row" in text
    source = result.tex.read_text()
    assert r"\nabla^2 \mathcal{P}_k" in source and "figures/sparsity.pdf" in source
    # verdict text: vectors and scale families summarised, never listed entry by entry
    assert "(256 entries)" in text and "(256 inputs)" in text
    assert not re.search(r"s_?\{?1[0-9]{2}\}?\s*=", text)  # no s100 = … in a detail
    assert not re.search(r"u_?\{?2[0-9]\}?\s*=", text)  # a counterexample is a vector
    assert len(re.findall(r"\bx\s?\d{2,3}\b", text)) < 40
    # the verdicts decidable at this size: units (by structure) and scaling (by theorems)
    units = {v.subject.split()[0]: v.verdict for v in result.verdicts if v.check == "units"}
    assert units == {"GD": "consistent", "Newton": "consistent", "IG": "consistent"}
    assert "By the structure of the update" in text and "temperature" in text
    scaling = {
        v.subject.split()[0]: v.verdict for v in result.verdicts if v.check == "scale invariance"
    }
    assert scaling == {"GD": "refuted", "Newton": "proved", "IG": "proved"}
    assert "theorem newton-input-linear" in text and "Numeric twin" in text
    assert text.find("Verdicts about this problem") < text.find("Results") < text.find("Figures")


@needs_tex
@pytest.mark.slow
def test_the_diffusion_summary_and_verdict_lines_stay_short(built) -> None:
    from scaleinv.cli.report import summary

    result = built["diffusion"]
    lines = summary(result).splitlines()
    assert max(len(line) for line in lines if str(result.out_dir) not in line) <= 100
    assert any("diag(s_0, s_1, s_2, …, s_253, s_254, s_255)" in line for line in lines)
    for row in result.verdicts:
        assert row._repr_markdown_().count("=") < 40  # Markdown: summarised like the PDF


def test_run_prints_a_summary_of_a_large_problem_and_small_ones_in_full(tmp_path, capsys) -> None:
    from scaleinv.reports.text import format_ends

    path = tmp_path / "diffusion.toml"
    path.write_text(per_expression_diffusion(256), encoding="utf-8")
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "256 inputs, 256 outputs; 1 start(s):" in out
    assert "(0, 0, 0, …, 0, 0, 0) [256 entries; all 0]" in out
    assert "final x (first and last 3 of 256 entries):" in out
    spec = load_spec(path)
    for rule_spec in spec.rules:  # every number printed is the driver's
        t = minimize(
            spec.problem, make_rule(rule_spec), np.array(spec.starts), spec.steps, spec.tol
        )
        final = t.x[-1, 0]
        label = make_rule(rule_spec).label
        row = next(line for line in lines if re.match(rf"{label}\s+{t.steps}\s", line))
        assert f"{float(t.loss[-1, 0]):.6g}" in row
        assert f"{np.linalg.norm(final):.4g}" in row
        low, high = int(np.argmin(final)), int(np.argmax(final))
        assert f"(x{low})" in row and f"(x{high})" in row
        assert f"  {format_ends(final)}" in out
    small = ROOT / "reports" / "comparison.toml"
    assert main(["run", str(small)]) == 0
    out = capsys.readouterr().out
    assert "final x" in out.splitlines()[2] and "first and last" not in out


@pytest.mark.parametrize("m", [3, 14])  # exact eigenvalues, then floating-point ones
def test_the_minimiser_of_a_coupled_loss_is_checked_for_a_minimum(m) -> None:
    """∂²L/∂y² of a coupled loss is positive definite for a chain of squared differences plus
    a small diagonal, indefinite with a strongly negative first term: the check says which
    (numeric twin: NumPy's eigenvalues of the same matrix, evaluated independently)."""
    from scaleinv.reports.structure import loss_minimiser
    from scaleinv.symbolic import Problem

    names = [f"x{i}" for i in range(m)]
    chain = " + ".join(f"(y{i} - y{i + 1})**2" for i in range(m - 1))
    for first, minimum in (("y0**2/10", True), ("-3*y0**2", False)):
        loss = f"{chain} + {first} + " + " + ".join(f"y{i}**2/10" for i in range(1, m))
        p = Problem.from_strings(names, names, loss=loss)
        hess = sp.hessian(p.loss, p.output_symbols)
        eigen = np.linalg.eigvalsh(np.array(hess, dtype=float))
        assert bool(eigen.min() > 0) == minimum
        found = loss_minimiser(p)
        if minimum:
            assert found.point is not None and all(v == 0 for v in found.point)
        else:
            assert found.point is None and "not a minimum" in found.note


@pytest.mark.slow
def test_report_and_verify_read_the_same_verdicts_at_the_named_point(built, monkeypatch) -> None:
    """One source of verdicts (spring.toml): the report's verdict objects are the ones
    ``scaleinv verify`` prints, the report's rows show them, and the PDF names the point."""
    from scaleinv.reports import verdict_text  # `verify` imports text_rows when it runs

    printed = []
    real = verdict_text.text_rows

    def spy(checks):
        printed.append(checks)
        return real(checks)

    monkeypatch.setattr(verdict_text, "text_rows", spy)
    # PG's composition on spring is undecided (sqrt(1/k)² against Abs): exit 3, none failed
    assert main(["verify", str(ROOT / "reports" / "spring.toml")]) == ExitCode.UNDECIDED
    checks = built["spring"].checks
    assert real(printed[0]) == real(checks)  # same verdicts, same wording
    assert (printed[0].start, printed[0].params, printed[0].budget) == (
        checks.start,
        checks.params,
        checks.budget,
    )
    shown = {(v.subject, v.check, v.aspect): v.verdict for v in built["spring"].verdicts}
    for v in checks.rows:
        if v.check != "nearest branch":  # a paragraph of its own
            assert shown[(v.label, v.check, v.aspect)] == v.verdict
    gd = next(v for v in checks.rows if v.rule == "gd" and v.check == "scale invariance")
    assert gd.verdict == "refuted", gd.reason  # not "not checked": the start is finite
    ce = gd.report.counterexample
    x = [ce.point["u0"] * ce.params["s_0"], ce.point["u1"] * ce.params["s_1"]]
    assert x == pytest.approx([10, 0.5]) and dict(checks.start) == {"k": 10.0, "v0": 0.5}
    assert "| GD (η=0.3) | scale invariance:" in checks._repr_markdown_()  # the notebook's view
    if HAS_TEX:
        text = " ".join("".join(_pages(built["spring"].pdf)).split())
        assert re.search(r"sought first at the spec’s start \(k, v0 ?\) = \(10, 0\.5\)", text)
        assert "not finite" not in text
