"""Run a symbolic step (solve, simplify) under a CPU-time budget that always holds.

SymPy is pure Python, yet a signal raised into it is not enough: its solvers catch broad
exceptions (swallowing the alarm), its polynomial code may run long in C-level arithmetic, and
only the main thread receives signals. So :func:`with_budget` runs the step in a forked worker
process and kills it at the deadline; the result (SymPy objects, numbers, exceptions) comes back
pickled. Measured on the 2-core CI machine: a fork costs about 11 ms (sympy loaded, 140 MB); a
step inside the worker starts with the parent's caches (copy-on-write) but its own additions to
SymPy's cache are lost when it ends. Budgets nested inside a worker use a signal there (the
worker's one thread is its main thread): they are cooperative, and the outer deadline still
holds because the worker is killed at it. Where ``os.fork`` does not exist, the main thread
falls back to the signal and other threads run without a limit.

Budgets count CPU seconds, not wall seconds: on a shared machine the wall time of a step varies
with the load, its CPU time much less, so a verdict does not flip between a loaded and an idle
run. A worker is killed when its CPU time (read from ``/proc``; wall time where that is
missing) reaches the budget, or at the latest after :data:`WALL_FACTOR` times the budget
of wall time; cooperative budgets use ``ITIMER_PROF`` (process CPU time).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from scaleinv.errors import BudgetExceeded

__all__ = ["with_budget", "cheap_simplify", "cpu_clock", "WALL_FACTOR"]

T = TypeVar("T")

#: True inside a budget's worker process (nested budgets there use SIGPROF).
_IN_WORKER = False
#: A worker gets at most this many times its CPU budget of wall time (plus a second).
WALL_FACTOR = 4.0
_POLL = 0.05


def cpu_clock() -> float:
    """CPU seconds used by this process and its finished budget workers (never decreases).

    Examples
    --------
    >>> before = cpu_clock(); _ = sum(range(10**5)); cpu_clock() >= before
    True
    """
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def _cpu_of(pid: int) -> float | None:
    """CPU seconds of a running child (Linux ``/proc``), or None where unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def with_budget(fn: Callable[[], T], seconds: float, what: str, *, isolate: bool = True) -> T:
    """Return ``fn()``, or raise :class:`BudgetExceeded` after ``seconds``.

    Parameters
    ----------
    fn : callable
        The step; its result and any exception it raises must pickle (SymPy objects do).
        It runs in another process: changes it makes to objects are not seen by the caller.
    seconds : float
        The budget.
    what : str
        Named in the error.
    isolate : bool
        False: on the main thread, a cooperative ``SIGPROF`` check instead of a worker process
        (for small steps where the 11 ms of a fork would dominate; other threads still use a
        worker).

    Budgets nest: an inner budget never outlives the one around it.

    Examples
    --------
    >>> with_budget(lambda: 1 + 1, 1.0, "adding")
    2
    """
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if alarm and (_IN_WORKER or not isolate or not hasattr(os, "fork")):
        return _with_alarm(fn, seconds, what)
    if not hasattr(os, "fork"):
        return fn()  # no fork and no alarm on this platform or thread: no limit
    return _in_worker(fn, seconds, what)


def _in_worker(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``fn`` in a forked process; kill it at the deadline."""
    started = time.monotonic()
    wall_deadline = started + WALL_FACTOR * seconds + 1.0
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the worker (coverage does not follow a fork)
        os.close(read_end)
        _serve(fn, write_end)
    os.close(write_end)
    chunks: list[bytes] = []
    done = False
    try:
        while not done:
            used = _cpu_of(pid)
            if used is None:  # no /proc: count wall time
                used = time.monotonic() - started
            wall_left = wall_deadline - time.monotonic()
            if wall_left <= 0 or used >= seconds:
                raise BudgetExceeded(what, seconds)
            ready, _, _ = select.select([read_end], [], [], min(wall_left, _POLL))
            if not ready:
                continue
            chunk = os.read(read_end, 1 << 16)
            chunks.append(chunk)
            done = not chunk
    finally:
        os.close(read_end)
        if not done:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    data = b"".join(chunks)
    kind, value = pickle.loads(data) if data else ("crash", "no result")
    if kind == "ok":
        return cast(T, value)
    if kind == "error":
        raise cast(BaseException, value)
    if kind == "unpicklable":  # the result cannot cross processes: compute it here instead
        return _with_alarm(fn, seconds, what)
    raise RuntimeError(f"{what}: the worker process died ({value})")


def _serve(fn: Callable[[], Any], fd: int) -> None:  # pragma: no cover - runs in the worker
    """The worker: run ``fn``, write ``(kind, value)`` pickled, and exit without cleanup."""
    global _IN_WORKER
    _IN_WORKER = True
    try:
        result = ("ok", fn())
    except BaseException as err:  # every failure goes back to the caller
        result = ("error", err)
    try:
        payload = pickle.dumps(result)
        pickle.loads(payload)
    except Exception:  # cannot cross processes
        if result[0] == "ok":
            payload = pickle.dumps(("unpicklable", None))
        else:
            why = f"{type(result[1]).__name__}: {result[1]}"
            payload = pickle.dumps(("error", RuntimeError(why)))
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    os._exit(0)  # no atexit handlers, no flushing of the parent's buffers


def _with_alarm(fn: Callable[[], T], seconds: float, what: str) -> T:
    """A cooperative budget on the main thread: ``SIGPROF`` (CPU time) raises inside ``fn``."""
    started = time.process_time()
    outer_left, _ = signal.getitimer(signal.ITIMER_PROF)
    previous = signal.getsignal(signal.SIGPROF)

    def _expire(signum: int, frame: Any) -> None:
        if outer_left and outer_left <= seconds and callable(previous):
            previous(signum, frame)  # the enclosing budget ran out first
        raise BudgetExceeded(what, seconds)

    signal.signal(signal.SIGPROF, _expire)
    signal.setitimer(signal.ITIMER_PROF, min(seconds, outer_left) if outer_left else seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        if outer_left:  # give the enclosing budget what it has left
            signal.setitimer(
                signal.ITIMER_PROF, max(outer_left - (time.process_time() - started), 1e-4)
            )


def cheap_simplify(expr, *, max_ops: int = 40, seconds: float = 1.0, max_entries: int = 36):
    """``sympy.simplify`` where it is cheap; otherwise ``expr`` as it is.

    Cheap means: an expression (or every entry of a matrix with at most ``max_entries``
    entries) of at most ``max_ops`` operations, each simplified within ``seconds``. Larger
    inputs are returned unchanged, so the cost stays bounded. The check is cooperative on the
    main thread (a fork per entry would cost more than most simplifications).
    """
    import sympy as sp

    if isinstance(expr, sp.MatrixBase):
        if expr.rows * expr.cols > max_entries:
            return expr
        return expr.applyfunc(lambda e: cheap_simplify(e, max_ops=max_ops, seconds=seconds))
    if not isinstance(expr, sp.Basic) or sp.count_ops(expr) > max_ops:
        return expr
    try:
        return with_budget(lambda: sp.simplify(expr), seconds, "simplify", isolate=False)
    except BudgetExceeded:
        return expr
