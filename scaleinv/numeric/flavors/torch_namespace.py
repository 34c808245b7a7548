"""``numpy`` for generated PyTorch code: the NumPy calls scaleinv's steps make, on ``torch``.

Arrays stay tensors (autograd intact); ``float64`` in ``asarray`` means "a floating dtype":
floating tensors keep their dtype and device, integer tensors become the default float dtype.
:func:`scaleinv.export` copies this source (from the first import on) into PyTorch modules; it
imports nothing from scaleinv.
"""

import contextlib
import math

import torch


def _fit(value, like):
    if isinstance(value, float) and isinstance(like, torch.Tensor) and like.is_floating_point():
        if math.isfinite(value):
            limit = torch.finfo(like.dtype).max
            return min(max(value, -limit), limit)
    return value


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
        """A tensor. A tensor asked for ``float64`` keeps a floating dtype (and its device);
        anything else (numbers, lists, NumPy arrays) converts as ``torch.as_tensor``."""
        if not isinstance(a, torch.Tensor):
            return torch.as_tensor(a, dtype=dtype)
        if dtype is torch.float64:
            return a if a.is_floating_point() else a.to(torch.get_default_dtype())
        return a if dtype is None else a.to(dtype)

    @staticmethod
    def array(a, dtype=None):
        """A new tensor holding ``a`` (a copy, as ``numpy.array``)."""
        return torch.as_tensor(a, dtype=dtype).clone()

    @staticmethod
    def errstate(**_):
        """PyTorch never warns on floating-point errors: nothing to silence."""
        return contextlib.nullcontext()

    @staticmethod
    def where(condition, a, b):
        """``torch.where``; a finite Python float beyond the other tensor's range (e.g.
        float64's max beside float32 distances) is clamped to that range."""
        return torch.where(condition, _fit(a, b), _fit(b, a))

    @staticmethod
    def zeros(shape, dtype=None):
        return torch.zeros(tuple(shape), dtype=dtype)

    @staticmethod
    def shape(a):
        return tuple(torch.as_tensor(a).shape)

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
