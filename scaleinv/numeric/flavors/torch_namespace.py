"""``numpy`` for generated PyTorch code: the NumPy calls scaleinv's steps make, on ``torch``.

Arrays stay tensors (autograd intact); ``float64`` in ``asarray`` means "a floating dtype":
floating tensors keep their dtype and device, anything else becomes the default float dtype.
:func:`scaleinv.export` copies this source (from the first import on) into PyTorch modules; it
imports nothing from scaleinv.
"""

import contextlib

import torch


def _tensor(a):
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(a)


class _Linalg:
    """``numpy.linalg`` on ``torch.linalg``."""

    def __getattr__(self, name):
        return getattr(torch.linalg, name)

    @staticmethod
    def norm(a, axis=None):
        return torch.linalg.vector_norm(a, dim=axis)

    @staticmethod
    def svd(a, full_matrices=True, compute_uv=True):
        if not compute_uv:
            return torch.linalg.svdvals(a)
        return torch.linalg.svd(a, full_matrices=full_matrices)


class _TorchNumPy:
    """The NumPy names scaleinv's generated code calls, on ``torch``."""

    linalg = _Linalg()

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def asarray(a, dtype=None):
        """A tensor; ``dtype=float64``: keep a floating dtype, else the default float."""
        t = _tensor(a)
        if dtype is torch.float64:
            return t if t.is_floating_point() else t.to(torch.get_default_dtype())
        return t if dtype is None else t.to(dtype)

    @staticmethod
    def errstate(**_):
        """PyTorch never warns on floating-point errors: nothing to silence."""
        return contextlib.nullcontext()

    @staticmethod
    def zeros(shape, dtype=None):
        return torch.zeros(tuple(shape), dtype=dtype)

    @staticmethod
    def shape(a):
        return tuple(_tensor(a).shape)

    @staticmethod
    def take_along_axis(a, indices, axis):
        return torch.take_along_dim(a, indices, dim=axis)

    @staticmethod
    def argmin(a, axis=None):
        return torch.argmin(a, dim=axis)

    @staticmethod
    def sum(a, axis=None):
        return torch.sum(a) if axis is None else torch.sum(a, dim=axis)


numpy = _TorchNumPy()
