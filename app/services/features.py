"""What a unit looks for, for the routes: the top-9 pass over a model's dataset (cached, with
progress), the deconvnet projections of those activations, and activation maximization.

One pass up to a layer yields every channel's top 9 (`engine.features.layer_top_activations`), so
the cache holds one entry per (model, layer). An entry is valid while the model object, its step
and its dataset are the ones it was computed from: a training step moves the step, a reset swaps
the model object (even at step 0), a PATCH of the dataset changes the name. The pass runs on a copy
of the weights taken under the model's lock, so live training goes on meanwhile.

Progress is real: ``POST .../top`` runs the pass in its request (in a CPU slot) and writes
``done``/``total`` after each chunk; ``GET .../top`` reads them meanwhile from another request (and
the result once done). A second POST while a pass runs does not start another: it answers
"running" at once. Dreams (activation maximization) report progress the same way.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.deps import AppState
from app.errors import Conflict, Invalid, NotFound
from app.services.training import finite
from app.stores import ModelRecord
from engine import features
from engine.data.images import array_to_png
from engine.model import Model

TOP_K = 9
MAX_IMAGES = 60_000  # images per pass, at most (the first ones of the train split)
MAX_ENTRIES = 32  # cached layers, all models together (oldest dropped first)
SPLIT = "train"


@dataclass(eq=False)
class Job:
    """One pass (top 9 of a layer) or one dream; fields written by the running request, read by others."""

    source: Model  # rec.model when it started: a reset replaces the object
    step: int
    dataset: str | None
    total: int
    done: int = 0
    status: str = "running"  # running | done | failed
    detail: str | None = None
    model: Model | None = None  # the copy it ran on (deconv projections use the same weights)
    top: features.LayerTop | None = None
    images: np.ndarray | None = None
    answers: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def current(self, rec: ModelRecord) -> bool:
        return self.source is rec.model and self.step == rec.step and self.dataset == rec.dataset

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


class FeatureService:
    """The cache of top-9 passes and the progress of dreams (one on ``app.state.features``)."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._jobs: OrderedDict[tuple, Job] = OrderedDict()
        self._mutex = threading.Lock()

    def get(self, key: tuple, rec: ModelRecord) -> Job | None:
        with self._mutex:
            job = self._jobs.get(key)
            return job if job is not None and job.current(rec) else None

    def claim(self, key: tuple, rec: ModelRecord, make, *, replace: bool = False) -> tuple[Job, bool]:
        """The current job for ``key``, or a new one from ``make()`` (then True): one pass at a time per
        key. ``replace``: always the new one (a dream is not reused)."""
        with self._mutex:
            job = self._jobs.get(key)
            if not replace and job is not None and job.current(rec) and job.status != "failed":
                return job, False
            job = self._jobs[key] = make()
            self._jobs.move_to_end(key)
            while len(self._jobs) > self.max_entries:
                self._jobs.popitem(last=False)
            return job, True

    def drop(self, key: tuple, job: Job) -> None:
        with self._mutex:
            if self._jobs.get(key) is job:
                del self._jobs[key]


def check_unit(rec: ModelRecord, layer: int, channel: int) -> None:
    """404 for a missing layer or channel, 422 for a layer without maps."""
    try:
        features.check_channel(rec.model, layer, channel)
    except features.MissingUnit as e:
        raise NotFound(str(e)) from None
    except ValueError as e:
        raise Invalid(str(e)) from None


def _png(x: np.ndarray) -> str:
    """``(C, H, W)`` in [0, 1] or uint8 -> base64 PNG (inputs of other than 1 or 3 channels: their mean)."""
    if x.shape[0] not in (1, 3):
        x = x.astype(np.float32).mean(axis=0, keepdims=True) / (255.0 if x.dtype == np.uint8 else 1.0)
    return base64.b64encode(array_to_png(x)).decode("ascii")


def _signed_png(m: np.ndarray) -> str:
    """A signed map around mid-grey: ``0.5 + m / (2 max |m|)``."""
    scale = float(np.abs(m).max())
    return _png(0.5 + m / (2 * scale) if scale > 0 else np.full_like(m, 0.5))


def _status(job: Job | None, layer: int, channel: int, rec: ModelRecord) -> dict[str, Any]:
    if job is None:
        return {"status": "none", "layer": layer, "channel": channel, "step": rec.step, "done": 0, "total": 0}
    body = {"status": job.status, "layer": layer, "channel": channel, "step": job.step, "done": job.done, "total": job.total}
    if job.detail:
        body["detail"] = job.detail
    return body


def _items(state: AppState, job: Job, layer: int, channel: int) -> list[dict[str, Any]]:
    """The channel's top 9 with crops and deconvnet projections (computed once per channel)."""
    if channel in job.answers:
        return job.answers[channel]
    assert job.top is not None and job.model is not None and job.images is not None
    items = []
    with state.cpu.slot():
        for t in job.top.channel(channel):
            top, left, bottom, right = t.box
            pixels = np.asarray(job.images[t.index])
            proj = features.deconv_projection(job.model, features.as_input(job.model, pixels), layer, channel, (t.row, t.col))
            items.append({"index": t.index, "row": t.row, "col": t.col, "value": finite(t.value), "box": list(t.box),
                          "crop": _png(pixels[:, top:bottom, left:right]),
                          "projection": _signed_png(proj[:, top:bottom, left:right])})
    job.answers[channel] = items
    return items


def top_status(state: AppState, service: FeatureService, rec: ModelRecord, layer: int, channel: int) -> dict[str, Any]:
    """``GET .../top``: "none", "running" with done/total, "failed" with detail, or "done" with the items."""
    check_unit(rec, layer, channel)
    job = service.get((rec.id, "top", layer), rec)
    body = _status(job, layer, channel, rec)
    if job is not None and job.status == "done":
        body["items"] = _items(state, job, layer, channel)
    return body


def compute_top(state: AppState, service: FeatureService, rec: ModelRecord, layer: int, channel: int) -> dict[str, Any]:
    """``POST .../top``: run the pass for the current weights unless it is cached or running, then answer as `top_status`."""
    check_unit(rec, layer, channel)
    if rec.dataset is None:
        raise Conflict(f"model {rec.id!r} has no dataset to search; set one with PATCH /api/v1/models/{rec.id}")
    images = state.datasets.get(rec.dataset).split(SPLIT)[0][:MAX_IMAGES]
    key = (rec.id, "top", layer)
    job = service.get(key, rec)
    if job is None or job.status == "failed":
        with rec.lock.hold(state.settings.lock_wait_s):
            source, step, dataset, model = rec.model, rec.step, rec.dataset, rec.model.copy()
        job, new = service.claim(key, rec, lambda: Job(source=source, step=step, dataset=dataset, total=len(images)))
        if new:
            try:
                with state.cpu.slot():
                    job.model, job.images = model, images
                    job.top = features.layer_top_activations(model, images, layer, TOP_K, progress=job.progress)
                job.status = "done"
            except Exception as e:
                job.status, job.detail = "failed", str(e) or type(e).__name__
                service.drop(key, job)
                raise
    return top_status(state, service, rec, layer, channel) if job.current(rec) else _status(job, layer, channel, rec)


def dream_status(service: FeatureService, rec: ModelRecord, layer: int, channel: int) -> dict[str, Any]:
    """``GET .../maximize``: the progress of the running or last dream of this channel for the current weights."""
    check_unit(rec, layer, channel)
    return _status(service.get((rec.id, "dream", layer, channel), rec), layer, channel, rec)


def dream(state: AppState, service: FeatureService, rec: ModelRecord, layer: int, channel: int, *, seed: int,
          steps: int) -> dict[str, Any]:
    """``POST .../maximize``: activation maximization from ``seed``; the image and the unit's mean
    activation on the start image, on mid-grey and on the result."""
    check_unit(rec, layer, channel)
    with rec.lock.hold(state.settings.lock_wait_s):
        model, step = rec.model.copy(), rec.step
        source = rec.model
    key = (rec.id, "dream", layer, channel)
    job, _ = service.claim(key, rec, lambda: Job(source=source, step=step, dataset=rec.dataset, total=steps), replace=True)
    try:
        with state.cpu.slot():
            rng = np.random.default_rng(seed)
            start = features.seed_image(model, rng)
            image = features.activation_maximization(model, layer, channel, rng=rng, start=start, steps=steps,
                                                     progress=job.progress)
            grey = np.full(model.input_shape, 0.5, dtype=model.dtype)
            values = [features.channel_mean(model, x, layer, channel) for x in (start, grey, image)]
        job.status = "done"
    except Exception as e:
        job.status, job.detail = "failed", str(e) or type(e).__name__
        raise
    return {"status": "done", "layer": layer, "channel": channel, "step": step, "seed": seed, "steps": steps,
            "image": _png(image), "before": finite(values[0]), "grey": finite(values[1]), "after": finite(values[2])}
