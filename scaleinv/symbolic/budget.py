"""Run a symbolic step (solve, simplify) under a wall-clock budget."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from scaleinv.errors import BudgetExceeded

__all__ = ["with_budget", "cheap_simplify"]

T = TypeVar("T")


def with_budget(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Return ``fn()``, or raise :class:`BudgetExceeded` after ``seconds``.

    Budgets nest: an inner budget never outlives the one around it, and the outer one is
    charged the time actually spent. The budget uses ``SIGALRM``, which only the main thread
    can receive; elsewhere (or on a platform without it) ``fn`` runs without a limit.

    Examples
    --------
    >>> with_budget(lambda: 1 + 1, 1.0, "adding")
    2
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        return fn()
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
    inputs are returned unchanged, so the cost stays bounded and the result deterministic.
    """
    import sympy as sp

    if isinstance(expr, sp.MatrixBase):
        if expr.rows * expr.cols > max_entries:
            return expr
        return expr.applyfunc(lambda e: cheap_simplify(e, max_ops=max_ops, seconds=seconds))
    if not isinstance(expr, sp.Basic) or sp.count_ops(expr) > max_ops:
        return expr
    try:
        return with_budget(lambda: sp.simplify(expr), seconds, "simplify")
    except BudgetExceeded:
        return expr
