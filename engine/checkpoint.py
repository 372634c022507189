"""Checkpoints: one ``.npz`` readable with ``np.load(path, allow_pickle=False)``.

Keys: ``spec`` (JSON string), ``classes`` (unicode array), ``step`` (int64), ``meta`` (JSON string:
name, dataset, hyperparameters, frozen layers, anything the caller adds), and ``layers.{i}.weight`` /
``layers.{i}.bias`` in PyTorch layouts.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.fileio import atomic_write, check_npz
from engine.model import Model
from engine.specs import SpecError, parse_spec, spec_to_dict

_RESERVED = {"spec", "classes", "step", "meta"}
MAX_CHECKPOINT_ARRAYS = 256
MAX_CHECKPOINT_BYTES = 2**31  # all arrays together, as declared in their headers (checked before reading)
MAX_STEP = 2**53 - 1  # the browser's numbers are doubles


class CheckpointError(ValueError):
    """A file that is not a checkpoint of ours, or whose arrays do not fit its spec."""


@dataclass
class Checkpoint:
    model: Model
    classes: list[str]
    step: int
    meta: dict[str, Any] = field(default_factory=dict)


def checkpoint_bytes(model: Model, *, classes: list[str], step: int, meta: dict[str, Any] | None = None) -> bytes:
    """Serialise to ``.npz`` bytes (no pickle: strings are stored as unicode arrays)."""
    arrays: dict[str, np.ndarray] = {
        "spec": np.array(json.dumps(spec_to_dict(model.spec))),
        "classes": np.array(list(classes), dtype=np.str_),
        "step": np.array(int(step), dtype=np.int64),
        "meta": np.array(json.dumps({"frozen": sorted(model.frozen), **(meta or {})})),
    }
    arrays.update({name: np.ascontiguousarray(p, dtype=np.float32) for name, p in model.state().items()})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_checkpoint(path: str | Path, model: Model, *, classes: list[str], step: int, meta: dict[str, Any] | None = None) -> None:
    """Save atomically (temp file + ``os.replace``)."""
    atomic_write(path, checkpoint_bytes(model, classes=classes, step=step, meta=meta))


def load_checkpoint(source: str | Path | bytes | IO[bytes], *, max_parameters: int | None = None,
                    max_values: int | None = None) -> Checkpoint:
    """Load and validate: the spec must parse, and every array's name and shape must match it.

    ``max_parameters`` / ``max_values`` refuse (before allocating) a spec too big to hold, as `Model.build`;
    ``max_parameters`` also caps the bytes the arrays may declare (headers are checked before any data is read).
    """
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    if not zipfile.is_zipfile(source):  # np.load would take other bytes for a pickle and suggest unpickling
        raise CheckpointError("not a .npz checkpoint (a .npz file is a zip archive of .npy arrays)")
    if hasattr(source, "seek"):
        source.seek(0)
    max_bytes = MAX_CHECKPOINT_BYTES if max_parameters is None else min(MAX_CHECKPOINT_BYTES, 4 * max_parameters + 2**24)
    try:
        check_npz(source, max_bytes=max_bytes)
        with np.load(source, allow_pickle=False) as npz:
            names = list(npz.files)
            if len(names) > MAX_CHECKPOINT_ARRAYS:
                raise CheckpointError(f"too many arrays ({len(names)}) for a checkpoint")
            missing = sorted(_RESERVED - {"meta"} - set(names))
            if missing:
                raise CheckpointError(f"not a cnn-visualizer checkpoint: missing {missing}")
            data = {name: npz[name] for name in names}
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise CheckpointError(f"not a readable .npz checkpoint: {e}") from None
    try:
        spec = parse_spec(json.loads(str(data["spec"])))
        model = Model.build(spec, max_parameters=max_parameters, max_values=max_values)
    except (json.JSONDecodeError, SpecError) as e:
        raise CheckpointError(f"checkpoint spec is invalid: {e}") from None
    params = {k: v for k, v in data.items() if k not in _RESERVED}
    for name, arr in params.items():
        if arr.dtype.kind != "f":
            raise CheckpointError(f"{name}: expected floating-point weights, got {arr.dtype}")
        if not np.isfinite(arr).all():
            raise CheckpointError(f"{name}: contains NaN or infinity")
    try:
        model.load_state(params)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    classes = [str(c) for c in np.atleast_1d(data["classes"]).tolist()]
    if classes and len(classes) != int(np.prod(model.output_shape)):
        raise CheckpointError(f"{len(classes)} class names for a model with {model.output_shape[0]} outputs")
    try:
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
        model.set_frozen(meta.get("frozen", []))
    except (json.JSONDecodeError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint meta is invalid: {e}") from None
    step = data["step"]
    if step.shape != () or step.dtype.kind not in "iu" or not 0 <= int(step) <= MAX_STEP:
        raise CheckpointError(f"step must be a non-negative integer scalar, at most {MAX_STEP}")
    return Checkpoint(model=model, classes=classes, step=int(step), meta=meta)
