"""What :func:`scaleinv.minimize` keeps of a run: the record modes and :class:`Trajectory`.

A run of ``steps`` steps from a batch of starts passes through ``steps + 1`` points per sample.
``record`` says which of them are kept (``x``, ``y = P(x)`` and the loss):

=============  ===========================================  ===========================
``record``     steps kept                                   memory (floats per sample)
=============  ===========================================  ===========================
``"all"``      ``0, 1, ..., steps``                         ``(steps + 1) (n + m + 1)``
``"every:K"``  ``0, K, 2K, ...`` and ``steps``              ``(steps / K + 2) (n + m + 1)``
``"ends"``     ``0`` and ``steps`` (the default)            ``2 (n + m + 1)``
``"last"``     ``steps``                                    ``n + m + 1``
=============  ===========================================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaleinv.errors import ProblemError
from scaleinv.numeric.status import Status

__all__ = ["Trajectory", "RECORD_MODES", "recorded_steps", "recorded_count"]

#: The accepted values of ``record`` (``K`` a positive integer).
RECORD_MODES = ("all", "every:K", "ends", "last")


def _every(record: str) -> int | None:
    """K of ``"every:K"``; None for the other modes; ProblemError for anything else."""
    if record in ("all", "ends", "last"):
        return None
    if isinstance(record, str) and record.startswith("every:"):
        every = record.removeprefix("every:")
        if every.isdigit() and int(every) > 0:
            return int(every)
    raise ProblemError(
        f"record must be one of {', '.join(map(repr, RECORD_MODES))} with K a positive "
        f"integer, got {record!r}"
    )


def recorded_count(record: str, steps: int) -> int:
    """How many steps ``record`` keeps (without building them: a run too large to record is
    refused by its size, not by an allocation failure)."""
    every = _every(record)
    if every is not None:
        return -(-steps // every) + 1  # 0, K, 2K, ... below steps, and steps
    return {"all": steps + 1, "ends": min(steps, 1) + 1, "last": 1}[record]


def recorded_steps(record: str, steps: int) -> np.ndarray:
    """The step indices ``record`` keeps out of ``0 .. steps``, increasing; always ends at
    ``steps``.

    Examples
    --------
    >>> recorded_steps("every:4", 10), recorded_steps("ends", 10), recorded_steps("last", 10)
    (array([ 0,  4,  8, 10]), array([ 0, 10]), array([10]))
    """
    every = _every(record)
    if every is not None:
        return np.unique(np.append(np.arange(0, steps + 1, every), steps))
    if record == "all":
        return np.arange(steps + 1)
    return np.unique([0, steps]) if record == "ends" else np.array([steps])


@dataclass(frozen=True)
class Trajectory:
    """The recorded iterates of one rule from a batch of start points.

    Attributes
    ----------
    x, y : ndarray
        ``(r, *batch, n)`` and ``(r, *batch, m)``: the points and ``P(x)`` at the ``r``
        recorded steps (``r = steps + 1`` for ``record="all"``); a sample that stopped early
        stays at its last point.
    loss : ndarray
        ``(r, *batch)``.
    status : ndarray of int8
        Per sample, a :class:`~scaleinv.numeric.status.Status` code (never ``RUNNING``).
    rule : str
        The rule's name.
    recorded : ndarray of int
        ``(r,)``: the step index of each entry along axis 0 of ``x``, ``y`` and ``loss``.
    steps_taken : ndarray of int
        Per sample, the steps it moved before it stopped (``steps`` where it never stopped).
    engine : str
        What ran the loop: ``"numpy"`` or ``"jax"`` (see :mod:`scaleinv.numeric.engines`).
        The JAX engine's arrays are read-only views of its program's output buffers (no
        copy); ``np.array(t.x)`` gives one to write into.

    Examples
    --------
    >>> from scaleinv import Problem, minimize, rules
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> t = minimize(p, rules.newton(1 / 3), [3.0, 3.0], steps=10, record="every:4")
    >>> t.recorded, t.x.shape, t.steps
    (array([ 0,  4,  8, 10]), (4, 2), 10)
    """

    x: np.ndarray
    y: np.ndarray
    loss: np.ndarray
    status: np.ndarray
    rule: str
    recorded: np.ndarray
    steps_taken: np.ndarray
    engine: str = "numpy"

    @property
    def steps(self) -> int:
        """Number of steps the run went through (the last recorded step index)."""
        return int(self.recorded[-1])

    def statuses(self) -> list[Status]:
        """The per-sample statuses as a flat list of :class:`Status`."""
        return [Status(int(code)) for code in np.ravel(self.status)]
