"""The number of steps of a run, checked once for every way of running (in process or on Dask).

Its own module so that :mod:`scaleinv.numeric.driver` (which hands Dask arrays to
:mod:`scaleinv.numeric.distributed`) and the distributed runner share it without importing
each other.
"""

from __future__ import annotations

import numpy as np

from scaleinv.errors import ProblemError
from scaleinv.symbolic.spec import MAX_STEPS

__all__ = ["check_steps"]


def check_steps(steps: object) -> int:
    """``steps`` as an int, or a :class:`ProblemError` when it is not an integer in
    ``[0, MAX_STEPS]`` (:data:`scaleinv.symbolic.spec.MAX_STEPS`, the limit of every run: spec,
    CLI, study, Dask and this API).

    Examples
    --------
    >>> check_steps(10**12)
    Traceback (most recent call last):
    ...
    scaleinv.errors.ProblemError: steps: 1000000000000 is more than the limit of 1000000 ...
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
        raise ProblemError(f"steps must be a non-negative integer, got {steps!r}")
    if steps > MAX_STEPS:
        raise ProblemError(
            f"steps: {int(steps)} is more than the limit of {MAX_STEPS} steps per run; run in "
            "pieces, each starting from the last point of the one before"
        )
    return int(steps)
