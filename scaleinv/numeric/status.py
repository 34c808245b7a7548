"""Per-sample outcome codes of an optimization run."""

from __future__ import annotations

from enum import IntEnum

from scaleinv.numeric import runtime

__all__ = ["Status"]


class Status(IntEnum):
    """What happened to one sample; ``RUNNING`` only appears while a run is under way.

    Examples
    --------
    >>> Status.NO_INVERSE.message
    'P(x) = y had no real solution for the requested step'
    """

    RUNNING = runtime.RUNNING
    CONVERGED = runtime.CONVERGED
    MAX_STEPS = runtime.MAX_STEPS
    DIVERGED = runtime.DIVERGED
    NO_INVERSE = runtime.NO_INVERSE
    SINGULAR = runtime.SINGULAR

    @property
    def message(self) -> str:
        """A sentence for users."""
        return _MESSAGES[self]

    @property
    def label(self) -> str:
        """The lower-case name used in tables (``max_steps``, ``no_inverse``, ...)."""
        return self.name.lower()


_MESSAGES = {
    Status.RUNNING: "still running",
    Status.CONVERGED: "converged: the gradient norm fell below tol",
    Status.MAX_STEPS: "stopped after the maximum number of steps",
    Status.DIVERGED: "diverged: x or the loss stopped being finite",
    Status.NO_INVERSE: "P(x) = y had no real solution for the requested step",
    Status.SINGULAR: "the Hessian or Jacobian was singular",
}
