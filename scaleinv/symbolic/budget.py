"""Run a symbolic step (solve, simplify) under a wall-clock budget that always holds.

SymPy is pure Python, yet a ``SIGALRM`` raised into it is not enough: its solvers catch broad
exceptions (swallowing the alarm), its polynomial code may run long in C-level arithmetic, and
only the main thread receives signals. So :func:`with_budget` runs the step in a forked worker
process and kills it at the deadline; the result (SymPy objects, numbers, exceptions) comes back
pickled. Measured on the 2-core CI machine: a fork costs about 11 ms (sympy loaded, 140 MB); a
step inside the worker starts with the parent's caches (copy-on-write) but its own additions to
SymPy's cache are lost when it ends. Budgets nested inside a worker use ``SIGALRM`` there (the
worker's one thread is its main thread): they are cooperative, and the outer deadline still
holds because the worker is killed at it. Where ``os.fork`` does not exist, the main thread
falls back to ``SIGALRM`` and other threads run without a limit.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from scaleinv.errors import BudgetExceeded

__all__ = ["with_budget", "cheap_simplify"]

T = TypeVar("T")

#: True inside a budget's worker process (nested budgets there use SIGALRM).
_IN_WORKER = False


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
        False: on the main thread, a cooperative ``SIGALRM`` check instead of a worker process
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
    deadline = time.monotonic() + seconds
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
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(left, 0))
            if not ready:
                raise BudgetExceeded(what, seconds)
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
        return value
    if kind == "error":
        raise value
    if kind == "unpicklable":  # the result cannot cross processes: compute it here instead
        return _with_alarm(fn, max(deadline - time.monotonic(), 1e-3), what)
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
            err = result[1]
            payload = pickle.dumps(("error", RuntimeError(f"{type(err).__name__}: {err}")))
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    os._exit(0)  # no atexit handlers, no flushing of the parent's buffers


def _with_alarm(fn: Callable[[], T], seconds: float, what: str) -> T:
    """A cooperative budget on the main thread: ``SIGALRM`` raises inside ``fn``."""
    started = time.monotonic()
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    previous = signal.getsignal(signal.SIGALRM)

    def _expire(signum: int, frame: object) -> None:
        if outer_left and outer_left <= seconds and callable(previous):
            previous(signum, frame)  # the enclosing budget ran out first
        raise BudgetExceeded(what, seconds)

    signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left else seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:  # give the enclosing budget what it has left
            signal.setitimer(
                signal.ITIMER_REAL, max(outer_left - (time.monotonic() - started), 1e-4)
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
