"""Training requests: one trainer per model, hyperparameter changes as history events, evaluation.

Every function that touches a record's fields runs while holding ``rec.lock`` (the callers say
which); evaluation works on a copy of the weights taken under the lock, so live training is not
held up while a whole split is scored. Steps and evaluations run in worker processes (`app.services.jobs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from app.deps import AppState
from app.errors import Conflict, Invalid
from app.services import jobs
from app.stores import ModelRecord
from app.stores.history import HistoryReader
from app.workers.jobs import record_from_json
from engine.train import Evaluation, Hyperparameters, StepRecord, Trainer


def finite(x: float) -> float | None:
    """JSON has no NaN or infinity: a diverged loss is sent as null."""
    return float(x) if x is not None and math.isfinite(x) else None


def record_event(rec: ModelRecord, changes: dict[str, Any]) -> None:
    """Mark a change (hyperparameters, frozen layers, import) at the current step; hold ``rec.lock``."""
    rec.history.add("events", {"step": rec.step, "time": time.time(), "changes": changes})


def apply_changes(rec: ModelRecord, changes: dict[str, Any], state: AppState | None = None) -> dict[str, Any]:
    """Apply hyperparameter changes (422 with the allowed range on a bad value, or a batch too large
    for the model when ``state`` is given); hold ``rec.lock``. Returns what actually changed, which
    is also recorded as an event."""
    if not changes:
        return {}
    try:
        new = rec.hp.replace(**changes)
    except (TypeError, ValueError) as e:
        raise Invalid(str(e)) from None
    if state is not None:
        check_batch(state, rec, new)
    diff = {k: getattr(new, k) for k in changes if getattr(new, k) != getattr(rec.hp, k)}
    if diff:
        if rec.trainer is not None:
            rec.trainer.set_hyperparameters(**diff)
        rec.hp = new
        record_event(rec, diff)
    return diff


def trainer_for(state: AppState, rec: ModelRecord) -> Trainer:
    """The model's trainer, made on first use from its saved step and optimizer state; hold ``rec.lock``."""
    if rec.read_only:
        raise Conflict(f"model {rec.id!r} is a shipped, read-only model and cannot be trained; copy it first with "
                       f'POST /api/v1/models {{"from": "{rec.id}"}}')
    if rec.trainer is None:
        if rec.dataset is None:
            raise Conflict(f"model {rec.id!r} has no dataset to train on; PATCH it with a compatible \"dataset\"")
        try:
            trainer = Trainer(rec.model, state.datasets.get(rec.dataset), rec.hp, seed=rec.seed, step=rec.step,
                              examples_seen=rec.examples_seen)
        except ValueError as e:
            raise Conflict(f"model {rec.id!r} cannot train on dataset {rec.dataset!r}: {e}") from None
        if rec.optimizer_state:
            try:
                trainer.load_optimizer_state(rec.optimizer_state)
            except ValueError:
                pass  # a stale buffer set: the optimizer starts afresh
        rec.trainer, rec.optimizer_state = trainer, None
    check_batch(state, rec, rec.hp)
    return rec.trainer


def check_batch(state: AppState, rec: ModelRecord, hp: Hyperparameters) -> None:
    values = sum(math.prod(i.output_shape) for i in rec.model.info)
    limit = max(1, state.settings.max_batch_values // max(values, 1))
    if hp.batch_size > limit:
        raise Invalid(f"batch_size {hp.batch_size} is too large for this model; use at most {limit}")


def layer_fields(r: StepRecord) -> dict[str, dict[str, float | None]]:
    """A step's per-layer figures as history fields keyed by layer index: ``grad_norm`` and
    ``update_ratio`` per weighted layer updated, ``dead_relu`` per ReLU layer on the steps that
    counted it. A field absent (older histories, steps between counts) means not recorded."""
    out: dict[str, dict[str, float | None]] = {}
    if r.layers:
        out["grad_norm"] = {str(i): finite(s.grad_norm) for i, s in r.layers.items()}
        out["update_ratio"] = {str(i): finite(s.update_ratio) for i, s in r.layers.items()}
    if r.dead_relu is not None:
        out["dead_relu"] = {str(i): finite(v) for i, v in r.dead_relu.items()}
    return out


def record_steps(state: AppState, rec: ModelRecord, records: list[StepRecord]) -> None:
    """Append step records to the history (all of them: the next save appends them to the model's
    database); hold ``rec.lock``."""
    now = time.time()
    rec.history.add_steps({"step": r.step, "loss": finite(r.loss), "accuracy": finite(r.accuracy),
                           "learning_rate": r.learning_rate, "epoch": r.epoch, "time": now, **layer_fields(r)}
                          for r in records)
    if records:  # the records say where training is: the trainer may be in a worker process
        last = records[-1]
        rec.step, rec.examples_seen, rec.epoch = last.step, last.examples_seen, last.epoch


def take_optimizer(state: AppState, rec: ModelRecord, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """A worker's optimizer state ``o/*`` (and its last update ``u/*``, when it took the model to its
    current step) become the server's; hold ``rec.lock``."""
    rec.optimizer_state, rec.trainer = {k[2:]: v for k, v in arrays.items() if k.startswith("o/")}, None
    update = {k[2:]: np.array(v) for k, v in arrays.items() if k.startswith("u/")}
    if update and header.get("last_update_step") == rec.step:
        trainer = trainer_for(state, rec)
        trainer.last_update, trainer.last_update_step = update, rec.step


def train(state: AppState, rec: ModelRecord, steps: int, changes: dict[str, Any]) -> dict[str, Any]:
    """POST /train: apply changes, take ``steps`` steps in a worker process (the steps the server's
    trainer would take: a trainer is its seed, step and optimizer state), bring the weights, optimizer
    state and step records back under the model's lock, save. Refused while the model trains live."""
    if steps > state.settings.max_train_steps:
        raise Invalid(f"steps must be between 1 and {state.settings.max_train_steps} per request; use live training for more")
    state.live.refuse_if_playing(rec.id, "train with POST /train")
    with state.cpu.slot(), rec.lock.hold(state.settings.lock_wait_s):
        trainer = trainer_for(state, rec)
        apply_changes(rec, changes, state)
        fields, arrays = jobs.training_state(state, rec, trainer)
        header, arrays = jobs.run(state, "train", fields | {"steps": steps}, arrays)  # the steps, in a worker process
        records = [record_from_json(d) for d in header["records"]]
        rec.model.load_state({k[2:]: v for k, v in arrays.items() if k.startswith("w/")})
        record_steps(state, rec, records)
        take_optimizer(state, rec, header, arrays)
        state.models.save(rec)
        return {"step": rec.step, "epoch": rec.epoch, "examples_seen": rec.examples_seen,
                "loss": [finite(r.loss) for r in records], "accuracy": [finite(r.accuracy) for r in records],
                "learning_rate": rec.hp.learning_rate}


HISTORY_POINTS = 1000  # steps in the page's history: about 115 KB of JSON
LAYER_POINTS = 250  # steps with per-layer figures (several hundred bytes each)


def _history_reader(state: AppState, rec: ModelRecord) -> tuple[HistoryReader, int]:
    with rec.lock.hold(state.settings.lock_wait_s):
        return rec.history.reader(), rec.step


def history(state: AppState, rec: ModelRecord, *, layers: bool, points: int | None, from_step: int | None,
            limit: int) -> dict[str, Any]:
    """GET /history as JSON: downsampled to ``points`` steps (and fewer evaluations and events; see
    `HistoryReader.downsampled`), or with ``from_step`` every step from there on, ``limit`` at a time.
    The model's lock is held only while the reader is made; the database is read after."""
    reader, step = _history_reader(state, rec)
    with reader:
        if from_step is not None:
            body = reader.page(from_step, limit, layers)
        else:
            points = points or (LAYER_POINTS if layers else HISTORY_POINTS)
            body = reader.downsampled(points, layers)
    return {"step": step, **body}


def history_csv(state: AppState, rec: ModelRecord, layers: bool) -> Iterator[str]:
    """GET /history?format=csv: every step, evaluation and event, as CSV text in chunks."""
    return _history_reader(state, rec)[0].csv(layers)


def batch_preview(state: AppState, rec: ModelRecord, count: int) -> dict[str, Any]:
    """The batch the next step (``step + 1``) trains on, not advancing the trainer: its first ``count``
    images ``x: (count, C, H, W)`` (augmented if on), labels, train-split indices and, per image, the
    transforms applied (``[{"name", ...parameters}]``, empty when augmentation is off)."""
    with state.cpu.slot(), rec.lock.hold(state.settings.lock_wait_s):
        x, y, idx, transforms = trainer_for(state, rec).peek_batch()
        step, augment = rec.step, rec.hp.augment
    return {"step": step, "images": x[:count], "labels": y[:count].tolist(), "indices": idx[:count].tolist(),
            "transforms": transforms[:count], "augment": augment, "classes": list(rec.classes)}


def evaluate(state: AppState, rec: ModelRecord, split: str, max_examples: int | None, record: bool = True) -> dict[str, Any]:
    """Score a split on the current weights in a worker process; recorded in the history of writable models."""
    if rec.dataset is None:
        raise Conflict(f"model {rec.id!r} has no dataset to evaluate on; PATCH it with a compatible \"dataset\"")
    folder = str(state.datasets.folder(rec.dataset))
    with rec.lock.hold(state.settings.lock_wait_s):
        fields, arrays = jobs.model_payload(rec)
        fields |= {"dataset_folder": folder, "split": split, "loss": rec.hp.loss, "step": rec.step, "max_examples": max_examples}
    try:
        ev = Evaluation(**jobs.body(*jobs.run(state, "evaluate", fields, arrays)))  # scored in a worker process
    except ValueError as e:
        raise Invalid(str(e)) from None
    out = {
        "type": "evaluation", "split": ev.split, "step": ev.step, "loss": finite(ev.loss), "accuracy": finite(ev.accuracy),
        "confusion_matrix": ev.confusion_matrix, "per_class_accuracy": ev.per_class_accuracy, "classes": list(rec.classes),
        "misclassified": [{**m, "confidence": finite(m["confidence"])} for m in ev.misclassified],
        "cell_examples": ev.cell_examples,  # [true][predicted] -> the first example indices of that cell
    }  # fmt: skip
    if record and not rec.read_only:
        with rec.lock.hold(state.settings.lock_wait_s):
            rec.history.add("evaluations", {k: out[k] for k in ("step", "split", "loss", "accuracy", "per_class_accuracy")} | {"time": time.time()})
            if not state.live.is_playing(rec.id):  # live training saves on its own schedule
                state.models.save(rec)
    return out
