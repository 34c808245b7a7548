"""Run a symbolic step (solve, simplify) under a wall-clock budget."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from scaleinv.errors import BudgetExceeded

__all__ = ["with_budget", "cheap_simplify"]

T = TypeVar("T")


def with_budget(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Return ``fn()``, or raise :class:`BudgetExceeded` after ``seconds``.

    The budget uses ``SIGALRM``, which only the main thread can receive; elsewhere (or on a
    platform without it) ``fn`` runs without a limit.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        return fn()

    def _expire(signum: int, frame: object) -> None:
        raise BudgetExceeded(what, seconds)

    previous = signal.signal(signal.SIGALRM, _expire)
    remaining, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if remaining:  # an enclosing budget was running: give it back what is left
            signal.setitimer(signal.ITIMER_REAL, max(remaining - seconds, 1e-3))


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
