"""Where the runs of a study ended: which minimum, or why at none.

A run the driver reports as converged (``|∂L/∂x| ≤ tol``) ends at a minimum only when

* it is not far outside the study region (more than one region width beyond it, on an input
  along which ``P`` is not periodic): a flat slope far away is not a minimum found *in* the
  region, and
* the Hessian of the loss there has no clearly negative eigenvalue (else it is a saddle or a
  maximum).

End points at minima are taken modulo the periods of ``P`` (an input that enters only
through ``sin``/``cos`` has period 2π: the two elbow poses of an arm repeated every 2π are two
minima, not hundreds) and grouped when they lie within :data:`SAME` of the region (per input,
of the period where that is shorter) of each other. Each group is one :class:`Minimum`,
represented by its point of lowest loss, the periodic inputs shifted into the period around
the region's centre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Minimum", "classify_ends", "wrap", "SAME", "NOT_CONVERGED", "NOT_A_MINIMUM", "FAR"]
__all__ += ["NO_MINIMUM_WORDS"]

#: End points closer than this fraction of the region (or period) per input are one minimum.
SAME = 0.02
#: Outcome codes of a start that reached no minimum (minima are numbered 0, 1, ...).
NOT_CONVERGED, NOT_A_MINIMUM, FAR = -1, -2, -3
#: Words of the codes of runs that converged at no minimum.
NO_MINIMUM_WORDS = {NOT_A_MINIMUM: "saddle or maximum", FAR: "far outside the region"}
#: A Hessian eigenvalue below ``-_CURVED · max(1, largest |eigenvalue|)`` marks a saddle.
_CURVED = 1e-6


@dataclass(frozen=True)
class Minimum:
    """One minimum reached by the study's runs.

    Attributes
    ----------
    point : tuple of float
        Its lowest-loss end point (periodic inputs in the period around the region's centre).
    loss : float
        The loss there.
    runs : int
        How many runs (over every rule) ended there.
    """

    point: tuple[float, ...]
    loss: float
    runs: int


def wrap(
    points: np.ndarray, periods: Sequence[float | None], centre: Sequence[float]
) -> np.ndarray:
    """``points`` with each periodic input shifted by whole periods into ``[c − T/2, c + T/2)``.

    Examples
    --------
    >>> wrap(np.array([[7.0, 7.0]]), [2 * np.pi, None], [0.0, 0.0]).round(4).tolist()
    [[0.7168, 7.0]]
    """
    out = np.array(points, dtype=float, copy=True)
    for j, period in enumerate(periods):
        if period is not None:
            low = centre[j] - period / 2
            out[..., j] = low + np.mod(out[..., j] - low, period)
    return out


def classify_ends(
    ends: np.ndarray,
    converged: np.ndarray,
    region: Sequence[tuple[float, float]],
    periods: Sequence[float | None],
    loss: Callable[[np.ndarray], np.ndarray],
    hessian: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, tuple[Minimum, ...]]:
    """Per end point, the index of its minimum or a negative code; the minima, most runs first.

    Parameters
    ----------
    ends : ndarray, shape (N, n)
        Where the runs stopped.
    converged : ndarray of bool, shape (N,)
        Which runs the driver reports as converged.
    region : sequence of (low, high)
    periods : sequence of float or None
        Per input, the period of ``P`` (None: not periodic).
    loss, hessian
        The problem's batched loss and Hessian kernels.

    Returns
    -------
    outcome : ndarray of int, shape (N,)
        ``k ≥ 0``: the run ended at minimum ``k``; :data:`NOT_CONVERGED`,
        :data:`NOT_A_MINIMUM` (a saddle or maximum) or :data:`FAR` (outside the region by more
        than its width) otherwise.
    minima : tuple of Minimum
    """
    low, high = np.array(region, dtype=float).T
    span = high - low
    at = wrap(ends, periods, (low + high) / 2)
    outcome = np.where(converged, NOT_A_MINIMUM, NOT_CONVERGED)
    far = np.zeros(len(at), dtype=bool)
    for j, period in enumerate(periods):  # a column at a time: N x n temporaries cost more
        if period is None:
            far |= at[:, j] < low[j] - span[j]
            far |= at[:, j] > high[j] + span[j]
    outcome[converged & far] = FAR
    candidates = np.flatnonzero(converged & ~far)
    points = at[candidates]
    if candidates.size:
        curved = _curved_up(hessian, points)
        candidates, points = candidates[curved], points[curved]
    if not candidates.size:
        return outcome, ()
    groups = _groups(points, low, span, periods)
    values = loss(points)
    counts = np.bincount(groups)
    best = _lowest(groups, values, len(counts))
    order = sorted(range(len(counts)), key=lambda g: (-counts[g], values[best[g]]))
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    outcome[candidates] = rank[groups]
    minima = tuple(
        Minimum(tuple(float(v) for v in points[best[g]]), float(values[best[g]]),
                int(counts[g]))
        for g in order
    )  # fmt: skip
    return outcome, minima


def _lowest(groups: np.ndarray, values: np.ndarray, count: int) -> list[int]:
    """Per group ``0 .. count-1``, the index of its point of lowest value: ``argmin`` over the
    group's points in their order (the first on ties, a NaN first)."""
    if count == 1:
        return [int(np.argmin(values))]
    order = np.argsort(groups, kind="stable")
    ends = np.searchsorted(groups[order], np.arange(count + 1))
    ranked = values[order]
    return [int(order[a + np.argmin(ranked[a:b])]) for a, b in zip(ends[:-1], ends[1:])]


def _curved_up(hessian: Callable[[np.ndarray], np.ndarray], points: np.ndarray) -> np.ndarray:
    """Where the Hessian is finite and has no clearly negative eigenvalue; evaluated in blocks
    of about 4 M entries, so that many starts of a large problem fit in memory."""
    n = points.shape[1]
    block = max(1, 2**22 // (n * n))
    keep = []
    for i in range(0, len(points), block):
        h = hessian(points[i : i + block])
        finite = np.ones(len(h), dtype=bool)
        for entry in h.reshape(len(h), -1).T:  # an entry at a time, as in far
            finite &= np.isfinite(entry)
        if not finite.all():
            h = np.where(finite[:, None, None], h, 0.0)
        lowest, largest = _eigen_range(h)
        keep.append(finite & (lowest >= -_CURVED * np.maximum(1.0, largest)))
    return np.concatenate(keep)


def _eigen_range(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per symmetric matrix of ``h`` (its lower triangle, as ``eigvalsh``): the lowest
    eigenvalue and the largest magnitude of one. 1x1 and 2x2 in closed form (``m ∓ r`` with
    ``r = hypot((a − d)/2, b)``: a few array operations where LAPACK takes a call per matrix;
    the two agree to rounding, and the test against ``_CURVED`` is far from it)."""
    if h.shape[-1] == 1:
        return h[:, 0, 0], np.abs(h[:, 0, 0])
    if h.shape[-1] == 2:
        a, b, d = h[:, 0, 0], h[:, 1, 0], h[:, 1, 1]
        mean, radius = (a + d) / 2, np.hypot((a - d) / 2, b)
        return mean - radius, np.abs(mean) + radius
    eig = np.linalg.eigvalsh(h)
    return eig[:, 0], np.abs(eig).max(axis=-1)


def _groups(
    points: np.ndarray, low: np.ndarray, span: np.ndarray, periods: Sequence[float | None]
) -> np.ndarray:
    """Group labels 0, 1, ... of points about :data:`SAME` of the region apart or closer.

    Points are binned into cells of that size (a whole number of cells per period, so the
    cells wrap around it); occupied cells that touch, across a period's end as well, are one
    group (single linkage on the cells, linear in the number of points).
    """
    n = points.shape[1]
    cells_per = np.zeros(n, dtype=np.int64)  # cells per period; 0 where not periodic
    size = SAME * np.where(span > 0, span, 1.0)
    origin = low.copy()
    for j, period in enumerate(periods):
        if period is not None:
            cells_per[j] = max(1, int(np.ceil(period / min(size[j], SAME * period))))
            size[j] = period / cells_per[j]
            origin[j] = (low[j] + span[j] / 2) - period / 2
    cells = np.floor((points - origin) / size).astype(np.int64)
    cells = np.where(cells_per > 0, np.mod(cells, np.maximum(cells_per, 1)), cells)
    occupied, of_point = _occupied(cells)
    index = {tuple(c): k for k, c in enumerate(occupied.tolist())}
    parent = list(range(len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # touching cells: all 3^n neighbours in few dimensions, the 2n face neighbours beyond
    shifts = (
        np.stack(np.meshgrid(*[[-1, 0, 1]] * n), -1).reshape(-1, n)
        if n <= 4
        else np.concatenate([np.eye(n, dtype=np.int64), -np.eye(n, dtype=np.int64)])
    )
    for cell, k in index.items():
        for shift in shifts:
            other = np.add(cell, shift)
            other = np.where(cells_per > 0, np.mod(other, np.maximum(cells_per, 1)), other)
            found = index.get(tuple(other))
            if found is not None:
                parent[root(k)] = root(found)
    roots = np.array([root(k) for k in range(len(index))])  # per occupied cell
    return np.unique(roots, return_inverse=True)[1].ravel()[of_point]


def _occupied(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of ``cells`` in the order they first occur, and the index of each
    row's among them (array operations: a study has up to millions of end points)."""
    low = cells.min(axis=0)
    widths = [int(w) for w in cells.max(axis=0) - low + 1]
    table = float(np.prod(np.array(widths, dtype=float)))
    if table <= max(2 * len(cells), 1 << 16):  # a table of every cell: no sorting
        keys = np.ravel_multi_index(tuple((cells - low).T), widths)
        first = np.full(int(table), len(cells))
        first[keys[::-1]] = np.arange(len(cells) - 1, -1, -1)  # the last write is the first
        keys_seen = np.flatnonzero(first < len(cells))
        order = np.argsort(first[keys_seen])
        number = np.empty(int(table), dtype=np.int64)
        number[keys_seen[order]] = np.arange(len(order))
        return cells[first[keys_seen[order]]], number[keys]
    if table < 2.0**62:  # one int64 key per cell
        keys = np.ravel_multi_index(tuple((cells - low).T), widths)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(cells, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # distinct cells by first occurrence
    number = np.empty_like(order)
    number[order] = np.arange(len(order))
    return cells[first[order]], number[inverse.ravel()]
