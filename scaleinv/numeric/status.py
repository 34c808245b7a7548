"""Per-sample outcome codes of an optimization run."""

from __future__ import annotations

from enum import IntEnum

from scaleinv.numeric import runtime

__all__ = ["Status"]


class Status(IntEnum):
    """What happened to one sample; ``RUNNING`` only appears while a run is under way.

    Two statuses end a PG sample whose local inverse failed, and they mean different things:

    * ``NO_INVERSE`` — ``P(x) = y`` has *no real solution* for the requested step. Known for
      certain: from the closed form (every real branch was derived and none is valid at the
      target), or, for the numeric inverse, from a range certificate (the target lies outside
      an enclosure of the range of ``P``, e.g. ``x0**2 = -1`` or ``exp(x0) = 0``).
    * ``NOT_FOUND`` — the numeric local inverse (:func:`~scaleinv.numeric.pathsolve.path_inverse`)
      did not reach a solution along the path from ``P(x)`` to the target: the path meets a
      fold of ``P`` or leaves its domain. A solution may still exist elsewhere.

    The PG rule's ``fallback`` (``"stop"``, ``"ig"``) applies to both.

    Examples
    --------
    >>> Status.NO_INVERSE.message
    'P(x) = y had no real solution for the requested step'
    >>> Status.NOT_FOUND.label
    'not_found'
    >>> Status.MAX_STEPS.words
    'step limit'
    """

    RUNNING = runtime.RUNNING
    CONVERGED = runtime.CONVERGED
    MAX_STEPS = runtime.MAX_STEPS
    DIVERGED = runtime.DIVERGED
    NO_INVERSE = runtime.NO_INVERSE
    SINGULAR = runtime.SINGULAR
    NOT_FOUND = runtime.NOT_FOUND

    @property
    def message(self) -> str:
        """A sentence for users."""
        return _MESSAGES[self]

    @property
    def label(self) -> str:
        """The lower-case name used in tables (``max_steps``, ``no_inverse``, ...)."""
        return self.name.lower()

    @property
    def words(self) -> str:
        """A few words for tables and counts (``step limit``, ``diverged: 12``)."""
        return _WORDS[self]


_MESSAGES = {
    Status.RUNNING: "still running",
    Status.CONVERGED: "converged: the gradient norm fell below tol",
    Status.MAX_STEPS: "stopped after the maximum number of steps",
    Status.DIVERGED: "diverged: x or the loss stopped being finite",
    Status.NO_INVERSE: "P(x) = y had no real solution for the requested step",
    Status.SINGULAR: "the Hessian or Jacobian was singular",
    Status.NOT_FOUND: (
        "the numeric local inverse found no solution of P(x) = y along the path of the step "
        "(one may exist elsewhere)"
    ),
}

#: The one map from status to words, for every table and count of the reports.
_WORDS = {
    Status.RUNNING: "running",
    Status.CONVERGED: "converged",
    Status.MAX_STEPS: "step limit",
    Status.DIVERGED: "diverged",
    Status.NO_INVERSE: "no real inverse",
    Status.SINGULAR: "singular",
    Status.NOT_FOUND: "inverse not found",
}
