"""The product of a stencil operator with a batch of grid vectors, in few whole-array passes.

An operator ``(A v)[r, q] = Σ D(q) · v[c, q + δ]`` over terms ``(r, c, δ, D)`` (output field
``r``, input field ``c``, offset ``δ``, the diagonal ``D`` per sample and grid point, or one
number per sample where it is constant) is applied to ``v`` ``(B, fields·points)`` as:

* ``v`` copied once into a padded buffer kept between calls (halos wrapped on a periodic grid,
  zeros off a dirichlet one), each term reading a window of it;
* terms of one row field with the same constant (a Laplacian's four neighbours) summed first
  and scaled once: ``c·(w₁ + w₂ + w₃ + w₄)`` is five passes, not eight;
* the first term of a row written straight into the output (no zero fill).

Each pass is one NumPy ufunc over the batch and the grid, into buffers allocated once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["StencilProduct", "Term"]

#: ``(row field, column field, offset δ, D)``: ``D`` ``(B, *grid)`` or ``(B, 1, …, 1)``.
Term = tuple[int, int, tuple[int, ...], np.ndarray]


class StencilProduct:
    """``v ↦ A v`` for the stencil ``terms`` (see the module docstring), ``fields`` =
    ``(rows, columns)``: maps ``(B, columns·points)`` to ``(B, rows·points)``."""

    def __init__(
        self,
        terms: Sequence[Term],
        fields: tuple[int, int],
        shape: tuple[int, ...],
        periodic: bool,
        width: Sequence[int] = (),
    ) -> None:
        """``width``: pad at least this much per axis (to read another product's padded
        buffer of the same columns, :meth:`apply`)."""
        self.rows, self.cols = fields
        self.shape, self.periodic = tuple(shape), periodic
        self.terms = tuple(terms)  # as given (another engine rebuilds the product from them)
        self.width = [max([abs(t[2][a]) for t in terms] + [0]) for a in range(len(shape))]
        self.width = [max([w, *width[a : a + 1]]) for a, w in enumerate(self.width)]
        self._padded: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        # per row field: varying terms (column, window, D) and constant groups
        # (column windows, coefficient), windows as slices of the padded buffer
        self.varying: list[list[tuple[tuple, np.ndarray]]] = [[] for _ in range(self.rows)]
        groups: dict[tuple[int, bytes], tuple[list[tuple], np.ndarray]] = {}
        for r, c, delta, d in terms:
            window = (slice(None), c) + tuple(
                slice(w + e, w + e + s) for w, e, s in zip(self.width, delta, self.shape)
            )
            if all(size == 1 for size in np.shape(d)[1:]):
                key = (r, np.ascontiguousarray(d).tobytes())
                groups.setdefault(key, ([], d))[0].append(window)
            else:
                self.varying[r].append((window, d))
        self.constant: list[list[tuple[list[tuple], np.ndarray]]] = [[] for _ in range(self.rows)]
        for (r, _), group in groups.items():
            self.constant[r].append(group)

    def _buffers(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        if self._padded is None or len(self._padded) != batch:
            padded = tuple(s + 2 * w for s, w in zip(self.shape, self.width))
            self._padded = np.zeros((batch, self.cols) + padded)
            self._scratch = np.empty((batch,) + self.shape)
        assert self._scratch is not None
        return self._padded, self._scratch

    def interior(self, batch: int) -> np.ndarray:
        """The padded buffer's interior ``(B, columns, *grid)``: write a vector there, then
        :meth:`wrap`, instead of :meth:`load` (no copy)."""
        padded, _ = self._buffers(batch)
        inside = tuple(slice(w, w + s) for w, s in zip(self.width, self.shape))
        return padded[(slice(None), slice(None)) + inside]

    def wrap(self, batch: int) -> np.ndarray:
        """The padded buffer with its halos filled from its interior: from the opposite side
        on a periodic grid, axis by axis over the full extent of the axes before (the corners
        too); zeros (never written) otherwise."""
        padded, _ = self._buffers(batch)
        if not self.periodic:
            return padded
        if any(w > s for w, s in zip(self.width, self.shape)):  # wider than the grid
            grid = (slice(None), slice(None))
            inside = grid + tuple(slice(w, w + s) for w, s in zip(self.width, self.shape))
            pads = [(0, 0), (0, 0)] + [(w, w) for w in self.width]
            padded[...] = np.pad(padded[inside], pads, mode="wrap")
            return padded
        for a, (w, s) in enumerate(zip(self.width, self.shape)):
            if not w:
                continue
            before = (slice(None),) * (2 + a)
            padded[before + (slice(0, w),)] = padded[before + (slice(s, s + w),)]
            padded[before + (slice(s + w, s + 2 * w),)] = padded[before + (slice(w, 2 * w),)]
        return padded

    def load(self, v: np.ndarray) -> np.ndarray:
        """``v`` ``(B, columns·points)`` into the padded buffer, halos filled: the buffer."""
        batch = len(v)
        self.interior(batch)[...] = v.reshape((batch, self.cols) + self.shape)
        return self.wrap(batch)

    def __call__(
        self, v: np.ndarray, out: np.ndarray | None = None, accumulate: bool = False
    ) -> np.ndarray:
        """``A v`` (into ``out`` if given; added to it with ``accumulate``)."""
        return self.apply(self.load(v), out, accumulate)

    def apply(
        self, padded: np.ndarray, out: np.ndarray | None = None, accumulate: bool = False
    ) -> np.ndarray:
        """``A v`` from ``v`` already padded (:meth:`load`, or another product's buffer of
        the same columns and width), into ``out`` (flat ``(B, rows·points)`` or a grid
        ``(B, rows, *grid)``, e.g. another product's :meth:`interior`) if given."""
        batch = len(padded)
        _, scratch = self._buffers(batch)
        if out is None:
            out = np.empty((batch, self.rows * int(np.prod(self.shape))))
        grid = out if out.ndim > 2 else out.reshape((batch, self.rows) + self.shape)
        for r in range(self.rows):
            target = grid[:, r]
            empty = not accumulate
            for window, d in self.varying[r]:
                if empty:
                    np.multiply(d, padded[window], out=target)
                else:
                    np.multiply(d, padded[window], out=scratch)
                    target += scratch
                empty = False
            for windows, coefficient in self.constant[r]:
                if len(windows) == 1:
                    summed = padded[windows[0]]
                else:
                    summed = np.add(padded[windows[0]], padded[windows[1]], out=scratch)
                    for window in windows[2:]:
                        summed += padded[window]
                if empty:
                    np.multiply(summed, coefficient, out=target)
                else:
                    if summed is scratch:
                        summed *= coefficient
                    else:
                        summed = np.multiply(summed, coefficient, out=scratch)
                    target += summed
                empty = False
            if empty:
                target[...] = 0.0
        return out
