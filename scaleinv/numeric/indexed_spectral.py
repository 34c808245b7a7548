"""A spectral preconditioner for the stencil operators of an indexed problem.

An operator ``(A v)[r, q] = Σ D_(r,c,δ)[q] · v[c, q + δ]`` (fields ``r, c``, grid point ``q``,
offset ``δ``) whose diagonals ``D`` were constant over the grid would be diagonalised by a
transform along every grid axis: the FFT on a periodic grid (exactly), the sine transform
DST-I on a dirichlet grid and the cosine transform DCT-I on a neumann (mirror) grid (exactly
for a three-point stencil per axis, closely for wider ones). Each frequency θ then couples
only the k fields, by the k × k *symbol*

    Â(θ)_rc = Σ_δ D̄_(r,c,δ) e^{iθ·δ}       (periodic)
    Â(θ)_rc = Σ_δ D̄_(r,c,δ) Π_a cos(θ_a δ_a)  (dirichlet, neumann).

The preconditioner takes ``D̄``, the grid mean of each diagonal of the real operator, and
applies ``M⁻¹ = T⁻¹ |Â|⁻¹ T`` (``T`` the transform, one k × k product per frequency). It is
symmetric positive definite (eigenvalues of the Hermitian ``Â`` by magnitude, floored at
:data:`FLOOR` of the largest), so CG stays CG; how close it is to ``A⁻¹`` decides only the
iteration count. It captures the grid coupling that Jacobi misses: near a nearly singular
mode of a diffusion operator (the Brusselator with ``κ_v |Δ| ≈ 1``) Jacobi-CG stalls, this
does not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["Entry", "spectral_symbol", "normal_symbol", "spectral_inverse", "FLOOR"]
__all__ += ["symbol_eigenvalues", "condition", "floored_inverse"]

Operator = Callable[[np.ndarray], np.ndarray]
#: One diagonal of the stencil: ``(row field, column field, offset δ, grid mean per sample (B,))``.
Entry = tuple[int, int, tuple[int, ...], np.ndarray]
#: Eigenvalues of the symbol are floored at this fraction of the largest (per sample).
FLOOR = 1e-13


def _frequencies(shape: Sequence[int], kind: str) -> list[np.ndarray]:
    """The angle θ of every coefficient of the transform, per grid axis."""
    if kind == "periodic":
        last = len(shape) - 1
        return [
            2 * np.pi * (np.fft.rfftfreq(s) if a == last else np.fft.fftfreq(s))
            for a, s in enumerate(shape)
        ]
    if kind == "dirichlet":
        return [np.pi * np.arange(1, s + 1) / (s + 1) for s in shape]
    return [np.pi * np.arange(s) / (s - 1) for s in shape]


def spectral_symbol(
    entries: Sequence[Entry], fields: tuple[int, int], shape: Sequence[int], kind: str
) -> np.ndarray:
    """``Â`` at every frequency: ``(B, rows, cols, *frequencies)`` (complex if periodic)."""
    thetas = _frequencies(shape, kind)
    axes = len(shape)
    batch = len(entries[0][3])
    dtype = complex if kind == "periodic" else float
    symbol = np.zeros((batch,) + fields + tuple(len(t) for t in thetas), dtype=dtype)
    for r, c, delta, mean in entries:
        factor: np.ndarray = np.ones((), dtype=dtype)
        for a, (theta, d) in enumerate(zip(thetas, delta)):
            along = np.exp(1j * theta * d) if kind == "periodic" else np.cos(theta * d)
            factor = factor * along.reshape((-1,) + (1,) * (axes - 1 - a))
        symbol[:, r, c] += mean.reshape((-1,) + (1,) * axes) * factor
    return symbol


def normal_symbol(symbol: np.ndarray) -> np.ndarray:
    """``ÂᴴÂ`` per frequency, the symbol of ``AᵀA`` (CG on the normal equations)."""
    return np.einsum("bkr...,bkc...->brc...", symbol.conj(), symbol)


def symbol_eigenvalues(symbol: np.ndarray) -> np.ndarray:
    """The eigenvalues of a Hermitian symbol ``(B, k, k, *frequencies)``:
    ``(B, *frequencies, k)`` (closed form for k ≤ 2)."""
    count = symbol.shape[1]
    if count == 1:
        return symbol[:, 0, 0].real[..., None]
    if count == 2:
        a, d, b = symbol[:, 0, 0].real, symbol[:, 1, 1].real, symbol[:, 0, 1]
        mean, radius = (a + d) / 2, np.sqrt(((a - d) / 2) ** 2 + np.abs(b) ** 2)
        return np.stack([mean - radius, mean + radius], axis=-1)
    return np.linalg.eigvalsh(np.moveaxis(symbol, (1, 2), (-2, -1)))


def condition(values: np.ndarray) -> float:
    """The largest ratio, over the batch, of the largest to the smallest eigenvalue magnitude
    of a symbol (``values`` from :func:`symbol_eigenvalues`): inf where one is 0."""
    size = np.abs(values).reshape((len(values), -1))
    with np.errstate(divide="ignore"):
        return float((size.max(axis=1) / size.min(axis=1)).max())


def spectral_inverse(symbol: np.ndarray, shape: Sequence[int], kind: str) -> Operator | None:
    """``M⁻¹`` (see the module docstring) from a Hermitian symbol ``(B, k, k, *frequencies)``:
    maps flat ``(B, k·points)`` to the same. None where the transform does not exist (a
    neumann axis of one point)."""
    if kind == "neumann" and min(shape) < 2:
        return None
    import scipy.fft

    batch, count = symbol.shape[0], symbol.shape[1]
    axes = tuple(range(2, 2 + len(shape)))
    inverse = floored_inverse(symbol)
    if kind != "periodic":
        inverse = inverse.real
    full = (batch, count) + tuple(shape)

    def forward(x: np.ndarray) -> np.ndarray:
        if kind == "periodic":
            return scipy.fft.rfftn(x, axes=axes)
        if kind == "dirichlet":
            return scipy.fft.dstn(x, type=1, axes=axes, norm="ortho")
        return scipy.fft.dctn(x, type=1, axes=axes, norm="ortho")

    def backward(y: np.ndarray) -> np.ndarray:
        if kind == "periodic":
            return scipy.fft.irfftn(y, s=tuple(shape), axes=axes)
        if kind == "dirichlet":
            return scipy.fft.idstn(y, type=1, axes=axes, norm="ortho")
        return scipy.fft.idctn(y, type=1, axes=axes, norm="ortho")

    def apply(r: np.ndarray) -> np.ndarray:
        transformed = forward(r.reshape(full))
        if count == 1:
            product = inverse[:, 0] * transformed
        else:
            product = np.einsum("brc...,bc...->br...", inverse, transformed)
        return backward(product).reshape((batch, -1))

    return apply


def floored_inverse(symbol: np.ndarray) -> np.ndarray:
    """``|Â|⁻¹`` per frequency, eigenvalue magnitudes floored at :data:`FLOOR` of the
    sample's largest: the plain inverse where every eigenvalue is above the floor (closed
    form for k ≤ 2), else by the eigendecomposition."""
    batch, count = symbol.shape[:2]
    values = symbol_eigenvalues(symbol)
    size = np.abs(values).reshape((batch, -1)).max(axis=1)
    floor = (FLOOR * np.maximum(size, np.finfo(float).tiny)).reshape(
        (batch,) + (1,) * (values.ndim - 1)
    )
    if count <= 2 and (values > floor).all():
        if count == 1:
            return 1.0 / symbol
        a, d, b = symbol[:, 0, 0], symbol[:, 1, 1], symbol[:, 0, 1]
        det = (a * d - b * b.conj()).real
        return (
            np.stack([np.stack([d, -b]), np.stack([-b.conj(), a])]).transpose(
                (2, 0, 1) + tuple(range(3, symbol.ndim))
            )
            / det[:, None, None]
        )
    moved = np.moveaxis(symbol, (1, 2), (-2, -1))  # (B, *frequencies, k, k)
    values, vectors = np.linalg.eigh(moved)
    inverse_values = 1.0 / np.maximum(np.abs(values), floor)
    inverse = np.einsum("...rk,...k,...ck->...rc", vectors, inverse_values, vectors.conj())
    return np.moveaxis(inverse, (-2, -1), (1, 2))  # (B, k, k, *frequencies)
