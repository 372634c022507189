"""Which work runs in worker processes, and what the server sends them: the model, the training state.

Explanations, evaluations and POST /train's steps run in the training worker processes
(`app.workers.jobs`, through `WorkerPool.run_job`; on Ray when the pool is a `RayPool`), as live
training does: each has a core to itself instead of sharing the server's interpreter lock, so N cores
run N of them at full speed while the server only routes, stores and streams.

Forward passes (`app.services.inference`) stay in the server's threads on purpose: a forward takes
about 1 ms of engine time and its latency target is a few ms end to end, which a process hop plus
sending some 0.8 MB of activations back cannot meet.

The model goes as its spec and weights, a dataset as its folder (`DatasetStore.folder`; a worker opens
it itself, a Ray pool puts it in the object store): a whole dataset never goes through the pipe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from app.deps import AppState
from app.errors import Busy
from app.stores import ModelRecord
from app.workers import frames
from app.workers.pool import JobFailed, WorkerGone
from engine.specs import spec_to_dict
from engine.train import Trainer


def model_payload(rec: ModelRecord) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The model for a worker: field ``model`` (``spec``, ``frozen``) and arrays ``m/*`` (weights and
    buffers, copied: not-finite values too, which a checkpoint refuses); hold ``rec.lock``."""
    fields = {"model": {"spec": spec_to_dict(rec.model.spec), "frozen": sorted(rec.model.frozen)}}
    return fields, {f"m/{k}": np.array(v) for k, v in rec.model.state().items()}


def training_state(state: AppState, rec: ModelRecord, trainer: Trainer) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What a worker needs to train as ``trainer`` would: the fields of a ``load`` (the model,
    hyperparameters, seed, step, examples seen, dataset folder) and arrays ``m/*`` and ``o/*``
    (optimizer state); hold ``rec.lock``."""
    fields, arrays = model_payload(rec)
    fields |= {"hp": rec.hp.to_dict(), "seed": rec.seed, "step": rec.step, "examples_seen": rec.examples_seen,
               "dataset_folder": str(state.datasets.folder(rec.dataset))}
    return fields, arrays | {f"o/{k}": v for k, v in trainer.optimizer_state().items()}


def run(state: AppState, kind: str, fields: dict[str, Any], arrays: dict[str, np.ndarray],
        on_progress: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run a ``kind`` job in a worker: its ``result`` header and arrays. A ValueError in the job (a bad
    request the engine found) is raised here as ValueError; a worker that died is `Busy` (503)."""
    try:
        return state.live.pool.run_job({"kind": kind, **fields}, arrays, on_progress)
    except WorkerGone as e:
        raise Busy(f"{e}; try again") from None
    except JobFailed as e:
        if e.error == "ValueError":
            raise ValueError(str(e)) from None
        raise RuntimeError(f"the {kind} job failed in its worker: {e.error}: {e}") from None


def body(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """A result's ``body`` with its arrays put back where they were (`app.workers.frames.join`)."""
    return frames.join(header["body"], arrays)
