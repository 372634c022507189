"""The layer contract every layer family implements.

Feature maps inside the engine are ``(C, N, H, W)`` (see `engine.ops`); vectors are ``(N, D)``.
Shapes given to `output_shape` are per example: ``(C, H, W)`` or ``(D,)``.
A layer keeps its parameters in ``params`` and nothing else: caches are returned by `forward`
and handed back to `backward`, so two threads may run the same layer at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Shape = tuple[int, ...]


class ShapeError(ValueError):
    """An input shape a layer cannot take; `engine.model` prefixes it with the layer's index and type."""


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one unit in input pixels: ``size`` (side), ``jump`` (distance between
    neighbouring units), ``start`` (centre of the first unit, in input pixel coordinates)."""

    size: float
    jump: float
    start: float


class Layer:
    """Base class: a parameter-free, shape-preserving layer unless a subclass says otherwise.

    ``params`` are learned (the optimizer updates them); ``buffers`` are state kept beside them
    (running statistics), never seen by an optimizer. ``whole_batch``: the layer's training output
    depends on the whole batch (batch statistics), so training must not split the batch.
    """

    spec: Any
    params: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    whole_batch: bool = False

    def __init__(self, spec: Any, in_shape: Shape, rng: np.random.Generator | None = None, dtype=np.float32):
        self.spec = spec
        self.in_shape = tuple(in_shape)
        self.params = {}
        self.buffers = {}

    def output_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def forward(self, x: np.ndarray, *, train: bool = False, rng: np.random.Generator | None = None):
        raise NotImplementedError

    def backward(self, dout: np.ndarray, cache: Any, *, need_dx: bool = True, need_grads: bool = True):
        raise NotImplementedError

    def macs(self, in_shape: Shape) -> int:
        """Multiply-adds for one example (0 for layers without weights)."""
        return 0

    def receptive_field(self, rf: ReceptiveField, in_shape: Shape) -> ReceptiveField:
        """Receptive field of this layer's units given that of its input's units."""
        return rf

    def updated_buffers(self, cache: Any) -> dict[str, np.ndarray]:
        """New buffer values after a training forward pass that returned ``cache`` (none by default).

        Returned rather than written, so forward passes never change the layer; the trainer applies
        them after the step (`engine.model.Model.apply_buffers`).
        """
        return {}


def require_spatial(in_shape: Shape, what: str) -> tuple[int, int, int]:
    """Check that ``in_shape`` is ``(C, H, W)``; flat inputs cannot feed a spatial layer."""
    if len(in_shape) != 3:
        raise ShapeError(f"needs a (C, H, W) feature map but gets a flat vector of {in_shape[0]}; {what}")
    return in_shape  # type: ignore[return-value]


def window_receptive_field(rf: ReceptiveField, kernel: int, stride: int, pad_before: int) -> ReceptiveField:
    """The classic recurrence: size += (k-1)*jump, jump *= stride, start += ((k-1)/2 - pad)*jump."""
    return ReceptiveField(
        size=rf.size + (kernel - 1) * rf.jump,
        jump=rf.jump * stride,
        start=rf.start + ((kernel - 1) / 2 - pad_before) * rf.jump,
    )


def global_receptive_field(rf: ReceptiveField, in_shape: Shape) -> ReceptiveField:
    """A unit that sees every position of a (C, H, W) input (global pooling, flatten, dense)."""
    if len(in_shape) != 3:
        return rf
    _, h, w = in_shape
    side = max(h, w)
    return ReceptiveField(size=rf.size + (side - 1) * rf.jump, jump=0.0, start=rf.start + (side - 1) / 2 * rf.jump)
