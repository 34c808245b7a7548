"""The compiled form of an update rule: ``init`` and ``step`` over batches of points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scaleinv.numeric.status import Status

__all__ = ["CompiledRule", "stateless"]


@dataclass(frozen=True)
class CompiledRule:
    """A batched step kernel with explicit state (``None`` for rules without state).

    ``init(x0, steps) -> state``; ``step(x, state) -> (dx, state, status)`` with ``x`` and
    ``dx`` of shape ``(..., n)`` and ``status`` an int8 array of
    :class:`~scaleinv.numeric.status.Status` codes (``RUNNING`` where the step is fine).
    ``state_bytes(samples, steps)`` is the memory the state takes for a run of that size
    (what :func:`scaleinv.minimize` counts before it starts).
    """

    init: Callable[[np.ndarray, int], Any]
    step: Callable[[np.ndarray, Any], tuple[np.ndarray, Any, np.ndarray]]
    state_bytes: Callable[[int, int], int] = lambda samples, steps: 0


def stateless(fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]) -> CompiledRule:
    """Wrap ``fn(x) -> (dx, status or None)`` as a :class:`CompiledRule` without state."""

    def step(x: np.ndarray, state: Any) -> tuple[np.ndarray, Any, np.ndarray]:
        dx, status = fn(np.asarray(x, dtype=np.float64))
        if status is None:
            status = np.full(dx.shape[:-1], Status.RUNNING, dtype=np.int8)
        return dx, state, status

    return CompiledRule(init=lambda x0, steps: None, step=step)
