"""Models: presets, layer types, spec validation, create / list / read / patch / delete / reset, distinct
names, the shipped models' history."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.checkpoint import load_checkpoint
from engine.presets import PRESETS
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC, make_settings, open_client

PRETRAINED = Path(__file__).resolve().parents[2] / "engine" / "pretrained"

API = "/api/v1"


def test_presets_and_layer_types(client):
    presets = client.get(f"{API}/presets").json()
    assert {p["name"] for p in presets} >= {"tiny-vgg", "lenet5"}
    types = client.get(f"{API}/layer-types").json()
    assert {t["type"] for t in types} >= {"conv2d", "dense", "maxpool2d", "softmax"}
    conv = next(t for t in types if t["type"] == "conv2d")
    assert any(f["name"] == "filters" and f.get("required") for f in conv["fields"])
    assert conv["title"] == "Conv" and conv["kind"] == "weighted" and conv["parameters"] == ["weight", "bias"]
    assert conv["explanation"].endswith(".")
    model = client.get(f"{API}/models/{SHIPPED_ID}").json()  # every layer says what it is, from the same registry
    assert [(layer["title"], layer["kind"]) for layer in model["layers"][:2]] == [("Conv", "weighted"), ("ReLU", "elementwise")]


def test_validate_spec_ok_and_errors(client):
    r = client.post(f"{API}/specs/validate", json={"spec": SMALL_SPEC})
    assert r.status_code == 200
    body = r.json()
    assert body["valid"] is True and body["output_shape"] == [10]
    assert body["layers"][0]["output_shape"] == [4, 26, 26]
    assert body["parameters"] == sum(layer["parameters"] for layer in body["layers"])
    bad = {"input_shape": [1, 8, 8], "layers": [{"type": "conv2d", "filters": 2, "kernel_size": 3}] + [{"type": "maxpool2d", "pool_size": 2}] * 3}
    r = client.post(f"{API}/specs/validate", json={"spec": bad})  # an invalid spec is a result (200), not an error
    assert r.status_code == 200 and r.json()["valid"] is False
    assert r.json()["layer_index"] == 3 and r.json()["detail"].startswith("layer 3 (maxpool2d)")
    r = client.post(f"{API}/specs/validate", json={"spec": {"input_shape": [1, 8, 8], "layers": [{"type": "bogus"}]}})
    assert r.json()["valid"] is False and r.json()["layer_index"] == 0 and "known types" in r.json()["detail"]
    r = client.post(f"{API}/specs/validate", json={"spec": {"input_shape": [3, 8, 8], "layers": [{"type": "relu"}]}})
    assert r.json()["valid"] is False and "vector" in r.json()["detail"]
    assert client.post(f"{API}/specs/validate", json={"nospec": 1}).status_code == 422  # a malformed request is still 422


def test_too_big_spec_is_refused_before_allocating(client):
    huge = {"input_shape": [3, 512, 512], "layers": [{"type": "flatten"}, {"type": "dense", "units": 8192}]}
    r = client.post(f"{API}/models", json={"spec": huge})
    assert r.status_code == 422 and "parameters" in r.json()["detail"] and r.json()["layer_index"] == 1


def test_create_from_preset_spec_and_copy(client):
    r = client.post(f"{API}/models", json={"preset": "tiny-vgg", "name": "mine", "seed": 5})
    assert r.status_code == 201
    m = r.json()
    assert m["name"] == "mine" and m["dataset"] == "shapes" and m["read_only"] is False and m["step"] == 0
    assert len(m["classes"]) == 8 and m["layers"][0]["receptive_field"] == {"size": 3.0, "jump": 1.0, "start": 1.0}
    assert m["training"]["learning_rate"] == PRESETS["tiny-vgg"].learning_rate and m["epoch"] == 0 and m["examples_seen"] == 0
    assert m["layers"][0]["trainable"] is True and m["layers"][1]["trainable"] is False
    r = client.post(f"{API}/models", json={"spec": SMALL_SPEC, "loss": "mse"})
    assert r.status_code == 201 and r.json()["dataset"] == "digits" and r.json()["training"]["loss"] == "mse"
    r = client.post(f"{API}/models", json={"from": m["id"]})
    assert r.status_code == 201
    copy = r.json()
    assert copy["id"] != m["id"] and copy["name"] == "mine (copy)" and copy["spec"] == m["spec"]
    ids = [x["id"] for x in client.get(f"{API}/models").json()]
    assert ids[0] == SHIPPED_ID and {m["id"], copy["id"]} <= set(ids)


def test_create_errors(client):
    assert client.post(f"{API}/models", json={"preset": "nope"}).status_code == 422
    r = client.post(f"{API}/models", json={"preset": "tiny-vgg", "spec": SMALL_SPEC})
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]
    assert client.post(f"{API}/models", json={}).status_code == 422
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg", "dataset": "nope"}).status_code == 422
    r = client.post(f"{API}/models", json={"spec": SMALL_SPEC, "dataset": "shapes"})
    assert r.status_code == 422 and "inputs" in r.json()["detail"]
    assert client.post(f"{API}/models", json={"from": "nope"}).status_code == 404
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg", "seed": -1}).status_code == 422
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg", "extra": 1}).status_code == 422


def test_get_patch_delete(client, small_model):
    mid = small_model["id"]
    assert client.get(f"{API}/models/{mid}").json() == small_model
    r = client.patch(f"{API}/models/{mid}", json={"name": "renamed", "training": {"learning_rate": 0.2, "optimizer": "adam"}, "frozen": [0]})
    assert r.status_code == 200
    m = r.json()
    assert m["name"] == "renamed" and m["training"]["learning_rate"] == 0.2 and m["training"]["optimizer"] == "adam"
    assert m["frozen"] == [0] and m["layers"][0]["trainable"] is False
    events = client.get(f"{API}/models/{mid}/history").json()["events"]
    assert events[0]["changes"] == {"learning_rate": 0.2, "optimizer": "adam"} and events[1]["changes"] == {"frozen": [0]}
    r = client.patch(f"{API}/models/{mid}", json={"frozen": [1]})
    assert r.status_code == 422 and "no weights" in r.json()["detail"]
    r = client.patch(f"{API}/models/{mid}", json={"training": {"momentum": 2}})
    assert r.status_code == 422 and "between 0 and 0.999" in r.json()["detail"]
    r = client.patch(f"{API}/models/{mid}", json={"dataset": "shapes"})
    assert r.status_code == 422
    assert client.delete(f"{API}/models/{mid}").status_code == 204
    assert client.get(f"{API}/models/{mid}").status_code == 404


def test_reset(client, small_model):
    mid = small_model["id"]
    client.post(f"{API}/models/{mid}/train", json={"steps": 2, "batch_size": 4})
    w1 = client.get(f"{API}/models/{mid}/layers/0/filters").json()["data"]
    r = client.post(f"{API}/models/{mid}/reset", json={"seed": 3})
    assert r.status_code == 200 and r.json()["step"] == 0 and r.json()["seed"] == 3
    assert client.get(f"{API}/models/{mid}/history").json()["steps"] == []
    w2 = client.get(f"{API}/models/{mid}/layers/0/filters").json()["data"]
    assert w2 != w1  # trained weights replaced ...
    client.post(f"{API}/models/{mid}/reset", json={"seed": 3})
    assert client.get(f"{API}/models/{mid}/layers/0/filters").json()["data"] == w2  # ... by the seed's
    assert client.post(f"{API}/models/{mid}/reset").status_code == 200


def test_unknown_and_bad_ids(client):
    assert client.get(f"{API}/models/nope").status_code == 404
    assert client.get(f"{API}/models/nope").json()["detail"].startswith("no model with id")
    for bad in ("..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e", "a%00b", "x" * 100):
        r = client.get(f"{API}/models/{bad}")
        assert r.status_code in (404, 422), bad
        assert isinstance(r.json()["detail"], str)


def test_shipped_model_is_read_only(client):
    m = client.get(f"{API}/models/{SHIPPED_ID}").json()
    assert m["read_only"] is True and m["name"] == "TinyVGG (trained)" and m["step"] == 500
    for method, path, body in (
        ("post", f"/models/{SHIPPED_ID}/train", {"steps": 1}),
        ("patch", f"/models/{SHIPPED_ID}", {"name": "x"}),
        ("post", f"/models/{SHIPPED_ID}/reset", {}),
        ("delete", f"/models/{SHIPPED_ID}", None),
    ):
        r = client.request(method.upper(), f"{API}{path}", json=body)
        assert r.status_code == 409, path
        assert "copy it" in r.json()["detail"] and '"from"' in r.json()["detail"]
    # ... but it can be looked at, evaluated and copied
    assert client.post(f"{API}/models/{SHIPPED_ID}/forward", json={"sample": {"index": 0}}).status_code == 200
    assert client.post(f"{API}/models/{SHIPPED_ID}/evaluate", json={}).status_code == 200
    assert client.get(f"{API}/models/{SHIPPED_ID}/history").json()["evaluations"] == []
    copy = client.post(f"{API}/models", json={"from": SHIPPED_ID}).json()
    assert copy["read_only"] is False and copy["step"] == 500
    assert client.post(f"{API}/models/{copy['id']}/train", json={"steps": 1, "batch_size": 2}).status_code == 200


def test_new_copied_and_imported_models_get_distinct_names(client):
    first = client.post(f"{API}/models", json={"preset": "tiny-vgg", "name": "mine"}).json()
    assert first["name"] == "mine" and first["copied_from"] is None
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg", "name": "mine"}).json()["name"] == "mine (2)"
    assert client.post(f"{API}/models", json={"preset": "tiny-vgg", "name": "mine"}).json()["name"] == "mine (3)"
    copies = [client.post(f"{API}/models", json={"from": SHIPPED_ID, "name": "TinyVGG (trained) (my copy)"}).json() for _ in range(2)]
    assert [c["name"] for c in copies] == ["TinyVGG (trained) (my copy)", "TinyVGG (trained) (my copy) (2)"]
    assert {c["copied_from"] for c in copies} == {SHIPPED_ID}  # the page finds a person's untrained copy by it
    assert client.post(f"{API}/models", json={"from": first["id"]}).json()["name"] == "mine (copy)"
    data = client.get(f"{API}/models/{first['id']}/checkpoint").content
    imported = client.post(f"{API}/models/import", files={"file": ("mine.npz", data, "application/octet-stream")}).json()
    assert imported["name"] == "mine (4)" and imported["copied_from"] is None
    # the source is kept across a restart (in the checkpoint's meta)
    got = client.get(f"{API}/models/{copies[0]['id']}/checkpoint").content
    assert load_checkpoint(got).meta["copied_from"] == SHIPPED_ID


@pytest.mark.parametrize("model_id", ["tiny-vgg-shapes", "lenet5-digits"])
def test_shipped_models_carry_the_history_that_made_them(data_dir, model_id):
    with open_client(make_settings(data_dir, PRETRAINED)) as c:
        model = c.get(f"{API}/models/{model_id}").json()
        h = c.get(f"{API}/models/{model_id}/history").json()
        copy = c.post(f"{API}/models", json={"from": model_id}).json()
        copied = c.get(f"{API}/models/{copy['id']}/history").json()
    steps = [s["step"] for s in h["steps"]]
    assert model["read_only"] and steps[0] == 1 and steps[-1] == model["step"] and steps == sorted(steps)
    assert {"loss", "accuracy", "learning_rate", "epoch"} <= set(h["steps"][-1])
    evals = h["evaluations"]
    assert evals and evals[-1]["step"] == model["step"] and evals[-1]["split"] == "test"
    assert evals[-1]["accuracy"] == pytest.approx(load_checkpoint(PRETRAINED / f"{model_id}.npz").meta["test_accuracy"])
    assert copied == h  # a copy's curves start where the shipped model's did
