"""POST .../gradients (inside the learning step) and the per-layer history fields."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.encoding import decode_tensor
from engine.checkpoint import load_checkpoint
from tests.api.conftest import SHIPPED_ID, image_bytes, upload

API = "/api/v1"
SAMPLE = {"sample": {"split": "test", "index": 0}}


def _params(client, mid: str) -> dict[str, np.ndarray]:
    r = client.get(f"{API}/models/{mid}/checkpoint")
    assert r.status_code == 200
    return {k: v.copy() for k, v in load_checkpoint(r.content).model.params.items()}


@pytest.mark.parametrize("changes", [{"optimizer": "sgd", "momentum": 0.9}, {"optimizer": "adam", "learning_rate": 0.01}])
def test_shown_update_is_the_difference_of_the_checkpoints(client, small_model, changes):
    mid = small_model["id"]
    url = f"{API}/models/{mid}/gradients"
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 2, "batch_size": 8, **changes}).status_code == 200
    before = _params(client, mid)
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 1}).status_code == 200
    after = _params(client, mid)
    body = client.post(url, json=SAMPLE).json()
    assert body["update_step"] == body["step"] == 3 and body["update_note"] is None
    shown = 0
    for layer in body["layers"]:
        for p in layer.get("parameters", []):
            name = f"layers.{layer['index']}.{p['name']}"
            update = decode_tensor(p["update"])
            np.testing.assert_array_equal(update, after[name] - before[name], err_msg=name)
            np.testing.assert_array_equal(decode_tensor(p["value"]), after[name], err_msg=name)
            assert decode_tensor(p["grad"]).shape == after[name].shape
            shown += 1
    assert shown == 6  # two convolutions and a dense layer, weight and bias each
    # ... and the model's numbers were untouched by looking
    np.testing.assert_array_equal(_params(client, mid)["layers.0.weight"], after["layers.0.weight"])


def test_every_layer_gets_its_output_gradient(client, small_model):
    mid = small_model["id"]
    body = client.post(f"{API}/models/{mid}/gradients?dtype=float16", json=SAMPLE).json()
    model = client.get(f"{API}/models/{mid}").json()
    assert [entry["index"] for entry in body["layers"]] == list(range(len(model["layers"])))
    for entry, info in zip(body["layers"], model["layers"]):
        assert entry["gradient"]["shape"] == info["output_shape"] and entry["gradient"]["dtype"] == "float16"
    assert body["update_step"] is None and "restart" in body["update_note"]  # no step taken yet
    assert body["label"] == 0 or body["label"] < 10
    relu = [e for e in body["layers"] if e["type"] == "relu"]
    assert relu and all(0 <= e["dead_relu"]["share"] <= 1 and len(e["dead_relu"]["per_filter"]) == 4 for e in relu)
    assert body["dead_relu_batch"] == {"split": "train", "count": 32}
    assert math.isfinite(body["loss"]) and abs(sum(body["probabilities"]) - 1) < 1e-4
    # the softmax layer's output gradient is -1/p at the label, 0 elsewhere
    top = decode_tensor(body["layers"][-1]["gradient"])
    p = body["probabilities"][body["label"]]
    assert top[body["label"]] == pytest.approx(-1 / p, rel=1e-2) and np.count_nonzero(top) == 1


def test_uploaded_image_needs_a_label(client, small_model):
    mid = small_model["id"]
    image_id = upload(client, image_bytes()).json()["id"]
    url = f"{API}/models/{mid}/gradients"
    r = client.post(url, json={"image_id": image_id})
    assert r.status_code == 422 and "label" in r.json()["detail"]
    r = client.post(url, json={"image_id": image_id, "label": 10})
    assert r.status_code == 422 and "0 to 9" in r.json()["detail"]
    assert client.post(url, json={"image_id": image_id, "label": 3}).json()["label"] == 3
    assert client.post(url, json={**SAMPLE, "label": 5}).json()["label"] == 5


def test_dropout_mask_and_read_only_model(client):
    body = client.post(f"{API}/models/{SHIPPED_ID}/gradients", json={"sample": {"index": 1}}).json()
    assert body["update_step"] is None
    masks = [e for e in body["layers"] if "dropout_mask" in e]
    if masks:
        assert body["dropout_note"] and set(np.unique(decode_tensor(masks[0]["dropout_mask"]))) <= {0.0, 1.0}
    assert client.post(f"{API}/models/nope/gradients", json=SAMPLE).status_code == 404


def test_history_records_layer_figures(client, small_model):
    mid = small_model["id"]
    client.post(f"{API}/models/{mid}/train", json={"steps": 11, "batch_size": 4})
    plain = client.get(f"{API}/models/{mid}/history").json()["steps"]
    assert "grad_norm" not in plain[0]
    steps = client.get(f"{API}/models/{mid}/history?layers=true").json()["steps"]
    assert [s["step"] for s in steps] == list(range(1, 12))
    for s in steps:
        assert set(s["grad_norm"]) == set(s["update_ratio"]) == {"0", "3", "7"}
        assert all(v > 0 for v in s["grad_norm"].values()) and all(0 < v < 1 for v in s["update_ratio"].values())
    assert [("dead_relu" in s) for s in steps] == [i % 10 == 0 for i in range(11)]
    assert set(steps[0]["dead_relu"]) == {"1", "4"}


def test_old_history_without_layer_fields_still_loads(client, small_model, settings):
    from app.stores.history import read_json_history as _read_history

    path = settings.data_dir / "old-history.json"
    path.write_text('{"steps": [{"step": 1, "loss": 2.0, "accuracy": 0.1, "learning_rate": 0.01, "epoch": 0, "time": 0}],'
                    ' "evaluations": [], "events": []}')
    hist = _read_history(path, 5)
    assert hist["steps"][0]["loss"] == 2.0 and "grad_norm" not in hist["steps"][0]
