"""Run a per-sample JAX function on a batch held as one 1-D array per scalar: the fused
engine's points as a tuple of coordinates, every intermediate as scalars too.

``vmap`` of an exported kernel keeps its vectors: ``P``, the gradient and the step stack their
components (``(n, size)``) and slice them again, and XLA materialises such a stack when it has
several users. A hand-written loop holds one array per coordinate and every intermediate as
1-D arrays, which XLA fuses into one loop per output. :func:`columns` gets the same from the
exported code: it traces the function on one sample and evaluates its jaxpr with every value
an object array of 1-D batch arrays (one per entry), so that stacks, slices and reshapes
become bookkeeping and the arithmetic stays on 1-D arrays. Primitives that are neither
elementwise nor bookkeeping (a dense LU for ``k > 2``, ``dot_general``) run batched by
``vmap`` on the entries stacked back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core

__all__ = ["columns"]

#: Primitives applied entry by entry (equal shapes in, the same shape out).
_ELEMENTWISE = frozenset(
    "abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp convert_element_type "
    "copy copy_p cos cosh div eq erf erfc exp exp2 expm1 floor ge gt integer_pow is_finite le "
    "log log1p logistic lt max min mul ne neg nextafter not or pow reduce_precision rem round "
    "rsqrt select_n sign sin sinh sqrt square sub tan tanh xor".split()
)
#: Reductions written as a fold of an elementwise primitive over the reduced entries.
_FOLDS = {
    "reduce_sum": jax.lax.add,
    "reduce_max": jax.lax.max,
    "reduce_min": jax.lax.min,
    "reduce_and": jax.lax.bitwise_and,
    "reduce_or": jax.lax.bitwise_or,
    "reduce_prod": jax.lax.mul,
}
_CALLS = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call")


def columns(fn: Callable[[Any], Any], n: int, dtype: Any = jnp.float64) -> Callable[..., Any]:
    """``fn`` (one sample: ``x`` of shape ``(n,)`` to a pytree of arrays) as a function of
    ``n`` 1-D arrays (the coordinates of a batch) to the same pytree, every array leaf given
    as an object array of 1-D batch arrays (``(size,)`` each, or a scalar where constant).

    Examples
    --------
    >>> with jax.enable_x64(True):
    ...     f = columns(lambda x: jnp.stack([x[0] * x[1], -x[1]]), 2)
    ...     out = f(jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]))
    >>> out.shape, [a.tolist() for a in out]
    ((2,), [[3.0, 8.0], [-3.0, -4.0]])
    """
    closed = jax.make_jaxpr(fn)(jnp.zeros(n, dtype=dtype))
    tree = jax.tree_util.tree_structure(jax.eval_shape(fn, jnp.zeros(n, dtype=dtype)))

    def run(*parts: Any) -> Any:
        x = np.empty(n, dtype=object)
        for i, part in enumerate(parts):
            x[i] = part
        size = int(np.shape(parts[0])[0])
        outs = _evaluate(closed.jaxpr, closed.consts, [x], size)
        return jax.tree_util.tree_unflatten(tree, outs)

    return run


def _constant(value: Any) -> np.ndarray:
    """A concrete array as an object array of 0-d arrays."""
    value = np.asarray(value)
    out = np.empty(value.shape, dtype=object)
    for index in np.ndindex(value.shape):
        out[index] = value[index]
    return out


def _evaluate(jaxpr: Any, consts: Sequence[Any], args: Sequence[np.ndarray], size: int) -> list:
    env: dict[Any, np.ndarray] = {}

    def read(var: Any) -> np.ndarray:
        if isinstance(var, core.Literal):
            aval: Any = var.aval  # a ShapedArray
            return _constant(np.asarray(var.val, dtype=aval.dtype))
        return env[var]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = _constant(value)
    for var, value in zip(jaxpr.invars, args):
        env[var] = value
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        outs = _apply(eqn, ins, size)
        for var, value in zip(eqn.outvars, outs):
            env[var] = value
    return [read(v) for v in jaxpr.outvars]


def _apply(eqn: Any, ins: list[np.ndarray], size: int) -> list[np.ndarray]:
    name, params = eqn.primitive.name, eqn.params
    if name in _ELEMENTWISE:
        same = np.broadcast_arrays(*ins)
        out = np.empty(same[0].shape, dtype=object)
        for index in np.ndindex(out.shape):
            out[index] = _bind(eqn.primitive, [a[index] for a in same], params, size)
        return [out]
    if name in _FOLDS:
        return [_fold(ins[0], params["axes"], _FOLDS[name])]
    if name in _CALLS:
        sub = params.get("jaxpr") or params.get("call_jaxpr") or params.get("fun_jaxpr")
        return _evaluate(sub.jaxpr, sub.consts, ins, size)
    shaped = _reshaped(name, params, ins)
    if shaped is not None:
        return [shaped]
    return _batched(eqn, ins, size)


def _reshaped(name: str, params: dict, ins: list[np.ndarray]) -> np.ndarray | None:
    """Bookkeeping primitives on the object arrays (None: not one of them)."""
    a = ins[0]
    if name == "stack":
        return np.stack(ins, axis=params["axis"])
    if name == "concatenate":
        return np.concatenate(ins, axis=params["dimension"])
    if name == "reshape":
        return a.reshape(params["new_sizes"])
    if name == "squeeze":
        return a.reshape([s for i, s in enumerate(a.shape) if i not in params["dimensions"]])
    if name == "broadcast_in_dim":
        shape = [1] * len(params["shape"])
        for i, d in enumerate(params["broadcast_dimensions"]):
            shape[d] = a.shape[i]
        return np.broadcast_to(a.reshape(shape), params["shape"])
    if name == "slice":
        strides = params["strides"] or (1,) * a.ndim
        starts, limits = params["start_indices"], params["limit_indices"]
        return a[tuple(slice(s, e, t) for s, e, t in zip(starts, limits, strides))]
    if name == "transpose":
        return np.transpose(a, params["permutation"])
    if name == "rev":
        return np.flip(a, params["dimensions"])
    return None


def _batched_entry(a: Any) -> bool:
    return np.ndim(a) == 1


def _bind(primitive: Any, operands: list[Any], params: dict, size: int) -> Any:
    if any(_batched_entry(o) for o in operands):
        operands = [o if _batched_entry(o) else jnp.broadcast_to(o, (size,)) for o in operands]
    return primitive.bind(*operands, **params)


def _fold(a: np.ndarray, axes: Sequence[int], op: Callable) -> np.ndarray:
    kept = [i for i in range(a.ndim) if i not in axes]
    moved = np.transpose(a, kept + list(axes)).reshape([a.shape[i] for i in kept] + [-1])
    out = np.empty(moved.shape[:-1], dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = functools.reduce(op, moved[index])
    return out


def _batched(eqn: Any, ins: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Any other primitive, run by ``vmap`` over the batch on its entries stacked back."""
    arrays = []
    batched = any(_batched_entry(e) for a in ins for e in a.flat)
    for a in ins:
        entries = [jnp.broadcast_to(e, (size,)) if batched else jnp.asarray(e) for e in a.flat]
        stacked = jnp.stack(entries, axis=-1) if entries else jnp.zeros((size, 0))
        arrays.append(stacked.reshape(((size,) if batched else ()) + a.shape))

    def call(*operands: Any) -> Any:
        return eqn.primitive.bind(*operands, **eqn.params)

    outs = jax.vmap(call)(*arrays) if batched else call(*arrays)
    outs = outs if eqn.primitive.multiple_results else [outs]
    result = []
    for out in outs:
        obj = np.empty(out.shape[1:] if batched else out.shape, dtype=object)
        for index in np.ndindex(obj.shape):
            obj[index] = out[(slice(None), *index)] if batched else out[index]
        result.append(obj)
    return result
