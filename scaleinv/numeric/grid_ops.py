"""Reading a field at ``i + offset`` on a grid, and its adjoint, in any kernel flavour.

:func:`grid_read` is what an access ``u[i+1]`` reads on the whole grid at once, the boundary
rule applied (periodic: a roll; dirichlet: the ghost value; neumann: the mirror image
``u[-k] = u[k]``, ``u[n-1+k] = u[n-1-k]``); :func:`grid_scatter` is its adjoint (what ``Jᵀ``
does with a value at each row point: it goes to the column the access read, the folds of a
neumann boundary summed, the ghosts of a dirichlet boundary dropped).

Both are written with the NumPy calls every flavour's ``numpy`` provides (``roll``,
``concatenate``, ``flip``, slices), without in-place writes: :mod:`scaleinv.numeric.export`
copies this module's functions into exported NumPy, JAX and PyTorch modules, where they trace
under ``jit`` and keep autograd. The grid axes are the last ``len(offset)`` axes.
"""

import numpy


def _part(a, start, stop, axis):
    """``a[start:stop]`` along the (negative) ``axis``."""
    return a[(Ellipsis, slice(start, stop)) + (slice(None),) * (-axis - 1)]


def _read_axis(a, d, axis, kind, fill):
    size = a.shape[axis]
    if kind == "periodic":
        return numpy.roll(a, -d, axis)
    if kind == "dirichlet":
        k = min(abs(d), size)
        ghost = numpy.full_like(_part(a, 0, k, axis), fill)
        if d > 0:
            return numpy.concatenate([_part(a, k, size, axis), ghost], axis)
        return numpy.concatenate([ghost, _part(a, 0, size - k, axis)], axis)
    if d > 0:  # neumann: position n-1+k reads n-1-k
        mirror = numpy.flip(_part(a, size - 1 - d, size - 1, axis), (axis,))
        return numpy.concatenate([_part(a, d, size, axis), mirror], axis)
    mirror = numpy.flip(_part(a, 1, 1 - d, axis), (axis,))  # position -k reads k
    return numpy.concatenate([mirror, _part(a, 0, size + d, axis)], axis)


def grid_read(a, offset, kind, fill=0.0):
    """``a`` read at ``i + offset`` at every grid point ``i`` (same shape as ``a``)."""
    for axis, d in zip(range(-len(offset), 0), offset):
        if d:
            a = _read_axis(a, d, axis, kind, fill)
    return a


def _scatter_axis(q, d, axis, kind):
    size = q.shape[axis]
    if kind == "periodic":
        return numpy.roll(q, d, axis)
    k = min(abs(d), size)
    zeros = numpy.zeros_like(_part(q, 0, k, axis))
    if d > 0:
        moved = numpy.concatenate([zeros, _part(q, 0, size - k, axis)], axis)
    else:
        moved = numpy.concatenate([_part(q, k, size, axis), zeros], axis)
    if kind == "dirichlet":
        return moved
    one = numpy.zeros_like(_part(q, 0, 1, axis))
    if d > 0:  # the reads past the end, i = n-d .. n-1, fold onto n-2 .. n-1-d
        fold = numpy.flip(_part(q, size - d, size, axis), (axis,))
        rest = numpy.zeros_like(_part(q, 0, size - 1 - d, axis))
        return moved + numpy.concatenate([rest, fold, one], axis)
    fold = numpy.flip(_part(q, 0, -d, axis), (axis,))  # i = 0 .. -d-1 fold onto -d .. 1
    rest = numpy.zeros_like(_part(q, 0, size - 1 + d, axis))
    return moved + numpy.concatenate([one, fold, rest], axis)


def grid_scatter(q, offset, kind):
    """The adjoint of :func:`grid_read` (ghost values read nothing): the value ``q`` has at
    each row point, added at the point that row's access ``i + offset`` read."""
    for axis, d in zip(range(-len(offset), 0), offset):
        if d:
            q = _scatter_axis(q, d, axis, kind)
    return q
