"""One-shot jobs in a worker process: an explanation, an evaluation, a run of training steps.

A ``job`` command (`app.workers.train_worker`) names its ``kind`` and carries what the kind needs;
every kind gets the model (field ``model``: ``spec``, ``frozen``; arrays ``m/*``: weights and
buffers, see `model_of`) and opens a dataset itself from ``dataset_folder`` (a dataset never goes
through the pipe). The worker answers ``progress``
frames while the job runs (``done``, ``total``: an explanation's occlusion batches), then one
``result`` (``body``: JSON, its arrays as frame arrays, `app.workers.frames.split`) or one
``job_error`` (``error``: the exception's type name, ``detail``: its message).

- ``explain``: ``request`` (an `ExplainRequest` as JSON), ``classes``; arrays ``x: (C, H, W)`` ->
  the explain response of `app.services.attribution.compute`.
- ``evaluate``: ``split``, ``loss``, ``step``, ``max_examples`` -> the fields of `engine.train.Evaluation`.
- ``train``: the fields of a ``load`` (``hp``, ``seed``, ``step``, ``examples_seen``, ``dataset_folder``;
  arrays ``o/*``) and ``steps`` -> ``records`` (`record_json` each), ``last_update_step``; arrays
  ``w/*`` (weights and buffers), ``o/*`` (optimizer state), ``u/*`` (the last update).

A job builds its own model and trainer: the worker's live trainer, if any, is not touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from app.workers import frames
from engine.data.dataset import Dataset
from engine.model import Model
from engine.stepview import LayerStats
from engine.train import Hyperparameters, StepRecord, Trainer, evaluate_model

Progress = Callable[[int, int], None]
Result = tuple[dict[str, Any], Any, dict[str, np.ndarray]]  # (header fields, body with arrays anywhere, arrays)


def record_json(r: StepRecord) -> dict[str, Any]:
    """A step record as JSON (NaN stays NaN: both ends are ours)."""
    return {"step": r.step, "epoch": r.epoch, "examples_seen": r.examples_seen, "loss": r.loss, "accuracy": r.accuracy,
            "learning_rate": r.learning_rate, "layers": {str(i): [s.grad_norm, s.update_ratio] for i, s in r.layers.items()},
            "dead_relu": None if r.dead_relu is None else {str(i): v for i, v in r.dead_relu.items()}}


def record_from_json(d: dict[str, Any]) -> StepRecord:
    dead = d.get("dead_relu")
    return StepRecord(step=d["step"], epoch=d["epoch"], examples_seen=d["examples_seen"], loss=d["loss"],
                      accuracy=d["accuracy"], learning_rate=d["learning_rate"],
                      layers={int(i): LayerStats(g, u) for i, (g, u) in d["layers"].items()},
                      dead_relu=None if dead is None else {int(i): v for i, v in dead.items()})


def model_of(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Model:
    """The model a command carries: ``model`` (``spec``, ``frozen``) and arrays ``m/*``."""
    model = Model.build(header["model"]["spec"])
    model.load_state({k[2:]: v for k, v in arrays.items() if k.startswith("m/")})  # copied in
    model.set_frozen(header["model"]["frozen"])
    return model


def trainer_of(header: dict[str, Any], arrays: dict[str, np.ndarray], dataset: Dataset) -> Trainer:
    """The trainer a ``load`` (or a ``train`` job) describes, its optimizer state restored."""
    trainer = Trainer(model_of(header, arrays), dataset, Hyperparameters(**header["hp"]), seed=header["seed"],
                      step=header["step"], examples_seen=header["examples_seen"])
    opt = {k[2:]: v for k, v in arrays.items() if k.startswith("o/")}
    if opt:
        trainer.load_optimizer_state(opt)
    return trainer


def explain_job(header: dict[str, Any], arrays: dict[str, np.ndarray], dataset: Callable[[str], Dataset],
                progress: Progress) -> Result:
    from app.schemas import ExplainRequest  # imported by the first explanation, not by every live-training worker
    from app.services.attribution import compute

    body = ExplainRequest.model_validate(header["request"])
    return {}, compute(model_of(header, arrays), arrays["x"], body, header["classes"], progress), {}


def evaluate_job(header: dict[str, Any], arrays: dict[str, np.ndarray], dataset: Callable[[str], Dataset],
                 progress: Progress) -> Result:
    ev = evaluate_model(model_of(header, arrays), dataset(header["dataset_folder"]), split=header["split"], loss=header["loss"],
                        step=header["step"], max_examples=header["max_examples"])
    return {}, dataclasses.asdict(ev), {}


def train_job(header: dict[str, Any], arrays: dict[str, np.ndarray], dataset: Callable[[str], Dataset],
              progress: Progress) -> Result:
    t = trainer_of(header, arrays, dataset(header["dataset_folder"]))
    records = t.train(header["steps"])
    out = {f"w/{k}": v for k, v in t.model.state().items()} | {f"o/{k}": v for k, v in t.optimizer_state().items()}
    out |= {f"u/{k}": v for k, v in t.last_update.items()}
    return {"records": [record_json(r) for r in records], "last_update_step": t.last_update_step}, None, out


KINDS = {"explain": explain_job, "evaluate": evaluate_job, "train": train_job}


def run(header: dict[str, Any], arrays: dict[str, np.ndarray], dataset: Callable[[str], Dataset],
        send: Callable[[dict[str, Any], dict[str, np.ndarray] | None], None]) -> None:
    """Run the job in ``header`` and answer it through ``send(header, arrays)``: progress, then one
    ``result`` or ``job_error``. ``dataset(folder)`` opens (or reuses) a dataset."""
    try:
        job = KINDS[header["kind"]]

        def progress(done: int, total: int) -> None:
            send({"op": "progress", "done": done, "total": total}, None)

        head, body, out = job(header, arrays, dataset, progress)
        body, body_arrays = frames.split(body)
    except Exception as e:  # noqa: BLE001  the server decides what the client hears (a ValueError is a bad request)
        send({"op": "job_error", "error": type(e).__name__, "detail": str(e)}, None)
        return
    send({"op": "result", **head, "body": body}, out | body_arrays)

