"""The problem zoo (``reports/zoo/*.toml``): every command on every textbook problem, checked by
properties that must hold, not by snapshots of outputs.

Each problem's study and report (derive, run, verify, study, figures and the PDF; its verdicts
are the objects ``scaleinv verify`` prints) are made once per session, two problems at a time
in worker processes (:func:`prepared`), which then run ``derive`` and the local inverse's round
trip on the problem the report derived; the commands ``run``, ``study``, ``verify`` and
``export`` print or write from them. Per problem:

* derive: the exact Jacobian, gradient and Hessian equal finite differences of ``P`` and ``L``
  at random points of the study region; where the local inverse has a closed form, the round
  trip ``P(P⁻¹(y; x0)) = y`` holds and picks the solution nearest to ``x0``;
* run: PG reaches the target's loss from the spec's start;
* study: the target is reachable (the best run ends at loss 0), and every run PG counts as
  converged ends there;
* verify: no check the chapter says holds (units and scale invariance of Newton, IG and PG,
  composition of IG and PG) fails (the report's verdicts are the objects ``scaleinv verify``
  prints);
* report: the PDF is built and has pages;
* export: the NumPy, JAX and PyTorch modules ``scaleinv export`` writes, imported from their
  files, equal scaleinv's own kernels and rule steps at random points.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import multiprocessing
import sys
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from catalogue import finite_difference
from conftest import optional_module, require_program

from scaleinv import load_spec, rules
from scaleinv.cli import derive as derive_cmd
from scaleinv.cli import export as export_cmd
from scaleinv.cli import main as scaleinv_cli
from scaleinv.cli import run as run_cmd
from scaleinv.cli import study as study_cmd
from scaleinv.cli import verify as verify_cmd
from scaleinv.errors import NumericInverseWarning
from scaleinv.numeric import Status
from scaleinv.numeric.inverse import numeric_inverse_note
from scaleinv.numeric.rules import make_rule
from scaleinv.reports import builder
from scaleinv.reports import spec_verdicts as spec_verdicts_module
from scaleinv.reports import study as study_module
from scaleinv.reports.builder import BuildResult
from scaleinv.reports.content import FEW
from scaleinv.reports.spec_verdicts import SpecVerdict
from scaleinv.reports.study import Study, run_study
from scaleinv.symbolic import Spec

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "reports" / "zoo"
SPECS = sorted(ZOO.glob("*.toml"))
#: A loss at most this is the target's loss (every zoo target is reachable, so that is 0).
AT_TARGET = 1e-12

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class RoundTrip:
    """``P(P⁻¹(y; x0))`` at ``y = P(x)``, ``x0`` near regular points ``x`` of the region."""

    x: np.ndarray
    x0: np.ndarray
    y: np.ndarray
    found: np.ndarray  # P⁻¹(y; x0)
    ok: np.ndarray
    p_found: np.ndarray  # P(P⁻¹(y; x0))
    numeric: bool


@dataclass(frozen=True)
class Case:
    """One zoo problem with what is built once per session: its report, study and checks, what
    ``scaleinv derive`` printed (status, text) and the local inverse's round trip."""

    spec: Spec
    report: BuildResult
    study: Study
    derived: tuple[int, str]
    round_trip: RoundTrip

    @property
    def checks(self) -> tuple[SpecVerdict, ...]:
        """The report's verdicts: the objects ``scaleinv verify SPEC`` prints."""
        return self.report.checks.rows

    @property
    def stem(self) -> str:
        return Path(self.spec.source).stem


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


def _prepare(path: Path, out: Path) -> tuple[BuildResult, Study, tuple[int, str], RoundTrip]:
    """Study and report one problem (with the PDF; the report's study section is this study,
    its verdicts those of ``scaleinv verify``), then run ``scaleinv derive`` and the local
    inverse's round trip on the same problem, whose derivations the report made (each command
    would derive them again in a process of its own)."""
    spec = load_spec(path)
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("ignore", NumericInverseWarning)  # outputs say so themselves
        study = run_study(spec)
        patch.setattr(builder, "run_study", lambda _: study)
        report = builder.build(spec, out)
        patch.setattr(derive_cmd, "load_spec", lambda _: spec)
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            status = scaleinv_cli.main(["derive", str(path)])
        return report, study, (status, text.getvalue()), _round_trip(spec)


def _round_trip(spec: Spec) -> RoundTrip:
    problem = spec.problem
    kernels = problem.compile()
    x = _regular(kernels, _points(spec, 12, seed=1))
    low, high = np.array(spec.study["region"], dtype=float).T
    x0 = x + 1e-3 * (high - low) * np.random.default_rng(2).uniform(-1, 1, x.shape)
    y = kernels.P(x)
    inverse = problem.local_inverse()
    solution = inverse.compile().solve(y, x0)
    found = solution.x
    return RoundTrip(x, x0, y, found, solution.ok, kernels.P(found), inverse.numeric)


@pytest.fixture(scope="session")
def prepared(request: pytest.FixtureRequest, zoo_dir: Path) -> dict[Path, Future]:
    """Every selected zoo problem prepared in the background, two at a time (the CI machine
    has two cores); each problem's tests wait for their own problem only."""
    require_program("latexmk")
    selected = dict.fromkeys(
        item.callspec.params["zoo"]
        for item in request.session.items
        if "zoo" in getattr(getattr(item, "callspec", None), "params", {})
    )
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    request.addfinalizer(lambda: pool.shutdown(cancel_futures=True))
    return {path: pool.submit(_prepare, path, zoo_dir / path.stem) for path in selected}


@pytest.fixture(scope="module", params=SPECS, ids=lambda p: p.stem)
def zoo(request: pytest.FixtureRequest, prepared: dict[Path, Future]) -> Case:
    """One problem: loaded here, its report and study from :func:`prepared`."""
    return Case(load_spec(request.param), *prepared[request.param].result())


def test_the_zoo_has_at_least_25_problems() -> None:
    assert len(SPECS) >= 25


def _points(spec: Spec, size: int, seed: int = 0) -> np.ndarray:
    """Random points of the study region, away from its edges."""
    low, high = np.array(spec.study["region"], dtype=float).T
    rng = np.random.default_rng(seed)
    return low + (high - low) * rng.uniform(0.1, 0.9, (size, len(low)))


def _regular(kernels: Any, x: np.ndarray, limit: float = 1e6) -> np.ndarray:
    """The points among ``x`` where the Jacobian is well conditioned, measured in relative
    terms (∂ log y/∂ log x), so that the inputs' units do not matter (Arrhenius in SI: A ~ 1e10
    and E_a ~ 5e4 made J's plain condition number above 1e6 everywhere)."""
    y = kernels.P(x)
    relative = kernels.jacobian(x) * np.abs(x)[:, None, :] / (np.abs(y)[:, :, None] + 1e-300)
    return x[np.linalg.cond(relative) < limit]


# -- derive: numeric twins of the exact derivatives and of the local inverse ------------------


def test_derivatives_equal_finite_differences(zoo: Case) -> None:
    """J, ∇L and H against central differences of P, L and ∇L (steps scaled to the region)."""
    kernels = zoo.spec.problem.compile()
    low, high = np.array(zoo.spec.study["region"], dtype=float).T
    h = 1e-5 * (high - low)
    for x in _points(zoo.spec, 6):
        for exact, of in [("jacobian", "P"), ("gradient", "loss"), ("hessian", "gradient")]:
            want = finite_difference(getattr(kernels, of), x, h)
            got = getattr(kernels, exact)(x)
            atol = 1e-7 * np.abs(want).max() + 1e-300
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol, err_msg=exact)


def test_local_inverse_round_trip(zoo: Case) -> None:
    """``P(P⁻¹(y; x0)) = y`` at ``y = P(x)``, ``x0`` near ``x``; the closed form (nearest
    branch) returns ``x`` itself (computed by :func:`_round_trip` with the report's inverse)."""
    trip = zoo.round_trip
    assert len(trip.x), "no regular point in the study region"
    assert trip.ok.all(), f"no inverse found at {trip.x[~trip.ok]}"
    scale = np.abs(trip.y).max(axis=-1, keepdims=True) + 1e-300
    np.testing.assert_allclose(trip.p_found / scale, trip.y / scale, atol=1e-9)
    # a second evaluation path for P(P⁻¹(y)): this process's own kernels
    np.testing.assert_allclose(zoo.spec.problem.compile().P(trip.found), trip.p_found, rtol=1e-12)
    low, high = np.array(zoo.spec.study["region"], dtype=float).T
    if not trip.numeric:  # the nearest branch: x itself, to the region's resolution
        assert np.all(np.abs(trip.found - trip.x) <= 1e-7 * (high - low)), (trip.found, trip.x)


@pytest.fixture
def cli(zoo: Case, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The command line on the zoo problem as already derived, studied and verified: the
    commands print what the session computed once (their own computation is the same call)."""
    for module in (run_cmd, derive_cmd, export_cmd, study_cmd, verify_cmd):
        monkeypatch.setattr(module, "load_spec", lambda path: zoo.spec)
    monkeypatch.setattr(study_module, "run_study", lambda spec, starts=None, engine=None: zoo.study)
    # `verify` imports spec_verdicts when it runs: patched in its own module
    monkeypatch.setattr(spec_verdicts_module, "spec_verdicts", lambda spec, **_: zoo.report.checks)
    return scaleinv_cli.main


def test_cli_derive_prints_every_rule(zoo: Case) -> None:
    """What ``scaleinv derive`` printed (:func:`_prepare`)."""
    status, out = zoo.derived
    assert status == 0
    if zoo.spec.problem.n <= FEW:  # past FEW inputs derive prints a summary (cli_large)
        assert "local inverse" in out
    else:
        assert "only representative entries are printed" in out
    for rule_spec in zoo.spec.rules:
        assert f"{make_rule(rule_spec).label} update" in out


def test_cli_run_study_and_verify(zoo: Case, cli: Any, capsys: pytest.CaptureFixture) -> None:
    """``run``, ``study`` and ``verify`` print their tables; verify's exit status says what its
    checks found (1 only when one the chapter says holds fails)."""
    assert cli(["run", zoo.spec.source]) == 0
    out = capsys.readouterr().out
    assert all(make_rule(r).label in out for r in zoo.spec.rules)
    assert cli(["study", zoo.spec.source]) == 0
    assert "PG" in capsys.readouterr().out
    undecided = any(c.undecided for c in zoo.checks)
    failed = any(c.failed for c in zoo.checks)
    assert cli(["verify", zoo.spec.source]) == (1 if failed else 3 if undecided else 0)
    assert zoo.spec.title in capsys.readouterr().out


# -- run and study ------------------------------------------------------------------------------


def test_pg_reaches_the_target_from_the_start(zoo: Case) -> None:
    (pg,) = [r for r in zoo.report.results if r.rule.startswith("PG")]
    assert pg.final_loss <= AT_TARGET, f"PG ended at loss {pg.final_loss:g}: {pg.status}"


def test_the_study_reaches_the_target_and_pg_converges_only_there(zoo: Case) -> None:
    study = zoo.study
    losses = np.array([m.loss for m in study.minima] or [np.inf])
    assert losses.min() <= AT_TARGET, f"no run reached the target (best loss {losses.min():g})"
    (pg,) = [r for r in study.rules if r.label.startswith("PG")]
    reached = np.unique(pg.outcome[pg.outcome >= 0])
    assert np.mean(pg.outcome >= 0) > 0.5, (
        f"PG reached a minimum from {np.mean(pg.outcome >= 0):.0%}"
    )
    assert all(losses[k] <= AT_TARGET for k in reached), [losses[k] for k in reached]
    # the study's loss of each minimum is the loss at its point (a second evaluation)
    kernels = zoo.spec.problem.compile()
    points = np.array([m.point for m in study.minima])
    np.testing.assert_allclose(kernels.loss(points), losses, rtol=1e-9, atol=1e-300)


# -- verify and report --------------------------------------------------------------------------


def test_checks_the_chapter_says_hold_do_hold(zoo: Case) -> None:
    """Units, scale invariance (Newton, IG, PG) and composition (IG, PG): none fails, and the
    scale checks are decided (proved), not left open."""
    failed = [(c.label, c.check, c.verdict, c.reason) for c in zoo.checks if c.failed]
    assert not failed
    for rule in ("newton", "ig", "pg"):
        scale = [c for c in zoo.checks if c.rule == rule and c.check == "scale invariance"]
        assert scale and all(c.holds for c in scale), [(c.verdict, c.reason) for c in scale]


def test_report_has_a_pdf(zoo: Case) -> None:
    require_program("pdftoppm")
    assert zoo.report.pdf is not None and zoo.report.pdf.stat().st_size > 0
    assert len(zoo.report.pages(dpi=10)) >= 2


# -- export: three flavours, imported from their files ---------------------------------------


def _import(path: Path) -> ModuleType:
    """The module of a file (an exported one, or the grid generator), registered under a name
    of its own (dataclasses look their module up)."""
    name = f"zoo_{path.stem}"
    found = importlib.util.spec_from_file_location(name, path)
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module
    found.loader.exec_module(module)
    return module


def _convert(flavor: str) -> Any:
    if flavor == "numpy":
        return np.asarray
    if flavor == "jax":
        jax = optional_module("jax", "jax")
        jax.config.update("jax_enable_x64", True)
        return jax.numpy.asarray
    return optional_module("torch", "torch").as_tensor


@pytest.mark.parametrize("flavor", ["numpy", "jax", "torch"])
def test_exported_module_equals_scaleinv_kernels(
    zoo: Case, cli: Any, flavor: str, zoo_dir: Path
) -> None:
    convert = _convert(flavor)
    spec, problem = zoo.spec, zoo.spec.problem
    path = zoo_dir / f"{zoo.stem}_{flavor}.py"
    assert cli(["export", spec.source, "--to", str(path), "--flavor", flavor]) == 0
    module = _import(path)
    kernels = problem.compile()
    x = _points(spec, 8, seed=3)
    for name in ("P", "jacobian", "gradient", "hessian", "loss"):
        got = np.asarray(getattr(module, name)(convert(x)))
        np.testing.assert_allclose(got, getattr(kernels, name)(x), rtol=1e-11, atol=1e-12,
                                   err_msg=name)  # fmt: skip
    numeric_pg = numeric_inverse_note(problem, rules.pg()) is not None
    for rule_spec in spec.rules:
        rule = make_rule(rule_spec)
        if flavor != "numpy" and rule.name == "pg" and numeric_pg:
            assert rule.step_name not in module.__all__  # NumPy only, and the module says why
            assert f"Not exported: {rule.step_name}" in path.read_text()
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericInverseWarning)
            want_dx, _, want_status = rule.compile(problem).step(x, None)
        dx, status = getattr(module, rule.step_name)(convert(x))
        np.testing.assert_array_equal(np.asarray(status), want_status, err_msg=rule.name)
        ok = np.asarray(want_status) == Status.RUNNING
        np.testing.assert_allclose(np.asarray(dx)[ok], want_dx[ok], rtol=1e-9, atol=1e-12,
                                   err_msg=rule.name)  # fmt: skip


# -- the generated grid problems ---------------------------------------------------------------


def _make_grids() -> ModuleType:
    return _import(ZOO / "make_grids.py")


@pytest.mark.parametrize("grid", _make_grids().GRIDS, ids=lambda g: g.stem)
def test_grid_specs_are_what_the_script_writes(grid: Any) -> None:
    """Committed specs are the generator's output, and their target is one step of x*."""
    make = _make_grids()
    path = ZOO / f"{grid.stem}.toml"
    assert path.read_text(encoding="utf-8") == make.spec_text(grid)
    spec, n = load_spec(path), grid.n
    x_star = np.array([grid.state(i, n) for i in range(n)])
    target = np.array([float(t) for t in spec.problem.target])
    np.testing.assert_allclose(spec.problem.compile().P(x_star), target, rtol=1e-13)
