"""``numpy`` for generated JAX code: ``jax.numpy``, with NumPy's ``errstate`` as a no-op and
``float64`` in ``asarray`` meaning JAX's default float (float64 when x64 is enabled).

:func:`scaleinv.export` copies this source (from the first import on) into JAX modules, so the
step source written for NumPy runs on ``jax.numpy``; it imports nothing from scaleinv.
"""

import contextlib

import jax
import jax.numpy


class _JaxNumPy:
    """The NumPy names scaleinv's generated code calls, on ``jax.numpy``."""

    def __getattr__(self, name):
        return getattr(jax.numpy, name)

    @staticmethod
    def asarray(a, dtype=None):
        """``jax.numpy.asarray``; ``dtype=float64`` asks for the default float type."""
        return jax.numpy.asarray(a, dtype=float if dtype is jax.numpy.float64 else dtype)

    @staticmethod
    def errstate(**_):
        """JAX never warns on floating-point errors: nothing to silence."""
        return contextlib.nullcontext()


numpy = _JaxNumPy()
