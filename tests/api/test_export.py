"""GET /api/v1/models/{id}/export?format=onnx: an ONNX download that onnxruntime runs to the server
model's outputs (the oracle: the same model's checkpoint, run by the engine), 404 for an unknown
model, 422 for an unknown format or a layer without an ONNX form, 501 without the onnx extra."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from engine import export_onnx
from engine.checkpoint import load_checkpoint
from engine.presets import preset_spec
from tests.api.conftest import SHIPPED_ID

onnx = pytest.importorskip("onnx", reason='the onnx extra is not installed: pip install "cnn-visualizer[onnx]"')
ort = pytest.importorskip("onnxruntime", reason='the onnx extra is not installed: pip install "cnn-visualizer[onnx]"')


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("model_id", [SHIPPED_ID, "small"])
def test_export_downloads_an_onnx_file_that_runs_like_the_model(client, small_model, model_id):
    model_id = small_model["id"] if model_id == "small" else model_id
    r = client.get(f"/api/v1/models/{model_id}/export", params={"format": "onnx"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/onnx"
    assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+\.onnx"', r.headers["content-disposition"])
    proto = onnx.load_model_from_string(r.content)
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    info = client.get(f"/api/v1/models/{model_id}").json()
    assert meta["model_id"] == model_id and meta["name"] == info["name"]
    ckpt = load_checkpoint(client.get(f"/api/v1/models/{model_id}/checkpoint").content)  # the server's model
    assert json.loads(meta["classes"]) == ckpt.classes
    for n in (1, 3):
        x = np.random.default_rng(n).uniform(0, 1, (n, *ckpt.model.input_shape)).astype(np.float32)
        assert np.abs(_run(r.content, x) - ckpt.model.forward(x).output).max() <= 1e-5


def test_format_defaults_to_onnx_and_others_are_422(client):
    assert client.get(f"/api/v1/models/{SHIPPED_ID}/export").status_code == 200
    r = client.get(f"/api/v1/models/{SHIPPED_ID}/export", params={"format": "pdf"})
    assert r.status_code == 422 and "format" in r.json()["detail"]


def test_unknown_model_is_404(client):
    r = client.get("/api/v1/models/no-such-model/export", params={"format": "onnx"})
    assert r.status_code == 404 and "no-such-model" in r.json()["detail"]


def test_a_layer_without_an_onnx_form_is_422_naming_it(client, monkeypatch):
    monkeypatch.delitem(export_onnx.EXPORTERS, "softmax")
    r = client.get(f"/api/v1/models/{SHIPPED_ID}/export", params={"format": "onnx"})
    assert r.status_code == 422
    body = r.json()
    last = len(preset_spec("tiny-vgg", (3, 64, 64), 8)["layers"]) - 1  # the shipped TinyVGG ends with its softmax
    assert "softmax" in body["detail"] and body["layer_index"] == last


def test_without_the_onnx_extra_the_answer_is_501_saying_what_to_install(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    r = client.get(f"/api/v1/models/{SHIPPED_ID}/export", params={"format": "onnx"})
    assert r.status_code == 501
    assert 'pip install "cnn-visualizer[onnx]"' in r.json()["detail"]


def test_the_contract_documents_the_route(client):
    op = client.get("/openapi.json").json()["paths"]["/api/v1/models/{model_id}/export"]["get"]
    assert "application/onnx" in op["responses"]["200"]["content"]
    assert {"404", "422", "501"} <= set(op["responses"])
