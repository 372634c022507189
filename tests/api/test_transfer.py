"""Transfer learning (POST /models with transfer), the learning-rate experiment and localization
(POST .../learn/lr-experiment, .../learn/localize): the Learn mode's steps 6 and 9 on the server."""

from __future__ import annotations

import base64

import numpy as np

from .conftest import SHIPPED_ID, SMALL_SPEC
from .test_datasets import class_zip, post_zip

API = "/api/v1"


def weights(c, model_id: str, index: int) -> np.ndarray:
    r = c.get(f"{API}/models/{model_id}/layers/{index}/filters")
    assert r.status_code == 200, r.text
    t = r.json()
    return np.frombuffer(base64.b64decode(t["data"]), dtype=np.float32).reshape(t["shape"])


def test_transfer_keeps_the_conv_layers_frozen_and_a_new_head(client, small_model):
    assert post_zip(client, class_zip(), name="pets", channels="1", height="20", width="20", test_fraction="0.4").status_code == 201
    src = small_model["id"]
    r = client.post(f"{API}/models", json={"from": src, "dataset": "pets", "transfer": True, "seed": 2})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["dataset"] == "pets" and new["classes"] == ["cat", "dog"]
    types = [layer["type"] for layer in new["layers"]]
    assert types == ["conv2d", "relu", "maxpool2d", "conv2d", "relu", "maxpool2d", "flatten", "dense", "softmax"]
    assert new["layers"][0]["input_shape"] == [1, 20, 20]
    assert new["layers"][7]["output_shape"] == [2]
    assert new["frozen"] == [0, 3]
    for i in (0, 3):
        assert np.array_equal(weights(client, new["id"], i), weights(client, src, i))
    r = client.post(f"{API}/models/{new['id']}/train", json={"steps": 1, "batch_size": 4})
    assert r.status_code == 200, r.text
    assert np.array_equal(weights(client, new["id"], 0), weights(client, src, 0))  # frozen: unchanged by training
    assert client.get(f"{API}/models/{new['id']}").json()["step"] == 1


def test_transfer_refuses_other_channels_and_needs_a_dataset(client, small_model):
    r = client.post(f"{API}/models", json={"from": small_model["id"], "dataset": "shapes", "transfer": True})
    assert r.status_code == 422
    assert "channel" in r.json()["detail"]
    assert client.post(f"{API}/models", json={"from": small_model["id"], "transfer": True}).status_code == 422


def test_lr_experiment_three_curves_and_nothing_saved(client, small_model):
    mid = small_model["id"]
    models_before = len(client.get(f"{API}/models").json())
    r = client.post(f"{API}/models/{mid}/learn/lr-experiment", json={"steps": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    lr = small_model["training"]["learning_rate"]
    assert [c["learning_rate"] for c in body["curves"]] == [lr / 10, lr, lr * 10]
    assert all(len(c["loss"]) == 5 for c in body["curves"])
    assert client.post(f"{API}/models/{mid}/learn/lr-experiment", json={"steps": 5}).json()["curves"] == body["curves"]
    assert client.get(f"{API}/models/{mid}").json()["step"] == 0
    assert len(client.get(f"{API}/models").json()) == models_before
    assert client.post(f"{API}/models/{mid}/learn/lr-experiment", json={"steps": 61}).status_code == 422


def test_localize_box_is_inside_the_image(client):
    r = client.post(f"{API}/models/{SHIPPED_ID}/learn/localize", json={"sample": {"split": "test", "index": 0}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["map"]["shape"] == [64, 64]
    b = body["box"]
    assert 0 <= b["top"] <= b["bottom"] < 64 and 0 <= b["left"] <= b["right"] < 64 and b["cells"] >= 1
