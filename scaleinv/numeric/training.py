r"""Scale-invariant physics training (SIP): a rule's update of a network's predictions as targets.

A network maps a target ``y*`` to inputs ``x_pred``; instead of back-propagating the physics
loss ``L(P(x_pred); y*)``, SIP trains it on the proxy loss

.. math:: \tfrac12 \, | x_{pred} - \mathrm{sg}(x_{pred} + \Delta x) |^2

where ``Δx`` is an update rule's step (PG, HIG, ...) at ``x_pred`` towards that sample's ``y*``
and ``sg`` stops the gradient. The steps are the exported JAX or PyTorch flavour
(:mod:`scaleinv.numeric.flavors`), so they run inside a training step on the framework's
tensors.

Per-sample targets: the problem's loss is translated in y-space, ``L_s(y) = L(y − y*_s + t)``
(``t`` the problem's target), so its minimum moves to each sample's ``y*_s``; the targets enter
every kernel as batched params ``ystar0, ystar1, ...`` (see :func:`per_sample_target`). For
the default loss ``½|y − t|²`` this is ``½|y − y*_s|²`` and the Newton step in y is
``y*_s − y``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from scaleinv.errors import ProblemError
from scaleinv.numeric.flavors.loader import load_module
from scaleinv.numeric.rules import Rule
from scaleinv.symbolic import Problem

__all__ = ["SIP", "per_sample_target", "sip"]


_TRANSLATED: weakref.WeakKeyDictionary[Problem, tuple[Problem, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def per_sample_target(problem: Problem) -> tuple[Problem, tuple[str, ...]]:
    """``problem`` with its loss translated to a per-sample target, and the target params' names.

    Cached per problem, so every rule's SIP of one problem shares its derivatives and kernels.

    Examples
    --------
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> q, names = per_sample_target(p)
    >>> names, q.compile().newton_dy([1.0, 1.0], ystar0=3.0, ystar1=5.0)  # y* - y
    (('ystar0', 'ystar1'), array([2., 4.]))
    """
    cached = _TRANSLATED.get(problem)
    if cached is not None:
        return cached
    taken = {str(s) for s in (*problem.inputs, *problem.params, *problem.output_symbols)}
    names = []
    for i in range(problem.m):
        name = f"ystar{i}"
        while name in taken:
            name += "_"
        names.append(name)
    stars = [sp.Symbol(name, real=True) for name in names]
    shift = {y: y - s + t for y, s, t in zip(problem.output_symbols, stars, problem.target)}
    params = {**problem.params, **{s: float(t) for s, t in zip(stars, problem.target)}}
    translated = Problem(
        problem.inputs, problem.outputs, problem.loss.xreplace(shift), tuple(stars), params
    )
    _TRANSLATED[problem] = (translated, tuple(names))
    return _TRANSLATED[problem]


@dataclass(frozen=True)
class SIP:
    """Proxy targets of one rule for a network's predictions, in one framework.

    Build with :func:`sip`. ``x_pred`` has shape ``(batch, n)``, ``y_star`` ``(batch, m)``;
    both are the framework's arrays (PyTorch tensors, JAX arrays). The closed-form local
    inverse validates its solutions to ``1e-8`` relative, so PG needs float64.
    """

    problem: Problem
    rule: Rule
    flavor: str
    module: Any = field(repr=False)
    names: tuple[str, ...]

    def _targets(self, y_star: Any) -> dict[str, Any]:
        if y_star.shape[-1] != self.problem.m:
            raise ProblemError(
                f"y_star must have shape (..., {self.problem.m}), got {y_star.shape}"
            )
        return {name: y_star[..., i] for i, name in enumerate(self.names)}

    def proxy_targets(self, x_pred: Any, y_star: Any) -> Any:
        """``x_pred + Δx``: the rule's updated points, with no gradient flowing back."""
        x = self._stop_gradient(x_pred)
        dx, _ = getattr(self.module, self.rule.step_name)(x, **self._targets(y_star))
        return self._stop_gradient(x + dx)

    def proxy_loss(self, x_pred: Any, y_star: Any) -> Any:
        """The SIP loss, ``½ |x_pred − sg(x_pred + Δx)|²`` averaged over the batch."""
        diff = x_pred - self.proxy_targets(x_pred, y_star)
        return 0.5 * (diff**2).sum(-1).mean()

    def physics_loss(self, x_pred: Any, y_star: Any) -> Any:
        """``L(P(x_pred); y*)`` averaged over the batch (differentiable: Adam's loss)."""
        return self.module.loss(x_pred, **self._targets(y_star)).mean()

    def _stop_gradient(self, x: Any) -> Any:
        if self.flavor == "jax":
            return self.module.jax.lax.stop_gradient(x)
        return x.detach()


def sip(problem: Problem, rule: Rule, flavor: str = "torch") -> SIP:
    """SIP proxy targets of ``rule`` for ``problem``, with per-sample targets, in ``flavor``.

    Examples
    --------
    >>> import torch  # doctest: +SKIP
    >>> from scaleinv import rules  # doctest: +SKIP
    >>> p = Problem.from_strings(["x0", "x1"], ["x0", "x1**2"], loss="y0**2 + y1**2")
    >>> s = sip(p, rules.pg(1.0))  # doctest: +SKIP
    >>> x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)  # doctest: +SKIP
    >>> s.proxy_targets(x, torch.tensor([[2.0, 4.0]], dtype=torch.float64))  # doctest: +SKIP
    tensor([[2., 2.]], dtype=torch.float64)
    """
    if flavor not in ("torch", "jax"):
        raise ProblemError(f"SIP training runs in torch or jax, got flavor {flavor!r}")
    translated, names = per_sample_target(problem)
    module = load_module(translated, flavor, [rule])
    if rule.step_name not in module.__all__:
        notes = [line for line in (module.__doc__ or "").splitlines() if "Not exported" in line]
        why = " ".join(notes) or "no exported step"
        raise ProblemError(f"{rule.name} cannot give SIP targets for this problem: {why}")
    return SIP(translated, rule, flavor, module, names)
