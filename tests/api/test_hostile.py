"""Hostile inputs (issue 11, "No 500s"): each is a documented 4xx with a message a person can act on."""

from __future__ import annotations

import io
import logging
import re
import zipfile

import numpy as np
import pytest

from engine.checkpoint import CheckpointError, load_checkpoint
from engine.data.dataset import DatasetError, load_dataset

HUGE = 10**12


def npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    """A version 1.0 ``.npy`` header alone (no data), padded to a multiple of 64 as the format requires."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    body_len = 10 + len(text) + 1
    text += " " * (-body_len % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def huge_checkpoint() -> bytes:
    return zip_of({"spec.npy": npy(np.array("{}")), "classes.npy": npy(np.array(["a"])),
                   "step.npy": npy(np.array(0)), "layers.0.weight.npy": npy_header((HUGE,))})


def import_ckpt(client, data: bytes):
    return client.post("/api/v1/models/import", files={"file": ("x.npz", data, "application/octet-stream")})


# ---- (a) an .npy header declaring 10**12 values ------------------------------------------------
def test_engine_refuses_a_huge_declared_array_before_reading():
    with pytest.raises(CheckpointError, match="too large"):
        load_checkpoint(huge_checkpoint())


def test_import_of_a_huge_declared_array_is_422(client):
    r = import_ckpt(client, huge_checkpoint())
    assert r.status_code in (413, 422), r.text
    assert "too large" in r.json()["detail"]


def test_dataset_file_with_a_huge_declared_array(tmp_path):
    path = tmp_path / "bad.npz"
    members = {k: npy(np.array(k)) for k in ("name",)}
    members |= {"classes.npy": npy(np.array(["a", "b"])), "x_train.npy": npy_header((HUGE, 1, 1, 1), "|u1"),
                "y_train.npy": npy(np.zeros(1, np.int64)), "x_test.npy": npy(np.zeros((1, 1, 1, 1), np.uint8)),
                "y_test.npy": npy(np.zeros(1, np.int64)), "name.npy": npy(np.array("bad"))}
    members.pop("name")
    path.write_bytes(zip_of(members))
    with pytest.raises(DatasetError, match="too large"):
        load_dataset(path)


# ---- (b) 100,000 nested brackets -----------------------------------------------------------------
DEEP = '{"spec": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize("url", ["/api/v1/models", "/api/v1/specs/validate"])
def test_deeply_nested_json_is_422(client, url):
    r = client.post(url, content=DEEP, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert "nested" in r.json()["detail"]


def test_deep_but_valid_spec_dict_is_422(client):
    spec: dict = {}
    for _ in range(200):
        spec = {"a": spec}
    r = client.post("/api/v1/models", json={"spec": {"input_shape": [1, 8, 8], "layers": [], "x": spec}})
    assert r.status_code == 422, r.text


# ---- (c) an npz member that is not .npy ----------------------------------------------------------
def test_checkpoint_with_a_text_member_is_422(client):
    r = import_ckpt(client, zip_of({"spec.txt": b"hello"}))
    assert r.status_code == 422, r.text
    assert "checkpoint" in r.json()["detail"]


def test_checkpoint_with_a_garbage_npy_member_is_422(client):
    data = zip_of({"spec.npy": b"not an npy", "classes.npy": b"x", "step.npy": b"y"})
    r = import_ckpt(client, data)
    assert r.status_code == 422, r.text


# ---- (d) a NUL byte or a very long path ----------------------------------------------------------
@pytest.mark.parametrize("path", ["a\x00b", "x" * 300, "/".join(["y" * 200] * 5)])
def test_import_path_nul_or_too_long_is_4xx(client, path):
    r = client.post("/api/v1/datasets/import", json={"format": "folder", "path": path, "name": "hostile"})
    assert r.status_code in (404, 422), r.text
    assert r.json()["detail"]


# ---- (e) an unexpected error is logged with an id and keeps the connection usable ------------------
def test_unexpected_error_has_an_id_and_the_next_request_works(client, caplog):
    def boom():
        raise RuntimeError("secret internals")

    # The fixture's TestClient re-raises whatever escapes the app, as uvicorn would then close the connection:
    # reaching the asserts shows the error was answered inside the app.

    client.app.add_api_route("/api/v1/boom-test", boom, methods=["GET"])
    with caplog.at_level(logging.ERROR, logger="cnnvis"):
        r = client.get("/api/v1/boom-test")
    assert r.status_code == 500
    m = re.fullmatch(r"internal error ([0-9a-f]{8}); it was logged", r.json()["detail"])
    assert m, r.text
    assert "secret" not in r.text
    assert any(m.group(1) in rec.getMessage() for rec in caplog.records)
    assert client.get("/api/v1/health").status_code == 200


# ---- (f) integers stay below 2**53 ---------------------------------------------------------------
@pytest.mark.parametrize("body", [{"steps": 2**53}, {"steps": 10**30}, {"batch_size": 2**53}])
def test_train_integers_too_big_are_422(client, small_model, body):
    r = client.post(f"/api/v1/models/{small_model['id']}/train", json=body)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("body", [{"frozen": [2**53]}, {"training": {"batch_size": 10**20}}])
def test_patch_integers_too_big_are_422(client, small_model, body):
    r = client.patch(f"/api/v1/models/{small_model['id']}", json=body)
    assert r.status_code == 422, r.text


def test_sample_index_too_big_is_422(client, small_model):
    r = client.post(f"/api/v1/models/{small_model['id']}/forward", json={"sample": {"split": "test", "index": 2**60}})
    assert r.status_code == 422, r.text


def test_checkpoint_step_beyond_doubles_is_refused(tmp_path):
    from engine.checkpoint import checkpoint_bytes
    from engine.model import Model
    from engine.specs import parse_spec
    from tests.api.conftest import SMALL_SPEC

    data = checkpoint_bytes(Model.build(parse_spec(SMALL_SPEC), seed=0), classes=[str(i) for i in range(10)], step=2**53)
    with pytest.raises(CheckpointError, match="step"):
        load_checkpoint(data)
