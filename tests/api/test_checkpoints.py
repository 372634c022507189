"""Checkpoint download and import."""

from __future__ import annotations

import io

import numpy as np

from engine.checkpoint import load_checkpoint
from tests.api.conftest import SHIPPED_ID, make_settings, open_client

API = "/api/v1"


def _import(c, data: bytes, name: str = "model.npz"):
    return c.post(f"{API}/models/import", files={"file": (name, data, "application/octet-stream")})


def test_download_and_import_round_trip(client, small_model):
    mid = small_model["id"]
    client.post(f"{API}/models/{mid}/train", json={"steps": 2, "batch_size": 4})
    r = client.get(f"{API}/models/{mid}/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert 'filename="small.npz"' in r.headers["content-disposition"]
    ckpt = load_checkpoint(r.content)
    assert ckpt.step == 2 and ckpt.meta["name"] == "small" and ckpt.meta["dataset"] == "digits"
    imported = _import(client, r.content)
    assert imported.status_code == 201
    m = imported.json()
    assert m["id"] != mid and m["step"] == 2 and m["dataset"] == "digits" and m["read_only"] is False
    assert m["name"] == "small (2)" and m["spec"] == small_model["spec"]  # names are made distinct
    a = client.get(f"{API}/models/{mid}/layers/0/filters").json()
    b = client.get(f"{API}/models/{m['id']}/layers/0/filters").json()
    assert a["data"] == b["data"]
    assert client.post(f"{API}/models/{m['id']}/train", json={"steps": 1}).status_code == 200


def test_shipped_model_downloads(client):
    r = client.get(f"{API}/models/{SHIPPED_ID}/checkpoint")
    assert r.status_code == 200 and load_checkpoint(r.content).step == 500


def test_import_rejects_bad_files(client):
    for data in (b"not a zip", b"PK\x03\x04garbage", b""):
        r = _import(client, data)
        assert r.status_code == 422 and "checkpoint" in r.json()["detail"]
    buf = io.BytesIO()
    np.savez(buf, spec=np.array('{"input_shape": [1, 4, 4], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}]}'),
             classes=np.array(["a", "b"]), step=np.array(0))
    r = _import(client, buf.getvalue())  # arrays missing
    assert r.status_code == 422 and "missing" in r.json()["detail"]
    buf = io.BytesIO()
    np.savez(buf, spec=np.array('{"input_shape": [3, 512, 512], "layers": [{"type": "flatten"}, {"type": "dense", "units": 8192}]}'),
             classes=np.array(["a", "b"]), step=np.array(0))
    r = _import(client, buf.getvalue())  # a spec too large to allocate
    assert r.status_code == 422 and "parameters" in r.json()["detail"]


def test_import_over_the_archive_cap_is_413(data_dir, pretrained_dir):
    with open_client(make_settings(data_dir, pretrained_dir, max_archive_bytes=10_000)) as c:
        r = _import(c, b"\0" * 20_000)
        assert r.status_code == 413
