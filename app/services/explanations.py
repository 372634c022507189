"""Attribution maps for one image and any class, their overlay picture and their two checks: the
explain routes' one call each.

The map runs in a worker process (`app.services.jobs`; `app.services.attribution.compute` there) on
the weights as they were when the request came, so training may go on. Each method's engine function
is named once in `attribution.runner`; what the wire carries:

- ``map``: ``(H, W)`` at input resolution; a ``(C, H, W)`` method is summed over channels (signed),
  ``channels`` then holds the engine's own ``(C, H, W)`` map.
- ``overlay_png``: the map coloured (diverging rdbu when signed, sequential viridis otherwise) over
  the input, each pixel's colour weighted by ``|value| / max |value|``; base64 PNG of the input's size.
- ``checks.randomization``: the same method on a copy with freshly initialized weights (seed
  ``seed``), its ``(H, W)`` map and the rank correlation of the two maps' absolute values.
- ``checks.deletion``: the target's probability as the most-attributed pixels are set to zero.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np

from app.deps import AppState
from app.encoding import to_json
from app.errors import AppError, Invalid
from app.schemas import ExplainRequest
from app.services import jobs
from app.stores import ModelRecord
from engine import explain
from engine.model import Model

log = logging.getLogger("cnnvis")
MAX_PLACEMENTS = 1024  # occlusion: forward passes one request may ask for


def check_occlusion_size(body: ExplainRequest, x: np.ndarray) -> None:
    if body.method != "occlusion":
        return
    _, h, w = x.shape
    patch = min(body.patch, h, w)
    n = ((h - patch) // body.stride + 1) * ((w - patch) // body.stride + 1)
    if n > MAX_PLACEMENTS:
        raise Invalid(f"occlusion with patch {body.patch} and stride {body.stride} needs {n} forward passes; "
                      f"at most {MAX_PLACEMENTS}: choose a larger stride")


def _prepare(state: AppState, rec: ModelRecord, x: np.ndarray, body: ExplainRequest,
             check: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The explain job's fields and arrays (the model as it is now); with ``check``, a bad target or
    layer is a 422 first."""
    check_occlusion_size(body, x)
    with rec.lock.hold(state.settings.lock_wait_s):
        if check:
            check_target(rec.model, x, body)
        fields, arrays = jobs.model_payload(rec)
        return fields | {"request": body.model_dump(mode="json"), "classes": list(rec.classes)}, arrays | {"x": x}


def check_target(model: Model, x: np.ndarray, body: ExplainRequest) -> None:
    """Invalid (422) for a target or Grad-CAM layer the model does not have; hold the model's lock."""
    try:
        explain.resolve_target(model, x, body.target)
        if body.method in ("grad_cam", "guided_grad_cam"):
            layer = explain.last_conv_index(model) if body.layer is None else body.layer
            if not 0 <= layer < len(model.info) or len(model.info[layer].output_shape) != 3:
                raise ValueError(f"layer {layer} has no feature maps; choose a conv or pooling layer")
    except ValueError as e:
        raise Invalid(str(e)) from None


def explain_map(state: AppState, rec: ModelRecord, x: np.ndarray, body: ExplainRequest) -> dict[str, Any]:
    """The explain response, computed in one CPU slot, in a worker process."""
    fields, arrays = _prepare(state, rec, x, body)
    with state.cpu.slot():
        try:
            return jobs.body(*jobs.run(state, "explain", fields, arrays))
        except ValueError as e:
            raise Invalid(str(e)) from None


def explain_stream(state: AppState, rec: ModelRecord, x: np.ndarray, body: ExplainRequest) -> Iterator[bytes]:
    """The same response as NDJSON lines: ``{"done", "total", "pass"}`` as occlusion batches finish
    (pass 1: the map; pass 2: the randomized copy's), then ``{"result": {...}}`` or ``{"error": "..."}``.

    The CPU slot is taken here (a busy server answers 503 before the stream starts), the target and
    layer are checked first (422), and a thread waits for the worker process, passing its progress
    on; it releases the slot when the job ends even if the client has gone.
    """
    fields, arrays = _prepare(state, rec, x, body, check=True)
    stack = ExitStack()
    stack.enter_context(state.cpu.slot())
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    seen = {"pass": 0, "done": 0}

    def progress(p: dict[str, Any]) -> None:
        done, total = p["done"], p["total"]
        if seen["pass"] == 0 or done <= seen["done"]:  # occlusion started again: the randomized copy's pass
            seen["pass"] += 1
        seen["done"] = done
        lines.put({"done": done, "total": total, "pass": seen["pass"]})

    def work() -> None:
        try:
            lines.put({"result": to_json(jobs.body(*jobs.run(state, "explain", fields, arrays, progress)))})
        except ValueError as e:  # the stream has begun: an error becomes its last line
            lines.put({"error": str(e)})
        except AppError as e:  # the worker process died
            lines.put({"error": e.detail})
        except Exception:  # noqa: BLE001
            log.exception("explain stream failed")
            lines.put({"error": "the explanation failed; the server log has the details"})
        finally:
            stack.close()
            lines.put(None)

    threading.Thread(target=work, name="explain-stream", daemon=True).start()
    return _lines(lines)


def _lines(lines: queue.Queue) -> Iterator[bytes]:
    while (item := lines.get()) is not None:
        yield (json.dumps(item) + "\n").encode()
