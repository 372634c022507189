"""Creating, copying, changing, resetting, importing and exporting models (the routes' one call each)."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from app.deps import AppState
from app.errors import Conflict, Invalid
from app.schemas import CreateModel, PatchModel, layer_json, model_json
from app.services.training import apply_changes, record_event
from app.stores.models import ModelRecord, record_from_checkpoint
from app.workspaces import new_share_token, share_hash
from engine.checkpoint import CheckpointError, checkpoint_bytes
from engine.model import Model
from engine.presets import PRESETS, preset_spec
from engine.specs import SpecError, layer_to_dict
from engine.train import Hyperparameters


def spec_error(e: SpecError) -> Invalid:
    return Invalid(e.message, layer_index=e.layer_index)


def build(state: AppState, spec: Any, seed: int = 0) -> Model:
    """`Model.build` within the server's size limits; a bad spec is 422 naming the layer."""
    s = state.settings
    try:
        model = Model.build(spec, seed=seed, max_parameters=s.max_parameters, max_values=s.max_activation_values)
    except SpecError as e:
        raise spec_error(e) from None
    out = model.output_shape
    if len(out) != 1 or out[0] < 2:
        last = len(model.layers) - 1
        raise Invalid(f"layer {last} ({model.info[last].type}): the network must end in a vector of at least 2 class "
                      f"scores, but it outputs {list(out)}; end with flatten and dense", layer_index=last)
    return model


def validate_spec(state: AppState, spec: Any) -> dict[str, Any]:
    """A validation result, not an error: an invalid spec is a normal state of an editor being typed in."""
    try:
        model = build(state, spec)
    except Invalid as e:
        return {"valid": False, "detail": e.detail, "layer_index": e.extra.get("layer_index")}
    return {"valid": True, "layers": [layer_json(model, i) for i in model.info], "parameters": model.num_parameters,
            "output_shape": list(model.output_shape)}


def check_dataset(state: AppState, name: str, model: Model) -> dict[str, Any]:
    """The dataset's summary, after checking the model fits it (422 saying how it does not)."""
    if not state.datasets.exists(name):
        raise Invalid(f"no dataset named {name!r}; GET /api/v1/datasets lists them")
    info = state.datasets.summary(name)
    if tuple(info["input_shape"]) != tuple(model.input_shape):
        raise Invalid(f"dataset {name!r} has {info['input_shape']} inputs but the model takes {list(model.input_shape)}")
    if model.output_shape != (info["num_classes"],):
        raise Invalid(f"dataset {name!r} has {info['num_classes']} classes but the model has {model.output_shape[0]} outputs")
    return info


def distinct_name(state: AppState, name: str) -> str:
    """``name``, or ``"name (2)"``, ``"name (3)"``... when a model already has it (new, copied and
    imported models; two requests at the same instant may still pick the same name)."""
    taken = {r.name for r in state.models.list()}
    unique, n = name[:100], 2
    while unique in taken:
        unique, n = f"{name[:92]} ({n})", n + 1
    return unique


def _auto_dataset(state: AppState, model: Model) -> dict[str, Any] | None:
    for name in state.datasets.names():
        try:
            return check_dataset(state, name, model)
        except Invalid:
            continue
    return None


def create(state: AppState, req: CreateModel) -> ModelRecord:
    state.quota.check_models(state.models.count())  # before building; the store checks again as it adds
    rid = state.models.new_id()
    if req.from_ is not None:
        return copy_model(state, state.models.get(req.from_), rid, req)
    hp = Hyperparameters(loss=req.loss or "cross_entropy")
    if req.preset is not None:
        preset = PRESETS.get(req.preset)
        if preset is None:
            raise Invalid(f"unknown preset {req.preset!r}; known presets: {', '.join(PRESETS)}")
        dataset = req.dataset or preset.default_dataset
        if not state.datasets.exists(dataset):
            raise Invalid(f"no dataset named {dataset!r}; GET /api/v1/datasets lists them")
        info = state.datasets.summary(dataset)
        spec = preset_spec(preset.name, tuple(info["input_shape"]), info["num_classes"])
        model = build(state, spec, req.seed)
        hp, name = hp.replace(learning_rate=preset.learning_rate), req.name or f"{preset.title} on {dataset}"
    else:
        model = build(state, req.spec, req.seed)
        info = check_dataset(state, req.dataset, model) if req.dataset else _auto_dataset(state, model)
        name = req.name or "Custom network"
    classes = list(info["classes"]) if info else [str(i) for i in range(model.output_shape[0])]
    rec = ModelRecord(id=rid, name=distinct_name(state, name), model=model, classes=classes, dataset=info["name"] if info else None, hp=hp, seed=req.seed)
    return state.models.add(rec)


def copy_model(state: AppState, src: ModelRecord, rid: str, req: CreateModel) -> ModelRecord:
    """A writable copy in the copier's workspace: weights, frozen layers, step, history and optimizer state
    (a model shared by link whose dataset its owner imported gets one of the copier's). With ``transfer``:
    transfer learning to ``req.dataset`` (other classes or input size): the source's layers up to its
    last one with feature maps ``(C, H, W)`` are kept with their weights and frozen, followed by a new
    head (flatten, dense sized for the dataset's classes, softmax if the source had one) drawn from
    ``req.seed``; step and history start afresh. Conv weights depend on the input's channels, so a
    dataset with other channels is refused (422); another height and width is fine where the kept
    layers still fit."""
    if req.transfer:
        if not state.datasets.exists(req.dataset):
            raise Invalid(f"no dataset named {req.dataset!r}; GET /api/v1/datasets lists them")
        info = state.datasets.summary(req.dataset)
        with src.lock.hold(state.settings.lock_wait_s):
            source = src.model.copy()
        keep = 0
        while keep < len(source.info) and len(source.info[keep].output_shape) == 3:
            keep += 1
        if keep == 0:
            raise Invalid(f"model {src.id!r} has no layers with feature maps to keep (its first layer outputs a vector)")
        channels = tuple(info["input_shape"])[0]
        if channels != source.input_shape[0]:
            raise Invalid(f"dataset {req.dataset!r} has {channels}-channel images but model {src.id!r} takes "
                          f"{source.input_shape[0]} channels; its first convolution's weights are sized for those, "
                          f"so transfer to a dataset with {source.input_shape[0]} channels")
        head = [{"type": "flatten"}, {"type": "dense", "units": int(info["num_classes"])}]
        spec = {"input_shape": list(info["input_shape"]),
                "layers": [layer_to_dict(lay) for lay in source.spec.layers[:keep]] + head + ([{"type": "softmax"}] if source.ends_with_softmax else [])}
        model = build(state, spec, req.seed)
        own = model.state()
        for name, arr in source.state().items():
            if int(name.split(".")[1]) < keep:
                own[name][...] = arr
        model.set_frozen([i for i in range(keep) if model.layers[i].params])
        rec = ModelRecord(id=rid, name=req.name or f"{src.name} → {req.dataset}", model=model, classes=list(info["classes"]),
                          dataset=info["name"], hp=src.hp.replace(loss=req.loss or src.hp.loss), seed=req.seed)
        record_event(rec, {"transfer": {"from": src.id, "kept_layers": keep, "frozen": sorted(model.frozen)}})
        return state.models.add(rec)
    with src.lock.hold(state.settings.lock_wait_s):
        rec = ModelRecord(
            id=rid, name=distinct_name(state, req.name or f"{src.name} (copy)"), model=src.model.copy(), classes=list(src.classes),
            dataset=src.dataset, hp=src.hp, seed=src.seed, step=src.step, examples_seen=src.examples_seen,
            epoch=src.epoch, history=copy.deepcopy(src.history),
            optimizer_state=src.trainer.optimizer_state() if src.trainer is not None else src.optimizer_state,
            copied_from=src.id,
        )  # fmt: skip
    if req.dataset is not None:
        rec.dataset = check_dataset(state, req.dataset, rec.model)["name"]
    elif rec.dataset is not None and not state.datasets.exists(rec.dataset):
        # a model shared by link, on a dataset its owner imported: that stays theirs, so the copy takes
        # a dataset of the copier's that fits (as an imported checkpoint does), or none
        rec.dataset = (_auto_dataset(state, rec.model) or {}).get("name")
        record_event(rec, {"dataset": rec.dataset or "none"})
    if req.loss is not None:
        rec.hp = rec.hp.replace(loss=req.loss)
    return state.models.add(rec)


def writable(rec: ModelRecord, doing: str = "change") -> None:
    if rec.read_only:
        what = "shared with you read-only" if rec.owner else "a shipped, read-only model"
        raise Conflict(f"model {rec.id!r} is {what} and cannot {doing}; copy it first with "
                       f'POST /api/v1/models {{"from": "{rec.id}"}}')


def share(state: AppState, rec: ModelRecord) -> dict[str, Any]:
    """A new share-link token for the model (the previous one stops working): ``?share=<token>`` or the
    ``X-Share-Token`` header then reads it, read-only. Only its workspace (or the teacher) may share it."""
    if not state.settings.workspaces:
        raise Conflict("this server has no workspaces (CNNVIS_WORKSPACES=1 turns them on): every model is visible to everyone already")
    writable(rec, "be shared")
    token = new_share_token()
    with rec.lock.hold(state.settings.lock_wait_s):
        rec.share = share_hash(token)
        state.models.save(rec)
    return {"model_id": rec.id, "token": token, "query": f"share={token}"}


def patch(state: AppState, rec: ModelRecord, req: PatchModel) -> dict[str, Any]:
    writable(rec)
    with rec.lock.hold(state.settings.lock_wait_s):
        if req.name is not None:
            rec.name = req.name
        if req.dataset is not None and req.dataset != rec.dataset:
            rec.dataset = check_dataset(state, req.dataset, rec.model)["name"]
            if rec.trainer is not None:
                rec.optimizer_state, rec.trainer = rec.trainer.optimizer_state(), None
        if req.training is not None:
            apply_changes(rec, req.training.changes(), state)
        if req.frozen is not None and sorted(req.frozen) != sorted(rec.model.frozen):
            try:
                rec.model.set_frozen(req.frozen)
            except ValueError as e:
                raise Invalid(str(e)) from None
            record_event(rec, {"frozen": sorted(rec.model.frozen)})
        state.models.save(rec)
        body = model_json(rec)
    state.live.notify(rec.id)
    return body


def reset(state: AppState, rec: ModelRecord, seed: int | None) -> dict[str, Any]:
    """New weights from ``seed`` (default random); step, history and optimizer start afresh."""
    writable(rec, "be reset")
    state.live.refuse_if_playing(rec.id, "reset")
    seed = secrets.randbelow(2**32) if seed is None else seed
    with rec.lock.hold(state.settings.lock_wait_s):
        model = build(state, rec.model.spec, seed)
        model.set_frozen(rec.model.frozen)
        rec.model, rec.seed, rec.step, rec.examples_seen, rec.epoch = model, seed, 0, 0, 0
        rec.trainer, rec.optimizer_state = None, None
        rec.history = {"steps": [], "evaluations": [], "events": []}
        state.models.save(rec)
        return model_json(rec)


def delete(state: AppState, rec: ModelRecord) -> None:
    """Delete a model, also one training live: its training stops first, unsaved, and its socket is
    closed with 4410 "model deleted" once the model is gone."""
    writable(rec, "be deleted")
    with state.live.deleting(rec.id), rec.lock.hold(state.settings.lock_wait_s):
        state.models.delete(rec)


def export_checkpoint(state: AppState, rec: ModelRecord) -> tuple[bytes, str]:
    """``(npz bytes, file name)``."""
    with rec.lock.hold(state.settings.lock_wait_s):
        meta = {k: v for k, v in rec.meta().items() if k not in rec.access()}  # no workspace id or share hash
        data = checkpoint_bytes(rec.model, classes=rec.classes, step=rec.step, meta=meta)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", rec.name).strip("-.")[:60] or rec.id
    return data, f"{safe}.npz"


def import_checkpoint(state: AppState, data: bytes, filename: str | None) -> ModelRecord:
    s = state.settings
    state.quota.check_models(state.models.count())
    rid = state.models.new_id()
    try:
        rec = record_from_checkpoint(rid, data, read_only=False, max_parameters=s.max_parameters, max_values=s.max_activation_values)
    except CheckpointError as e:
        raise Invalid(f"not a usable checkpoint: {e}") from None
    if rec.name == rid and filename:
        rec.name = filename.rsplit(".", 1)[0][:100] or rid
    rec.name, rec.copied_from = distinct_name(state, rec.name), None  # a file says nothing trustworthy about ids here
    info = None
    if rec.dataset:
        try:
            info = check_dataset(state, rec.dataset, rec.model)
        except Invalid:
            info = None
    rec.dataset = info["name"] if info else (_auto_dataset(state, rec.model) or {}).get("name")
    record_event(rec, {"imported": filename or "checkpoint"})
    return state.models.add(rec)
