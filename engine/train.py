"""The trainer: mini-batch steps over a dataset, seeded so that a run can be replayed bit for bit.

One *step* is one mini-batch (one optimizer update); epochs are counted from examples seen.
Batch order, dropout masks and augmentation all derive from ``(seed, epoch)`` and ``(seed, step)``,
so a trainer rebuilt from its step count and examples seen continues exactly where it left off.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.data.augment import AugmentConfig, augment_batch
from engine.data.dataset import Dataset, to_float
from engine.losses import LOSSES
from engine.model import Model
from engine.optim import OPTIMIZERS, Optimizer, make_optimizer
from engine.stepview import LayerStats, dead_relu_shares, layer_stats, weight_norms

# (low, high) inclusive bounds, shown in error messages and the API schema.
RANGES: dict[str, tuple[float, float]] = {
    "batch_size": (1, 1024),
    "learning_rate": (1e-6, 10.0),
    "momentum": (0.0, 0.999),
    "weight_decay": (0.0, 1.0),
}


MIN_SHARD_MACS = 40_000_000  # multiply-adds below which a shard's thread costs more than it saves (bench training)
# Steps between two counts of never-firing ReLU units: a count is an extra forward pass on the batch
# (about a third of a step), so counting every step would slow training by a third (bench training).
DEAD_RELU_EVERY = 10


@dataclass(frozen=True)
class Hyperparameters:
    """Everything a step depends on besides the weights; may change between any two steps."""

    batch_size: int = 32
    learning_rate: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    loss: str = "cross_entropy"
    augment: bool = False

    def __post_init__(self):
        for name, (lo, hi) in RANGES.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                raise ValueError(f"{name} must be a number between {lo:g} and {hi:g}, got {v!r}")
        if not isinstance(self.batch_size, int):
            raise ValueError(f"batch_size must be an integer, got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    def replace(self, **changes: Any) -> "Hyperparameters":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StepRecord:
    step: int  # steps done after this one
    epoch: int  # completed epochs
    loss: float
    accuracy: float  # on this step's batch, before the update
    learning_rate: float
    # per weighted layer updated this step (frozen layers absent): gradient norm, update / weight ratio
    layers: dict[int, LayerStats] = field(default_factory=dict)
    # per ReLU layer: share of units that never fire on this step's batch (evaluation mode, the weights
    # before the update); counted every `Trainer.dead_relu_every` steps, None on the others
    dead_relu: dict[int, float] | None = None
    examples_seen: int = 0  # examples seen after this step (epochs are counted from it)


@dataclass(frozen=True)
class Evaluation:
    split: str
    step: int
    loss: float
    accuracy: float
    confusion_matrix: list[list[int]]  # [true class][predicted class]
    per_class_accuracy: list[float | None]  # None for a class with no example
    misclassified: list[dict[str, Any]] = field(default_factory=list)  # {"index", "label", "prediction", "confidence"}
    # [true class][predicted class] -> the first `max_per_cell` example indices of that cell, in split order
    cell_examples: list[list[list[int]]] = field(default_factory=list)


def evaluate_model(model: Model, dataset: Dataset, *, split: str = "test", loss: str = "cross_entropy",
                   step: int = 0, max_examples: int | None = None, max_misclassified: int = 200,
                   max_per_cell: int = 24) -> Evaluation:
    """Loss, accuracy, confusion matrix, per-class accuracy, misclassified indices and, per confusion
    cell, the indices of its first ``max_per_cell`` examples on a split."""
    x, y = dataset.split(split)
    if max_examples is not None:
        x, y = x[:max_examples], y[:max_examples]
    k = dataset.num_classes
    probs = np.concatenate([model.predict_proba(to_float(x[i : i + 256])) for i in range(0, len(x), 256)]) if len(x) else np.zeros((0, k))
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    if len(x) == 0:
        value = float("nan")
    elif loss == "mse":
        target = np.eye(k, dtype=probs.dtype)[y]
        value = float(0.5 * ((probs - target) ** 2).sum() / len(y))
    else:
        value = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
    per_class = confusion.sum(axis=1)
    wrong = np.flatnonzero(pred != y)[:max_misclassified]
    code = np.asarray(y, np.int64) * k + pred  # the cell of each example
    order = np.argsort(code, kind="stable")  # by cell, then index
    starts = np.searchsorted(code[order], np.arange(k * k + 1))
    cells = [[order[starts[t * k + p] : min(starts[t * k + p + 1], starts[t * k + p] + max_per_cell)].tolist()
              for p in range(k)] for t in range(k)]
    return Evaluation(
        split=split,
        step=step,
        loss=value,
        accuracy=float((pred == y).mean()) if len(y) else float("nan"),
        confusion_matrix=confusion.tolist(),
        per_class_accuracy=[float(confusion[c, c] / per_class[c]) if per_class[c] else None for c in range(k)],
        misclassified=[
            {"index": int(i), "label": int(y[i]), "prediction": int(pred[i]), "confidence": float(probs[i, pred[i]])}
            for i in wrong
        ],
        cell_examples=cells,
    )


def shard_count(model: Model, batch_size: int, workers: int) -> int:
    """Parts a batch is split into: at most ``workers``, and none with less than `MIN_SHARD_MACS`
    of work (threads cost more than they save on LeNet-sized steps). Fixed by the model, batch
    size and worker count, so results do not depend on the machine's speed."""
    macs = sum(info.macs for info in model.info) * batch_size
    return int(max(1, min(workers, macs // MIN_SHARD_MACS)))


class Trainer:
    """Trains ``model`` in place on ``dataset``'s train split.

    State is three integers (``seed``, ``step``, ``examples_seen``) plus the optimizer's buffers,
    which `optimizer_state` / `load_optimizer_state` expose for saving.
    """

    def __init__(self, model: Model, dataset: Dataset, hp: Hyperparameters | None = None, *, seed: int = 0,
                 step: int = 0, examples_seen: int = 0, augment_config: AugmentConfig | None = None,
                 workers: int = 1, dead_relu_every: int = DEAD_RELU_EVERY):
        if tuple(dataset.input_shape) != tuple(model.input_shape):
            raise ValueError(f"dataset {dataset.name!r} has inputs {dataset.input_shape}, the model expects {model.input_shape}")
        if model.output_shape != (dataset.num_classes,):
            raise ValueError(f"the model has {model.output_shape} outputs but dataset {dataset.name!r} has {dataset.num_classes} classes")
        self.model = model
        self.dataset = dataset
        self.hp = hp or Hyperparameters()
        self.seed = seed
        self.step = step
        self.examples_seen = examples_seen
        self.augment_config = augment_config or AugmentConfig(flip=dataset.name not in ("digits", "mnist", "fashion-mnist"))
        self.optimizer: Optimizer = self._new_optimizer()
        self.dead_relu_every = max(0, int(dead_relu_every))  # 0: never count
        # What the last step moved each parameter by (`Optimizer.step`'s report) and the step it took
        # the weights to; in memory only, so a rebuilt trainer has none until its first step.
        self.last_update: dict[str, np.ndarray] = {}
        self.last_update_step: int | None = None
        # workers > 1: each batch is split into at least that many parts trained in parallel threads (see
        # Model.loss_and_grads); give NumPy's BLAS one thread each (OPENBLAS_NUM_THREADS=1) then.
        self.workers = max(1, int(workers))
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cnnvis-shard") if self.workers > 1 else None

    def _new_optimizer(self) -> Optimizer:
        hp = self.hp
        return make_optimizer(hp.optimizer, learning_rate=hp.learning_rate, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay)

    @property
    def epoch(self) -> int:
        return self.examples_seen // len(self.dataset.y_train)

    def set_hyperparameters(self, **changes: Any) -> Hyperparameters:
        """Change hyperparameters between steps; switching optimizer starts its buffers afresh."""
        new = self.hp.replace(**changes)
        if new.optimizer != self.hp.optimizer:
            self.hp = new
            self.optimizer = self._new_optimizer()
        else:
            self.hp = new
            self.optimizer.lr = new.learning_rate
            self.optimizer.weight_decay = new.weight_decay
            if hasattr(self.optimizer, "momentum"):
                self.optimizer.momentum = new.momentum
                self.optimizer.nesterov = new.nesterov
        return new

    def batch_indices(self) -> np.ndarray:
        """Indices of the next batch: a per-epoch permutation from ``(seed, epoch)``, wrapping across epochs."""
        n = len(self.dataset.y_train)
        out, pos, need = [], self.examples_seen, self.hp.batch_size
        while need:
            epoch, offset = divmod(pos, n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            take = perm[offset : offset + need]
            out.append(take)
            need -= len(take)
            pos += len(take)
        return np.concatenate(out)

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact batch the next step trains on: ``x: (B, C, H, W)`` float32 (augmented if on), ``y: (B,)``."""
        idx = self.batch_indices()
        x = to_float(self.dataset.x_train[idx])
        if self.hp.augment:
            x = augment_batch(x, self._rng(1), self.augment_config)
        return x, self.dataset.y_train[idx]

    def peek_batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[dict]]]:
        """What `next_batch` returns (the batch step ``step + 1`` trains on), drawn from the same
        ``(seed, epoch)`` permutation and ``(seed, step)`` augmentation stream without advancing,
        plus the train-split ``indices: (B,)`` and per image the transforms applied to it
        (`augment_batch`'s log; empty lists when augmentation is off)."""
        idx = self.batch_indices()
        x = to_float(self.dataset.x_train[idx])
        log: list[list[dict]] = [[] for _ in idx]
        if self.hp.augment:
            x = augment_batch(x, self._rng(1), self.augment_config, log)
        return x, self.dataset.y_train[idx], idx, log

    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.step, stream])

    def train_step(self) -> StepRecord:
        """One mini-batch: forward, loss, backward, one optimizer update; records per-layer norms
        (and, every `dead_relu_every` steps, never-firing ReLU units) without changing the numbers."""
        x, y = self.next_batch()
        res = self.model.loss_and_grads(x, y, loss=self.hp.loss, train=True, rng=self._rng(2),
                                        shards=self.shards(len(y)), executor=self._executor)
        every = self.dead_relu_every
        dead = dead_relu_shares(self.model, x) if every and self.step % every == 0 else None
        norms = weight_norms(self.model.params, res.grads)
        applied = self.optimizer.step(self.model.params, res.grads)
        self.model.apply_buffers(res.buffers)
        self.step += 1
        self.examples_seen += len(y)
        self.last_update, self.last_update_step = applied, self.step
        return StepRecord(
            step=self.step,
            epoch=self.epoch,
            loss=res.loss,
            accuracy=float((res.probabilities.argmax(axis=1) == y).mean()),
            learning_rate=self.hp.learning_rate,
            layers=layer_stats(res.grads, applied, norms),
            dead_relu=dead,
            examples_seen=self.examples_seen,
        )

    def train(self, steps: int, callback: Callable[[StepRecord], None] | None = None) -> list[StepRecord]:
        records = []
        for _ in range(steps):
            rec = self.train_step()
            records.append(rec)
            if callback:
                callback(rec)
        return records

    def shards(self, batch_size: int) -> int:
        return shard_count(self.model, batch_size, self.workers)

    def close(self) -> None:
        """Stop the shard threads (only started when ``workers > 1``)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def evaluate(self, split: str = "test", max_examples: int | None = None) -> Evaluation:
        return evaluate_model(self.model, self.dataset, split=split, loss=self.hp.loss, step=self.step, max_examples=max_examples)

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """Optimizer buffers as flat arrays ``"{param}/{buffer}"`` (copies), for saving next to a checkpoint."""
        return {f"{p}/{k}": v.copy() for p, st in self.optimizer.state.items() for k, v in st.items()}

    def load_optimizer_state(self, arrays: dict[str, np.ndarray]) -> None:
        state: dict[str, dict[str, np.ndarray]] = {}
        for key, v in arrays.items():
            p, _, k = key.partition("/")
            if p not in self.model.params:
                raise ValueError(f"optimizer state for unknown parameter {p!r}")
            state.setdefault(p, {})[k] = np.array(v)
        self.optimizer.state = state
