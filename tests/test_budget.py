"""Budgets count work (Python calls), not seconds: the same step gets the same verdict anywhere."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sympy as sp

from scaleinv.errors import BudgetExceeded
from scaleinv.symbolic import Problem, budget
from scaleinv.symbolic.budget import cheap_simplify, start_server, steps_spent, with_budget
from scaleinv.symbolic.inverse import local_inverse


def _noop() -> None:
    pass


def _calls(n: int) -> int:
    """Exactly ``n + 1`` counted steps: this call and ``n`` calls of ``_noop``."""
    for _ in range(n):
        _noop()
    return n


@pytest.fixture
def short_net(monkeypatch: pytest.MonkeyPatch) -> float:
    """A 1 s grace before the wall-clock safety net (10 s by default), for tests that hit it."""
    monkeypatch.setattr(budget, "WALL_GRACE", 1.0)
    return 1.0


def _net(steps: int, grace: float) -> float:
    """The wall-clock safety net of a budget, plus slack for forking and pickling."""
    return steps / budget.WALL_STEPS_PER_SECOND + grace + 1.5


@pytest.mark.parametrize("isolate", [True, False], ids=["worker", "in-process"])
def test_a_budget_counts_calls_exactly(isolate: bool) -> None:
    before = steps_spent()
    assert with_budget(lambda: _calls(998), 1000, "fast", isolate=isolate) == 998
    assert steps_spent() - before == 1000  # the lambda, _calls and 998 calls of _noop
    assert with_budget(lambda: _calls(998), 1000, "fast", isolate=isolate) == 998
    with pytest.raises(BudgetExceeded, match="^slow exceeded its work limit of 1,000 steps$"):
        with_budget(lambda: _calls(999), 1000, "slow", isolate=isolate)


def test_nested_budgets_charge_the_outer_one_and_never_outlive_it() -> None:
    with pytest.raises(BudgetExceeded, match="inner"):
        with_budget(lambda: with_budget(lambda: _calls(10**6), 100, "inner"), 10**5, "outer")
    with pytest.raises(BudgetExceeded, match="outer"):
        with_budget(lambda: with_budget(lambda: _calls(10**6), 10**7, "inner"), 1000, "outer")
    with pytest.raises(BudgetExceeded, match="outer"):  # 20 inner budgets of 100 share 1000
        with_budget(lambda: [with_budget(lambda: _calls(90), 100, "inner") for _ in range(20)],
                    1000, "outer")  # fmt: skip
    with pytest.raises(BudgetExceeded, match="outer"):  # a worker's count is charged too
        with_budget(
            lambda: [with_budget(lambda: _calls(90), 100, "inner") for _ in range(20)],
            1000, "outer", isolate=False,
        )  # fmt: skip


def _swallowing(n: int) -> int:
    """Like SymPy's solvers: a broad ``except Exception`` around each piece of work."""
    done = 0
    for _ in range(n):
        try:
            _calls(10)
            done += 1
        except Exception:  # noqa: BLE001 - the point of the test
            pass
    return done


def _c_level(n: int) -> int:
    """One long C call that makes no Python calls (nothing to count)."""
    return sum(range(n))


@pytest.mark.parametrize("isolate", [True, False], ids=["worker", "in-process"])
def test_a_broad_except_does_not_swallow_the_limit(isolate: bool) -> None:
    with pytest.raises(BudgetExceeded, match="stubborn exceeded its work limit of 5,000 steps"):
        with_budget(lambda: _swallowing(10**6), 5000, "stubborn", isolate=isolate)


def test_uncounted_c_level_work_is_stopped_by_the_wall_safety_net(short_net: float) -> None:
    started = time.monotonic()
    with pytest.raises(BudgetExceeded, match=r"stubborn ran past the wall-clock safety net"):
        with_budget(lambda: _c_level(10**12), 1000, "stubborn")
    assert time.monotonic() - started < _net(1000, short_net)


def test_budget_holds_on_any_thread() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(with_budget, lambda: _swallowing(10**6), 5000, "threaded")
        with pytest.raises(BudgetExceeded, match="threaded"):
            future.result(timeout=30)
        x = sp.Symbol("x", real=True)  # a fast step still returns its (pickled) result
        assert pool.submit(with_budget, lambda: sp.diff(x**3, x), 10**5, "d").result() == 3 * x**2
        in_process = pool.submit(with_budget, lambda: _calls(10**5), 1000, "t", isolate=False)
        with pytest.raises(BudgetExceeded, match="t exceeded its work limit"):
            in_process.result(timeout=30)


def test_budget_passes_errors_and_unpicklable_results_back() -> None:
    from scaleinv.errors import ParseError
    from scaleinv.symbolic.parsing import parse_expr

    with pytest.raises(ParseError, match="unknown name") as info:
        with_budget(lambda: parse_expr("z", {}), 10**5, "parse")
    assert info.value.offending == "z"  # the error kept its data across processes
    assert with_budget(lambda: lambda: 7, 10**5, "closure")() == 7


def test_waiting_costs_no_steps_up_to_the_wall_net(short_net: float) -> None:
    assert with_budget(lambda: time.sleep(0.4) or 7, 100, "sleepy") == 7
    started = time.monotonic()
    with pytest.raises(BudgetExceeded, match="asleep ran past the wall-clock safety net"):
        with_budget(lambda: time.sleep(60), 100, "asleep")
    assert time.monotonic() - started < _net(100, short_net)


def test_cheap_simplify_leaves_large_inputs_alone() -> None:
    x = sp.Symbol("x")
    assert cheap_simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2) == 1
    big = sum(sp.sin(k * x) ** 2 + sp.cos(k * x) ** 2 for k in range(1, 30))
    assert cheap_simplify(big) == big  # too many operations: returned as is
    matrix = sp.Matrix(7, 7, lambda i, j: sp.sin(x) ** 2 + sp.cos(x) ** 2)
    assert cheap_simplify(matrix) == matrix  # too many entries
    assert cheap_simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2, steps=10) != 1  # out of steps


# -- determinism: a count, hence a verdict, does not depend on the load ---------------------------
_PAIR = Problem.from_strings(["x0", "x1"], ["x0 * x1", "x0 + x1"])  # roots of a quadratic


def _derivation_steps() -> tuple[int, bool]:
    """Steps the local inverse of ``_PAIR`` takes (from a worker's fixed state); its verdict."""
    before = steps_spent()
    inverse = local_inverse(_PAIR, budget=10**8)
    return steps_spent() - before, inverse.numeric


@contextlib.contextmanager
def _busy_machine():
    """Two processes spinning on the CPU (the CI machine has two cores) while inside."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.slow
def test_a_derivation_counts_the_same_steps_idle_and_under_load() -> None:
    _derivation_steps()  # unpickling its result caches facts on the problem's own symbols
    idle, verdict = _derivation_steps()
    assert verdict is False  # a closed form, within `idle` steps
    assert _derivation_steps() == (idle, verdict)
    with _busy_machine():
        assert _derivation_steps() == (idle, verdict)
        # so the verdict at a limit of exactly that many steps is the same under any load
        just = local_inverse(_PAIR, budget=idle)
        short = local_inverse(_PAIR, budget=idle - 1)
    assert not just.numeric and len(just.branches) == 2 and short.numeric
    assert f"the local inverse exceeded its work limit of {idle - 1:,} steps" in short.reason


def test_a_count_is_the_same_in_a_fresh_process() -> None:
    """Under a fixed hash seed a new interpreter counts the same steps as this one's worker."""
    script = (
        "import sympy as sp\n"
        "from scaleinv.symbolic.budget import steps_spent, with_budget\n"
        "x = sp.Symbol('x')\n"
        "e = sp.sin(x)**2 + sp.cos(x)**2 + x*(x + 1) - x**2\n"
        "with_budget(lambda: sp.simplify(e), 10**7, 's')\n"
        "print(steps_spent())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "7", "PYTHONPATH": str(Path(__file__).parents[1])}
    counts = {
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(counts) == 1 and int(counts.pop()) > 1000


# -- a worker dies with its parent ----------------------------------------------------------------
def _state(pid: int) -> str | None:
    """The process state letter of ``pid`` (``Z`` for a zombie), or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_parent_kills_its_worker() -> None:
    script = (
        "import os, time\n"
        "from scaleinv.symbolic.budget import with_budget\n"
        "with_budget(lambda: print(os.getpid(), flush=True) or time.sleep(120), 10**9, 'wait')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    parent.stdout.close()
    assert _state(worker) not in (None, "Z")
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _state(worker) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _state(worker) not in (None, "Z")
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the budget's worker outlived its killed parent"


def test_a_budget_never_forks_its_own_process() -> None:
    """Threads of JAX, torch or a BLAS pool may hold locks at a fork: the child can deadlock.
    Workers are forked by a single-threaded fork server instead; nothing forks this process."""
    forks: list[int] = []
    os.register_at_fork(before=lambda: forks.append(os.getpid()))
    with pytest.raises(BudgetExceeded, match="outer"):
        with_budget(
            lambda: [with_budget(lambda: _calls(90), 100, "inner") for _ in range(20)],
            1000, "outer", isolate=False,
        )  # fmt: skip
    assert with_budget(lambda: _calls(10), 100, "isolated") == 10
    assert forks == []


def test_a_forked_child_starts_its_own_fork_server() -> None:
    """A process pool forks its parent: the child must not talk to the parent's server.
    (In a fresh interpreter: this one may run JAX's threads, which a fork would trouble.)"""
    script = (
        "import os\n"
        "from scaleinv.symbolic import budget\n"
        "assert budget.with_budget(lambda: 3, 100, 'parent') == 3\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = budget.with_budget(lambda: 5, 100, 'child') == 5\n"
        "    os._exit(0 if ok and budget._server().owner == os.getpid() else 1)\n"
        "assert os.waitpid(pid, 0)[1] == 0, 'the child failed'\n"
        "print(budget.with_budget(lambda: 7, 100, 'parent again'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["7"]


def test_a_fork_server_from_a_changed_file_refuses_to_serve(monkeypatch, capfd) -> None:
    """scaleinv upgraded under a running process: a server started afterwards runs the new
    file, whose protocol may differ (this garbled a reply once: "unpickling stack underflow")."""
    monkeypatch.setattr(budget, "_SOURCE", "0" * 16)  # as if this process loaded another file
    monkeypatch.setattr(budget._servers, "server", None, raising=False)
    with pytest.raises(RuntimeError, match="fork server died"):
        with_budget(lambda: 1, 100, "skewed")
    assert "changed since this process started" in capfd.readouterr().err


def test_the_fork_servers_start_is_not_charged_to_the_first_budget() -> None:
    """The wall-clock net starts at the worker's fork: a fresh process's first budget with a
    net far shorter than the server's start (imports: seconds) still returns."""
    script = (
        "from scaleinv.symbolic import budget\n"
        "budget.WALL_GRACE = 1.0\n"
        "print(budget.with_budget(lambda: 6 * 7, 100, 'first'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["42"]


def test_a_budgeted_derivation_beside_running_jax_threads_gives_no_fork_warning() -> None:
    """JAX warns that ``os.fork`` deadlocks its threads (an error in this suite)."""
    jax = pytest.importorskip("jax")
    assert float(jax.jit(lambda v: v * 2.0)(3.0)) == 6.0  # its threads are alive now
    assert len(os.listdir("/proc/self/task")) > 1 if sys.platform.startswith("linux") else True
    problem = Problem.from_strings(["u", "v"], ["u**3 + u", "v**2"])
    inverse = local_inverse(problem, budget=10**7)
    assert not inverse.numeric and inverse.branches
    if sys.platform.startswith("linux"):  # workers are forked from a single-threaded server
        assert len(os.listdir(f"/proc/{budget._server().pid}/task")) == 1
    y = dict(zip(problem.output_symbols, (10.0, 4.0)))
    for branch in inverse.branches:  # the round trip P(P^-1(y)) = y at a sample point
        x = dict(zip(problem.inputs, (complex(s.subs(y).evalf()).real for s in branch.solution)))
        assert [float(p.subs(x)) for p in problem.outputs] == pytest.approx([10.0, 4.0])


def test_a_server_started_ahead_serves_the_threads_later_budgets() -> None:
    """``start_server`` (``scaleinv study`` before its rules run) starts the thread's server
    without waiting for it; the thread's budgets then run on that server, not a second one."""
    seen: list[Any] = []

    def thread() -> None:
        start_server()
        server = budget._servers.server
        seen.extend([server.pid, with_budget(lambda: 6 * 7, 100, "ahead"), budget._server().pid])

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    assert seen[1] == 42 and seen[0] == seen[2]


@pytest.mark.parametrize("fits", [True, False])
def test_a_fork_server_imports_its_parents_modules_at_its_start(fits, monkeypatch) -> None:
    """Not at the first request (a quarter second then): their names go in its ``argv``, so
    the first request names no module, and its worker has them (names too long for an
    argument: the first request names them, as before)."""
    import scaleinv.symbolic.inverse  # noqa: F401 - a module a budget of PG needs

    if not fits:
        monkeypatch.setattr(budget, "_ARGUMENT_LIMIT", 10)

    frames: list[bytes] = []
    write = budget._write_frame
    monkeypatch.setattr(
        budget, "_write_frame", lambda fd, data: frames.append(data) or write(fd, data)
    )
    seen: list[Any] = []

    def thread() -> None:
        start_server()
        seen.append(with_budget(lambda: "scaleinv.symbolic.inverse" in sys.modules, 100, "in"))

    worker = threading.Thread(target=thread)
    worker.start()
    worker.join()
    assert seen == [True]
    names = frames[0].split(b"\n", 1)[0].decode().split()
    assert len(frames) == 1 and (names == [] if fits else "scaleinv.symbolic.inverse" in names)
