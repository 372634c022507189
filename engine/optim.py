"""Optimizers over named parameters, updating arrays in place (PyTorch's update rules).

``step(params, grads)`` touches only the names in ``grads`` (frozen layers send none) and returns
the change it applied to each, ``{name: p_after - p_before}`` (momentum, Adam's scaling, weight
decay and float rounding included), so "the update" shown is exactly what the weights moved by.
Hyperparameters are plain attributes and may change between steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

OPTIMIZERS = ("sgd", "adam")


class Optimizer:
    """Base: per-parameter state in ``self.state[name]``; subclasses implement `_update`."""

    name = "base"

    def __init__(self, lr: float):
        self.lr = lr
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Update ``params`` in place; returns ``{name: applied delta}`` (same shapes, new arrays).

        The delta is taken as ``after - before`` around the unchanged update rule, so the step's
        numbers are the same whether or not anyone reads it.
        """
        self.steps += 1
        applied: dict[str, np.ndarray] = {}
        for name, g in grads.items():
            p = params[name]
            before = p.copy()
            self._update(name, p, g, self.state.setdefault(name, {}))
            applied[name] = np.subtract(p, before, out=before)
        return applied

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """``v = momentum * v + (g + wd * p)``; ``p -= lr * (g' + momentum * v if nesterov else v)``."""

    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay

    def _update(self, name, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            v = state.get("velocity")
            if v is None:
                v = state["velocity"] = g.copy()  # PyTorch starts the buffer at the first gradient
            else:
                v *= self.momentum
                v += g
            g = g + self.momentum * v if self.nesterov else v
        p -= p.dtype.type(self.lr) * g


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 added to the gradient, as ``torch.optim.Adam``."""

    name = "adam"

    def __init__(self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay = weight_decay

    def _update(self, name, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if "m" not in state:
            state["m"] = np.zeros_like(p)
            state["v"] = np.zeros_like(p)
            state["t"] = np.zeros((), dtype=np.int64)
        state["t"] += 1
        t = int(state["t"])
        m, v = state["m"], state["v"]
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        step_size = self.lr / (1 - self.beta1**t)
        denom = np.sqrt(v) / math.sqrt(1 - self.beta2**t) + self.eps
        p -= (step_size * m / denom).astype(p.dtype, copy=False)


def make_optimizer(name: str, *, learning_rate: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """Build ``"sgd"`` or ``"adam"`` from the trainer's hyperparameters (momentum is SGD's only)."""
    if name == "sgd":
        return SGD(lr=learning_rate, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return Adam(lr=learning_rate, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
