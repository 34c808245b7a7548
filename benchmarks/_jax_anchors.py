"""Hand-written JAX anchors of ``driver.py`` for the problems without closed-form loops (the
12-link chain, the coupled map): the loss written in ``jax.numpy``, its derivatives by
``jax.grad``/``jax.hessian``/``jax.jacfwd``, the rule on one sample, ``vmap`` over the batch
held as ``(n, size)`` (one contiguous row per coordinate) and ``jit`` + ``lax.scan`` over the
steps (the start donated), float64 — what a JAX user writes. PG on these problems needs a
numeric local inverse (no hand-written anchor: ``driver.py`` prints a ``MISSING`` line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Loop = Callable[[np.ndarray, int], np.ndarray]
RULES = ("gd", "newton", "ig")


def _forward(case: str) -> tuple[Callable[[Any], Any], Any]:
    """``P`` on one sample and the target ``y*``."""
    import jax.numpy as jnp

    if case == "chain":
        from kernels import chain_target

        def P(theta: Any) -> Any:  # noqa: N802
            phi = jnp.cumsum(theta)
            return jnp.stack([jnp.cumsum(jnp.cos(phi)), jnp.cumsum(jnp.sin(phi))], -1).ravel()

        return P, jnp.asarray(chain_target(12))

    def P(x: Any) -> Any:  # noqa: N802  (the coupled map of driver.numeric_problem)
        return jnp.stack(
            [x[0] + x[1] ** 3 + jnp.sin(x[2]), x[1] * x[2] + jnp.exp(x[0]) / 3,
             x[2] ** 3 + x[0] * x[1]]
        )  # fmt: skip

    return P, jnp.asarray([1.5, 1.0, 2.0])


def autodiff_runs(case: str, name: str, eta: float) -> tuple[Loop, Loop] | None:
    """``(run, path)`` on ``(batch, n)`` arrays (the last point, or every point from step 1),
    None where no anchor exists (PG)."""
    if name not in RULES:
        return None
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    P, target = _forward(case)

    def loss(x: Any) -> Any:
        r = P(x) - target
        return 0.5 * jnp.dot(r, r)

    def step(x: Any) -> Any:
        if name == "gd":
            return x - eta * jax.grad(loss)(x)
        if name == "newton":
            return x - eta * jnp.linalg.solve(jax.hessian(loss)(x), jax.grad(loss)(x))
        jac, dy = jax.jacfwd(P)(x), -eta * (P(x) - target)
        if jac.shape[0] == jac.shape[1]:
            return x + jnp.linalg.solve(jac, dy)
        return x + jnp.linalg.pinv(jac) @ dy

    batched = jax.vmap(step, in_axes=1, out_axes=1)

    def scan(x: Any, steps: int, keep: bool) -> Any:
        def body(x: Any, _: Any) -> tuple[Any, Any]:
            x = batched(x)
            return x, (x if keep else None)

        return jax.lax.scan(body, x, None, length=steps)

    last = jax.jit(lambda x, steps: scan(x, steps, False)[0], static_argnums=1, donate_argnums=0)
    every = jax.jit(lambda x, steps: scan(x, steps, True)[1], static_argnums=1)

    def run(x: np.ndarray, steps: int) -> np.ndarray:
        return np.asarray(last(jnp.asarray(x.T), steps).block_until_ready()).T

    def path(x: np.ndarray, steps: int) -> np.ndarray:
        return np.swapaxes(np.asarray(every(jnp.asarray(x.T), steps)), 1, 2)

    return run, path
