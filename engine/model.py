"""A network built from a spec: forward, backward, loss gradients and the per-layer facts the page shows.

Public tensors are NCHW (``(N, C, H, W)``) or ``(N, D)``; inside, feature maps are ``(C, N, H, W)``.
Parameters are named ``layers.{i}.weight`` / ``layers.{i}.bias`` in PyTorch layouts.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import losses, ops
from engine.layers import Layer, ReceptiveField, ShapeError
from engine.layers.fused import fuse
from engine.registry import build_layer, weight_count
from engine.specs import ModelSpec, SpecError, parse_spec

# A micro-batch's largest layer output, at most: each layer then works on arrays that fit the
# core's cache, so relu and pooling run at cache speed instead of memory speed and freed blocks
# are reused instead of faulted in again (measured 10-15% off the TinyVGG and CIFAR-style train
# steps; `python -m bench engine`). But at least this much work, so the Python calls per layer
# stay cheap beside it (LeNet-5 at batch 64 stays whole) and at least one image.
MICRO_BATCH_BYTES = 1 << 20
MICRO_BATCH_MIN_MACS = 32_000_000


@dataclass(frozen=True)
class LayerInfo:
    """What the page and API show for one layer."""

    index: int
    type: str
    title: str
    kind: str
    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    macs: int
    receptive_field: ReceptiveField


@dataclass
class ForwardResult:
    """``output``: the last layer's output; ``activations[i]``: layer i's output (NCHW or (N, D)) when kept."""

    output: np.ndarray
    caches: list[Any]
    activations: list[np.ndarray] | None = None


@dataclass
class LossResult:
    """``buffers``: new values of buffers (running statistics) the batch produced, by name; the
    caller applies them with `Model.apply_buffers` once the step is taken."""

    loss: float
    probabilities: np.ndarray  # (N, K)
    grads: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray] = field(default_factory=dict)


class Model:
    """A sequential CNN. Thread-safe for concurrent forward passes (caches are returned, not stored)."""

    def __init__(self, spec: ModelSpec, layers: list[Layer], info: list[LayerInfo], dtype=np.float32):
        self.spec = spec
        self._dtype = np.dtype(dtype)
        self.layers = layers
        self.info = info
        self.frozen: set[int] = set()
        self.params: dict[str, np.ndarray] = {
            f"layers.{i}.{name}": arr for i, layer in enumerate(layers) for name, arr in layer.params.items()
        }
        self.buffers: dict[str, np.ndarray] = {
            f"layers.{i}.{name}": arr for i, layer in enumerate(layers) for name, arr in layer.buffers.items()
        }
        # (start, stop, unit) runs over the layers: one layer each, or fused pairs where no one reads
        # between them (training, batched prediction; see engine.layers.fused)
        self._layer_units = [(i, i + 1, layer) for i, layer in enumerate(layers)]
        self._fused_units = fuse(layers)

    @classmethod
    def build(cls, spec: ModelSpec | Mapping, *, seed: int = 0, dtype=np.float32,
              max_parameters: int | None = None, max_values: int | None = None) -> "Model":
        """Build from a spec, checking every shape; weights drawn from ``default_rng(seed)``.

        ``max_parameters`` (weights in all) and ``max_values`` (activation values per example, all
        layers) refuse a network too big to hold before anything is allocated.
        Raises `SpecError` naming the layer: "layer 4 (maxpool2d): input 1x1 is smaller than pool_size 2".
        """
        if not isinstance(spec, ModelSpec):
            spec = parse_spec(spec)
        rng = np.random.default_rng(seed)
        shape: tuple[int, ...] = tuple(spec.input_shape)
        rf = ReceptiveField(size=1.0, jump=1.0, start=0.0)
        layers, info, counts = [], [], {}
        total_params = total_values = 0
        for i, lspec in enumerate(spec.layers):
            if max_parameters is not None:
                total_params += weight_count(lspec, shape)
                if total_params > max_parameters:
                    raise SpecError(f"layer {i} ({lspec.type}): the network would have over {max_parameters:,} parameters; make it smaller", i)
            try:
                layer = build_layer(lspec, shape, rng, dtype)
                out_shape = layer.output_shape(shape)
            except ShapeError as e:
                raise SpecError(f"layer {i} ({lspec.type}): {e}", i) from None
            total_values += int(np.prod(out_shape))
            if max_values is not None and total_values > max_values:
                raise SpecError(f"layer {i} ({lspec.type}): the activations of one image would exceed {max_values:,} values; use fewer filters or more pooling", i)
            rf = layer.receptive_field(rf, shape)
            counts[lspec.type] = counts.get(lspec.type, 0) + 1
            info.append(
                LayerInfo(
                    index=i,
                    type=lspec.type,
                    title=lspec.title,
                    kind=lspec.kind,
                    name=f"{lspec.type}_{counts[lspec.type]}",
                    input_shape=shape,
                    output_shape=tuple(out_shape),
                    parameters=int(sum(p.size for p in layer.params.values())),
                    macs=layer.macs(shape),
                    receptive_field=rf,
                )
            )
            layers.append(layer)
            shape = tuple(out_shape)
        return cls(spec, layers, info, dtype)

    # ---- facts -------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.spec.input_shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.info[-1].output_shape

    @property
    def num_parameters(self) -> int:
        return sum(i.parameters for i in self.info)

    @property
    def ends_with_softmax(self) -> bool:
        return self.spec.layers[-1].type == "softmax"

    @property
    def dtype(self) -> np.dtype:
        """float32 at run time; float64 for gradient checks."""
        return self._dtype

    def trainable(self, index: int) -> bool:
        return bool(self.layers[index].params) and index not in self.frozen

    def set_frozen(self, indices: Iterable[int]) -> None:
        """Freeze these layers (their weights get no gradient and no update); others are unfrozen."""
        indices = set(int(i) for i in indices)
        bad = sorted(i for i in indices if not (0 <= i < len(self.layers)) or not self.layers[i].params)
        if bad:
            raise ValueError(f"layers {bad} have no weights to freeze (layers with weights: {self.weighted_layers()})")
        self.frozen = indices

    def weighted_layers(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if layer.params]

    # ---- passes ------------------------------------------------------------------------------
    def forward(
        self,
        x: np.ndarray,
        *,
        train: bool = False,
        rng: np.random.Generator | None = None,
        keep: bool = False,
        stop: int | None = None,
    ) -> ForwardResult:
        """``x: (N, C, H, W)`` -> output of layer ``stop - 1`` (default: the last).

        ``keep=True`` also returns every layer's output (NCHW views). ``train`` turns dropout on
        and needs ``rng``.
        """
        return self._forward_units(self._layer_units[:stop], x, train=train, rng=rng, keep=keep)

    def _forward_units(self, units, x, *, train=False, rng=None, keep=False) -> ForwardResult:
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"input must be (N, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        h = ops.nchw_to_cnhw(x.astype(self.dtype, copy=False))
        caches, kept = [], ([] if keep else None)
        for _, _, unit in units:
            h, cache = unit.forward(h, train=train, rng=rng)
            caches.append(cache)
            if kept is not None:
                kept.append(ops.cnhw_to_nchw(h))
        return ForwardResult(output=ops.cnhw_to_nchw(h), caches=caches, activations=kept)

    def backward(
        self,
        dout: np.ndarray,
        caches: list[Any],
        *,
        start: int | None = None,
        stop: int = 0,
        need_dx: bool = True,
    ) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Back-propagate ``dout`` (gradient w.r.t. the output of layer ``start - 1``, default the last)
        down to the input of layer ``stop``. Returns ``(dx, grads)``: dx in NCHW (None unless
        ``need_dx``), grads for every trainable parameter in the layers passed through.
        """
        start = len(caches) if start is None else start
        d = ops.nchw_to_cnhw(dout) if dout.ndim == 4 else dout
        d, grads = self._backward_units(self._layer_units[stop:start], caches[stop:start], d, need_dx=need_dx)
        return (ops.cnhw_to_nchw(d) if d is not None and need_dx else None), grads

    def _backward_units(self, units, caches, d, *, need_dx: bool):
        """Back-propagate ``d`` through ``units`` (caches aligned with them), last to first.
        Units with parameters are single layers, so their gradients are named by their start index."""
        first = 0
        if not need_dx:
            # Nothing below the lowest trainable layer needs a gradient (frozen features, the input):
            # stopping there also skips the first convolution's col2im, the costliest step.
            trainable = [k for k, (start, _, _) in enumerate(units) if self.trainable(start)]
            first = trainable[0] if trainable else len(units)
        grads: dict[str, np.ndarray] = {}
        for k in range(len(units) - 1, first - 1, -1):
            start, _, unit = units[k]
            d, g = unit.backward(d, caches[k], need_dx=need_dx or k > first, need_grads=self.trainable(start))
            for name, arr in g.items():
                grads[f"layers.{start}.{name}"] = arr
            if d is None:
                break
        return d, grads

    def loss_and_grads(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        loss: str = "cross_entropy",
        train: bool = True,
        rng: np.random.Generator | None = None,
        shards: int = 1,
        executor: Executor | None = None,
    ) -> LossResult:
        """One forward and backward pass on a batch: ``x: (N, C, H, W)``, ``y: (N,)`` class indices.

        Cross-entropy is fused with a final softmax layer (gradient ``p - onehot`` into its input);
        MSE is taken on the network's output (after softmax if it has one), as in the classic explanation.

        The batch is split into contiguous parts, each with its own dropout stream (``rng.spawn``),
        and their gradients are averaged weighted by size: at least ``shards`` parts, and enough
        that each is a micro-batch (`micro_batch_size`). With ``shards > 1`` and an ``executor`` the
        parts run in parallel threads (NumPy and BLAS release the GIL), which is how one process
        uses several cores. Results depend on the model, the batch and ``shards``, never on the
        executor or the machine.
        """
        if loss not in losses.LOSSES:
            raise ValueError(f"loss must be one of {losses.LOSSES}, got {loss!r}")
        n = len(x)
        shards = max(1, min(int(shards), n))
        parts = min(n, max(shards, -(-n // self.micro_batch_size())))
        if parts == 1 or (train and self.whole_batch):
            return self._loss_and_grads(x, y, loss, train, rng)
        bounds = np.linspace(0, n, parts + 1).round().astype(int)
        rngs = rng.spawn(parts) if rng is not None else [None] * parts
        args = [(x[a:b], y[a:b], loss, train, r) for a, b, r in zip(bounds[:-1], bounds[1:], rngs)]
        if executor is not None and shards > 1:
            results = list(executor.map(lambda a: self._loss_and_grads(*a), args))
        else:
            results = [self._loss_and_grads(*a) for a in args]
        weights = [(b - a) / n for a, b in zip(bounds[:-1], bounds[1:])]
        grads = {name: sum(w * r.grads[name] for w, r in zip(weights, results)) for name in results[0].grads}
        return LossResult(
            loss=float(sum(w * r.loss for w, r in zip(weights, results))),
            probabilities=np.concatenate([r.probabilities for r in results]),
            grads={k: v.astype(self.dtype, copy=False) for k, v in grads.items()},
        )

    def _loss_and_grads(self, x, y, loss, train, rng) -> LossResult:
        fused = loss == "cross_entropy" and self.ends_with_softmax
        n_layers = len(self.layers) - 1 if fused else len(self.layers)
        units = [u for u in self._fused_units if u[1] <= n_layers]
        res = self._forward_units(units, x, train=train, rng=rng)
        if loss == "cross_entropy":
            value, dout, probs = losses.softmax_cross_entropy(res.output, y)
        else:
            probs = res.output
            value, dout = losses.mean_squared_error(res.output, y)
        _, grads = self._backward_units(units, res.caches, dout, need_dx=False)
        buffers = {}
        if train:
            for (start, _, unit), cache in zip(units, res.caches):
                buffers.update({f"layers.{start}.{k}": v for k, v in unit.updated_buffers(cache).items()})
        return LossResult(loss=value, probabilities=probs, grads=grads, buffers=buffers)

    @property
    def whole_batch(self) -> bool:
        """Some layer trains on statistics of the whole batch, so training never splits a batch."""
        return any(layer.whole_batch for layer in self.layers)

    def micro_batch_size(self) -> int:
        """Images per micro-batch: their largest layer output within `MICRO_BATCH_BYTES`, unless
        that leaves less than `MICRO_BATCH_MIN_MACS` of work."""
        largest = max(math.prod(info.output_shape) for info in self.info) * self.dtype.itemsize
        macs = max(1, sum(info.macs for info in self.info))
        return max(1, MICRO_BATCH_BYTES // largest, MICRO_BATCH_MIN_MACS // macs)

    def predict_proba(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities ``(N, K)`` in evaluation mode (softmax applied if the spec has none),
        computed ``batch_size`` images at a time (default: `micro_batch_size`)."""
        batch_size = batch_size or self.micro_batch_size()
        outs = []
        for i in range(0, len(x), batch_size):
            out = self._forward_units(self._fused_units, x[i : i + batch_size]).output
            outs.append(out if self.ends_with_softmax else np.exp(losses.log_softmax(out)))
        return np.concatenate(outs) if outs else np.zeros((0,) + self.output_shape, dtype=self.dtype)

    # ---- state -------------------------------------------------------------------------------
    def copy(self) -> "Model":
        """An independent copy (weights and frozen set)."""
        return copy.deepcopy(self)

    def state(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by name: everything a checkpoint holds of the network."""
        return {**self.params, **self.buffers}

    def load_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Copy ``arrays`` (parameters and buffers, as `state`) into the model in place, after checking
        that names and shapes match exactly."""
        own = self.state()
        missing = sorted(set(own) - set(arrays))
        extra = sorted(set(arrays) - set(own))
        if missing or extra:
            raise ValueError(f"parameters do not match the spec: missing {missing}, unexpected {extra}")
        for name, arr in arrays.items():
            if tuple(arr.shape) != own[name].shape:
                raise ValueError(f"{name}: shape {tuple(arr.shape)} does not match the spec's {own[name].shape}")
        for name, arr in arrays.items():
            own[name][...] = arr

    def apply_buffers(self, updates: Mapping[str, np.ndarray]) -> None:
        """Write new buffer values (`LossResult.buffers`) in place."""
        for name, arr in updates.items():
            self.buffers[name][...] = arr
