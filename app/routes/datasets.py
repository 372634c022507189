"""Datasets: the built-ins and uploaded zips of class folders; their facts and sample images."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Path, Response, UploadFile

from app.deps import State, Who
from app.errors import Invalid, NotFound
from app.schemas import ImportDataset
from app.workspaces import EVERYONE
from engine.data.images import array_to_png
from engine.data.shape_infer import MAX_INPUT_SIDE, MIN_INPUT_SIDE

_INFER = "absent: taken from the images (see chosen in the response)"

router = APIRouter(tags=["datasets"])
Name = Annotated[str, Path(max_length=64)]


@router.get("/datasets", summary="Every dataset (built-ins are listed before they are generated)")
def list_datasets(state: State) -> list[dict]:
    return state.datasets.listing()


@router.get("/datasets/{name}", summary="Classes, counts and input shape (generates a built-in on first use)")
def get_dataset(name: Name, state: State) -> dict:
    state.datasets.get(name)
    return state.datasets.summary(name)


@router.delete("/datasets/{name}", status_code=204, summary="Delete an imported dataset (not a built-in, nor one a model trains on)")
def delete_dataset(name: Name, state: State, who: Who) -> Response:
    users = [rec for rec in state.models.list(EVERYONE) if rec.dataset == name]
    visible = [rec.id for rec in users if state.models.visible(rec, who)]
    state.datasets.delete(name, used_by=visible + (["in other workspaces"] if len(visible) < len(users) else []))
    return Response(status_code=204)


@router.get("/datasets/{name}/samples/{split}/{index}.png", summary="One image of a dataset", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def sample_png(name: Name, split: Literal["train", "test"], index: Annotated[int, Path(ge=0, le=10**9)], state: State) -> Response:
    x, y = state.datasets.get(name).split(split)
    if index >= len(y):
        raise NotFound(f"index {index} is out of range: the {split} split of {name!r} has {len(y)} images")
    return Response(array_to_png(x[index]), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/datasets", status_code=201, summary="Import a .zip of class folders (class/file or split/class/file)")
def upload_dataset(state: State, file: Annotated[UploadFile, File(description="a .zip of class folders")],
                   name: Annotated[str, Form(max_length=40, description="lowercase letters, digits, - and _")],
                   channels: Annotated[int | None, Form(ge=1, le=3, description=f"1 (grey) or 3 (RGB); {_INFER}")] = None,
                   height: Annotated[int | None, Form(ge=MIN_INPUT_SIDE, le=MAX_INPUT_SIDE, description=_INFER)] = None,
                   width: Annotated[int | None, Form(ge=MIN_INPUT_SIDE, le=MAX_INPUT_SIDE, description=_INFER)] = None,
                   test_fraction: Annotated[float, Form(ge=0.0, lt=1.0, allow_inf_nan=False)] = 0.2) -> dict:
    if channels == 2:
        raise Invalid("channels must be 1 (grey) or 3 (RGB)")
    with tempfile.NamedTemporaryFile(suffix=".zip", dir=state.settings.tmp_dir) as tmp:
        shutil.copyfileobj(file.file, tmp)
        tmp.flush()
        if not zipfile.is_zipfile(tmp.name):
            raise Invalid("the uploaded file is not a .zip archive; zip a folder that holds one folder per class")
        with state.cpu.slot():
            ds, report = state.datasets.import_files("folder", tmp.name, name, input_shape=(channels, height, width),
                                                     test_fraction=test_fraction)
    return _imported(state, ds, report)


@router.post("/datasets/import", status_code=201,
             summary="Import MNIST / Fashion-MNIST (IDX), CIFAR-10 (binary) or a class-folder tree from files on the server")
def import_dataset(body: ImportDataset, state: State) -> dict:
    path = state.datasets.import_path(body.path)
    with state.cpu.slot():
        ds, report = state.datasets.import_files(body.format, path, body.name, input_shape=(body.channels, body.height, body.width),
                                                 test_fraction=body.test_fraction, seed=body.seed)
    return _imported(state, ds, report)


def _imported(state, ds, report) -> dict:
    """The summary, the files skipped and, for folders, the shape ``chosen`` (why: what was inferred, or "as given")."""
    skipped = [{"file": f, "reason": r} for f, r in report.skipped[:100]] if report else []
    c, h, w = ds.input_shape
    chosen = (report.chosen.as_dict() if report.chosen else {"channels": c, "height": h, "width": w, "why": "as given"}) if report else None
    return {**state.datasets.summary(ds.name), "skipped": skipped, "chosen": chosen}
