"""The streaming driver: record modes against the full history, against the previous driver
(written out below as a plain loop), its memory, its memory error and its progress bar."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
from catalogue import CATALOGUE, sample_points

from scaleinv import Problem, Status, minimize, rules
from scaleinv.errors import MemoryLimitError, ProblemError
from scaleinv.numeric import progress
from scaleinv.numeric.driver import _working_floats
from scaleinv.numeric.progress import ProgressBar

RULES = [
    rules.gd(0.05),
    rules.newton(0.7),
    rules.ig(0.5),
    rules.pg(0.5),
    rules.pg(0.5, fallback="ig"),
    rules.hig(0.5),
]
NAMES = ["comparison", "scaling_toy", "coupled", "trig", "cubic_exp"]


def reference_minimize(problem, rule, x0, steps, tol=None):
    """The driver as it was before streaming: full history, np.where over the whole batch."""
    kernels = problem.compile()
    compiled = rule.compile(problem)
    xs = np.empty((steps + 1,) + x0.shape)
    xs[0] = x0
    status = np.full(x0.shape[:-1], Status.RUNNING, dtype=np.int8)
    state = compiled.init(x0, steps)
    for k in range(steps):
        x = xs[k]
        if tol is not None:
            small = np.linalg.norm(kernels.gradient(x), axis=-1) <= tol
            status = np.where((status == Status.RUNNING) & small, Status.CONVERGED, status)
        dx, state, step_status = compiled.step(x, state)
        running = status == Status.RUNNING
        status = np.where(running & (step_status != Status.RUNNING), step_status, status)
        moving = status == Status.RUNNING
        with np.errstate(all="ignore"):
            x_new = np.where(moving[..., None], x + dx, x)
            loss_new = kernels.loss(x_new)
        bad = moving & (~np.isfinite(x_new).all(axis=-1) | ~(np.abs(loss_new) < 1e150))
        status = np.where(bad, Status.DIVERGED, status).astype(np.int8)
        xs[k + 1] = np.where(bad[..., None], x, x_new)
    if tol is not None:
        small = np.linalg.norm(kernels.gradient(xs[-1]), axis=-1) <= tol
        status = np.where((status == Status.RUNNING) & small, Status.CONVERGED, status)
    status = np.where(status == Status.RUNNING, Status.MAX_STEPS, status).astype(np.int8)
    with np.errstate(all="ignore"):
        return xs, kernels.P(xs), kernels.loss(xs), status


def starts(name: str) -> np.ndarray:
    """Regular points, points far out (GD diverges there) and points where J or H is
    singular (x = 0), so every status appears somewhere in the catalogue."""
    problem = CATALOGUE[name]
    regular = sample_points(name, np.random.default_rng(3), 12)
    far = np.full((2, problem.n), 40.0) * [[1.0], [-1.0]]
    return np.concatenate([regular, far, np.zeros((1, problem.n))])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.name}-{getattr(r, 'fallback', '')}")
def test_statuses_and_trajectories_match_the_previous_driver(name, rule) -> None:
    problem, x0 = CATALOGUE[name], starts(name)
    tol = 1e-6 if rule.name == "newton" else None
    want_x, want_y, want_loss, want_status = reference_minimize(problem, rule, x0, 25, tol)
    t = minimize(problem, rule, x0, 25, tol, record="all")
    np.testing.assert_array_equal(t.status, want_status)
    np.testing.assert_allclose(t.x, want_x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(t.y, want_y, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(t.loss, want_loss, rtol=1e-9, atol=1e-12)


def test_the_catalogue_runs_show_every_status() -> None:
    seen = set()
    for name in NAMES:
        for rule in RULES:
            tol = 1e-6 if rule.name == "newton" else None
            seen.update(minimize(CATALOGUE[name], rule, starts(name), 25, tol).statuses())
    # NOT_FOUND needs the numeric local inverse: tests/test_pathsolve.py shows it
    assert seen == set(Status) - {Status.RUNNING, Status.NOT_FOUND}


@pytest.mark.parametrize("record", ["ends", "last", "every:1", "every:4", "every:7", "every:99"])
@pytest.mark.parametrize("rule", [*RULES, rules.bfgs()], ids=lambda r: r.name)
def test_every_record_mode_keeps_exactly_the_rows_of_the_full_history(record, rule) -> None:
    problem = CATALOGUE["coupled"]
    x0 = starts("coupled")[::3] if rule.name == "bfgs" else starts("coupled")
    tol = 1e-8 if rule.name in ("newton", "bfgs") else None
    full = minimize(problem, rule, x0, 20, tol, record="all")
    part = minimize(problem, rule, x0, 20, tol, record=record)
    np.testing.assert_array_equal(full.recorded, np.arange(21))
    assert part.recorded[-1] == 20 and part.steps == full.steps == 20
    for got, want in ((part.x, full.x), (part.y, full.y), (part.loss, full.loss)):
        np.testing.assert_array_equal(got, want[part.recorded])
    np.testing.assert_array_equal(part.status, full.status)
    np.testing.assert_array_equal(part.steps_taken, full.steps_taken)


def test_steps_taken_is_where_each_sample_stopped() -> None:
    x0 = np.array([[3.0, 3.0], [0.3, 0.3], [1e-9, 2.0], [40.0, 40.0]])
    t = minimize(CATALOGUE["comparison"], rules.newton(1.0), x0, 60, tol=1e-9, record="all")
    gradient = CATALOGUE["comparison"].compile().gradient
    for i, (status, taken) in enumerate(zip(t.statuses(), t.steps_taken)):
        assert status == Status.CONVERGED  # Newton on x0² + x1⁴ from anywhere
        assert np.linalg.norm(gradient(t.x[taken, i])) <= 1e-9
        assert np.linalg.norm(gradient(t.x[taken - 1, i])) > 1e-9
        assert np.all(t.x[taken:, i] == t.x[taken, i])  # it stays where it stopped
    t = minimize(CATALOGUE["comparison"], rules.gd(0.2), [[0.1, 0.1], [3.0, 3.0]], 50)
    assert t.statuses() == [Status.MAX_STEPS, Status.DIVERGED]
    assert t.steps_taken[0] == 50 and 0 < t.steps_taken[1] < 50


def test_a_batch_that_has_all_stopped_ends_the_loop_but_still_fills_the_record() -> None:
    unreachable = Problem.from_strings(["x"], ["x**2"], target=[-1])
    t = minimize(unreachable, rules.pg(1.0), [[2.0], [3.0]], 1000, record="every:100")
    assert t.statuses() == [Status.NO_INVERSE] * 2 and t.steps_taken.tolist() == [0, 0]
    assert t.x.shape == (11, 2, 1) and np.all(t.x[:, :, 0] == [2.0, 3.0])
    np.testing.assert_allclose(t.y[..., 0], t.x[..., 0] ** 2)


def test_streaming_memory_does_not_grow_with_steps() -> None:
    problem, rule = CATALOGUE["scaling_toy"], rules.gd(1e-4)
    x0 = np.random.default_rng(0).uniform(-1, 1, (2000, 2))
    steps = 400
    history = 8 * (steps + 1) * x0.shape[0] * (2 + 2 + 1)  # x, y and the loss of every step
    minimize(problem, rule, x0[:5], 2)  # compile outside the measurement
    peaks = {}
    for record in ("all", "ends", "last", "every:100"):
        tracemalloc.start()
        minimize(problem, rule, x0, steps, record=record)
        peaks[record] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["all"] >= history  # the measurement sees the recorded arrays
    for record in ("ends", "last", "every:100"):
        assert peaks[record] < history / 10, (record, peaks)


@pytest.mark.parametrize("rule", RULES[:5], ids=lambda r: r.name)
def test_the_working_memory_estimate_bounds_a_step(rule) -> None:
    problem = CATALOGUE["comparison"]
    x0 = sample_points("comparison", np.random.default_rng(1), 5000)
    minimize(problem, rule, x0[:5], 1)
    tracemalloc.start()
    minimize(problem, rule, x0, 3, record="last")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 8 * len(x0) * _working_floats(problem.n, problem.m)


def test_a_run_too_large_for_memory_is_refused_with_its_size() -> None:
    problem = CATALOGUE["comparison"]
    x0 = np.ones((1000, 2))
    with pytest.raises(MemoryLimitError, match=r"needs about 401 MB .* only 1 MB are avail") as e:
        minimize(problem, rules.gd(), x0, 10_000, record="all", max_memory=10**6)
    assert "record='all' keeps 10001 x 1000 samples x 5 values" in str(e.value)
    assert "pass record='last'" in str(e.value) and e.value.needed > 4 * 10**8
    minimize(problem, rules.gd(), x0, 10_000, record="last", max_memory=10**8)  # fits
    # no machine has 40 TB: refused by its size before anything is allocated
    with pytest.raises(MemoryLimitError, match="needs about 40 TB"):
        minimize(problem, rules.gd(), np.ones((10**6, 2)), 10**6, record="all")
    with pytest.raises(MemoryLimitError, match="bfgs keeps all 100001 iterates"):
        minimize(problem, rules.bfgs(), x0, 100_000, max_memory=10**8)


@pytest.mark.parametrize("record", ["some", "every:0", "every:-2", "every:x", 3])
def test_bad_record_mode(record) -> None:
    with pytest.raises(ProblemError, match="record must be one of"):
        minimize(CATALOGUE["comparison"], rules.gd(), [1.0, 1.0], 3, record=record)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only(monkeypatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with ProgressBar(40, "newton", stream, width=10) as bar:
            for done in range(1, 41):
                bar.update(done)
    assert pipe.getvalue() == ""
    lines = terminal.getvalue().split("\r")
    assert lines[1].startswith("newton [----------] 1/40 steps, 0.0 s")
    assert lines[4].startswith("newton [#---------] 4/40 steps")
    assert lines[-1].startswith("newton [##########] 40/40 steps") and lines[-1].endswith("\n")


def test_minimize_shows_progress_only_when_asked(monkeypatch) -> None:
    monkeypatch.setattr(progress, "DELAY", 0.0)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    minimize(CATALOGUE["comparison"], rules.gd(0.01), [[3.0, 3.0]], 20)
    assert terminal.getvalue() == ""
    minimize(CATALOGUE["comparison"], rules.gd(0.01), [[3.0, 3.0]], 20, progress=True)
    assert "minimize gd [" in terminal.getvalue() and "20/20 steps" in terminal.getvalue()
