"""Batched linear algebra for the update rules: solves that flag singular samples, and the SVD
half-inverse of HIG."""

from __future__ import annotations

import numpy as np

from scaleinv.errors import RuleError
from scaleinv.numeric.kernels import Kernel, ProblemKernels
from scaleinv.numeric.status import Status

__all__ = ["solve", "inverse_jacobian_times", "half_inverse", "require_newton_dy"]

_EPS = np.finfo(np.float64).eps


def _singular(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        s = np.linalg.svd(a, compute_uv=False)
        return ~(s[..., -1] > s[..., 0] * max(a.shape[-2:]) * _EPS) | ~np.isfinite(s).all(axis=-1)


def solve(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``a @ x = b`` per sample; singular samples get ``x = 0`` and status ``SINGULAR``.

    Examples
    --------
    >>> x, status = solve(np.array([[[2.0, 0], [0, 4]], [[1, 1], [1, 1]]]), np.ones((2, 2)))
    >>> x, status
    (array([[0.5 , 0.25],
           [0.  , 0.  ]]), array([0, 5], dtype=int8))
    """
    singular = _singular(a)
    safe = np.where(singular[..., None, None], np.eye(a.shape[-1]), a)
    x = np.linalg.solve(safe, b[..., None])[..., 0]
    x = np.where(singular[..., None], 0.0, x)
    return x, np.where(singular, Status.SINGULAR, Status.RUNNING).astype(np.int8)


def inverse_jacobian_times(jac: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``J⁻¹ Δy`` for square ``J`` (singular samples flagged), ``J⁺ Δy`` otherwise."""
    if jac.shape[-1] == jac.shape[-2]:
        return solve(jac, dy)
    with np.errstate(all="ignore"):
        dx = (np.linalg.pinv(jac) @ dy[..., None])[..., 0]
    bad = ~np.isfinite(dx).all(axis=-1)
    return np.where(bad[..., None], 0.0, dx), np.where(bad, Status.SINGULAR, 0).astype(np.int8)


def half_inverse(jac: np.ndarray, g: np.ndarray, beta: float, rcond: float | None) -> np.ndarray:
    r"""``V Σ^{-β} Uᵀ g`` per sample, dropping singular values below ``rcond · σ_max``.

    ``σ_max`` is taken over the whole batch (the SVD of the block-diagonal, batch-stacked
    Jacobian is the per-sample SVDs together). ``rcond=None`` means ``max(m, n) · eps``.

    Examples
    --------
    >>> jac = np.array([[2.0, 0.0], [0.0, 8.0]])
    >>> half_inverse(jac, np.array([1.0, 1.0]), beta=0.5, rcond=None)
    array([0.70710678, 0.35355339])
    """
    u, s, vt = np.linalg.svd(jac, full_matrices=False)
    cut = (max(jac.shape[-2:]) * np.finfo(np.float64).eps if rcond is None else rcond) * s.max()
    keep = s > cut
    with np.errstate(all="ignore"):
        scaled = np.where(keep, np.where(keep, s, 1.0) ** (-beta), 0.0)
    coeff = scaled * (np.swapaxes(u, -1, -2) @ g[..., None])[..., 0]
    return (np.swapaxes(vt, -1, -2) @ coeff[..., None])[..., 0]


def require_newton_dy(kernels: ProblemKernels, rule: str) -> Kernel:
    """The y-space Newton step kernel, or a :class:`RuleError` saying why ``rule`` can't run."""
    if kernels.newton_dy is None:
        raise RuleError(
            f"{rule} needs the Newton step of L in y-space, but the loss has a singular "
            "Hessian in y (for example a loss linear in y)"
        )
    return kernels.newton_dy
