"""BFGS through :func:`scipy.optimize.minimize`, replayed as a step kernel.

SciPy runs each sample's whole optimization in ``init`` (one call per sample — BFGS keeps a
per-sample Hessian estimate and line search, so it is not batched); ``step`` then hands out the
recorded iterates one at a time, so :func:`scaleinv.minimize` treats BFGS like any other rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scaleinv.numeric.compiled import CompiledRule
from scaleinv.numeric.kernels import ProblemKernels
from scaleinv.numeric.status import Status

__all__ = ["BFGSState", "compile_bfgs"]


class BFGSState(NamedTuple):
    """The recorded iterates ``(steps+1, *batch, n)``, the index of the current one, and
    whether SciPy reported success per sample."""

    iterates: np.ndarray
    current: int
    success: np.ndarray


def _run_one(kernels: ProblemKernels, x0: np.ndarray, steps: int) -> tuple[np.ndarray, bool]:
    from scipy.optimize import minimize as scipy_minimize  # 0.3 s to import: only when used

    path = [x0.copy()]

    def fun(x: np.ndarray) -> float:
        return float(kernels.loss(x))

    def jac(x: np.ndarray) -> np.ndarray:
        return kernels.gradient(x)

    result = scipy_minimize(
        fun,
        x0,
        jac=jac,
        method="BFGS",
        callback=lambda xk: path.append(np.array(xk)),
        options={"maxiter": steps, "gtol": 1e-12},
    )
    path = path[: steps + 1]
    iterates = np.array(path + [path[-1]] * (steps + 1 - len(path)))
    return iterates, bool(result.success) and len(path) <= steps


def compile_bfgs(kernels: ProblemKernels) -> CompiledRule:
    """A :class:`CompiledRule` that runs SciPy's BFGS per sample and replays its iterates."""

    def init(x0: np.ndarray, steps: int) -> BFGSState:
        flat = np.asarray(x0, dtype=np.float64).reshape(-1, x0.shape[-1])
        runs = [_run_one(kernels, point, steps) for point in flat]
        iterates = np.stack([r[0] for r in runs], axis=1).reshape((steps + 1,) + x0.shape)
        success = np.array([r[1] for r in runs]).reshape(x0.shape[:-1])
        return BFGSState(iterates, 0, success)

    def step(x: np.ndarray, state: BFGSState) -> tuple[np.ndarray, BFGSState, np.ndarray]:
        nxt = min(state.current + 1, state.iterates.shape[0] - 1)
        dx = state.iterates[nxt] - state.iterates[state.current]
        done = state.success & np.all(dx == 0, axis=-1)
        status = np.where(done, Status.CONVERGED, Status.RUNNING).astype(np.int8)
        return dx, state._replace(current=nxt), status

    (n,) = kernels.gradient.shape  # the state holds every iterate: (steps+1, *batch, n)
    return CompiledRule(init, step, lambda samples, steps: 8 * (steps + 1) * samples * n)
