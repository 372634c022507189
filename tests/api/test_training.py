"""Stepped training, evaluation, history and the next batch."""

from __future__ import annotations

import numpy as np

from app.encoding import decode_tensor
from engine.data.dataset import load_dataset
from tests.api.conftest import SMALL_SPEC

API = "/api/v1"


def test_train_steps_and_history(client, small_model):
    mid = small_model["id"]
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 3, "batch_size": 8, "learning_rate": 0.1})
    assert r.status_code == 200
    body = r.json()
    assert body["step"] == 3 and len(body["loss"]) == 3 and len(body["accuracy"]) == 3 and body["learning_rate"] == 0.1
    assert body["examples_seen"] == 24 and body["epoch"] == 0
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 6})  # omitted fields keep their values
    assert r.json()["step"] == 9 and r.json()["learning_rate"] == 0.1 and r.json()["epoch"] == 1  # 72 of 64 examples
    m = client.get(f"{API}/models/{mid}").json()
    assert m["training"]["batch_size"] == 8 and m["step"] == 9 and m["epoch"] == 1 and m["examples_seen"] == 72
    hist = client.get(f"{API}/models/{mid}/history").json()
    assert [s["step"] for s in hist["steps"]] == list(range(1, 10))
    assert set(hist["steps"][0]) == {"step", "loss", "accuracy", "learning_rate", "epoch", "time"}
    assert hist["events"][0]["step"] == 0 and hist["events"][0]["changes"] == {"batch_size": 8, "learning_rate": 0.1}


def test_hyperparameter_errors_say_the_range(client, small_model):
    url = f"{API}/models/{small_model['id']}/train"
    for field, value, needle in (("learning_rate", 100, "between 1e-06 and 10"), ("batch_size", 0, "between 1 and 1024"),
                                 ("momentum", 1.5, "between 0 and 0.999"), ("weight_decay", -1, "between 0 and 1")):
        r = client.post(url, json={"steps": 1, field: value})
        assert r.status_code == 422 and needle in r.json()["detail"], (field, r.text)
    assert client.post(url, json={"steps": 1, "optimizer": "rmsprop"}).status_code == 422
    r = client.post(url, json={"steps": 5000})
    assert r.status_code == 422 and "1000" in r.json()["detail"]
    assert client.post(url, json={"steps": 0}).status_code == 422
    for raw in (b'{"steps": 1, "learning_rate": NaN}', b'{"steps": 1, "learning_rate": Infinity}', b'{"steps": 1, "momentum": -Infinity}'):
        r = client.post(url, content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422 and "finite" in r.json()["detail"]
    assert client.get(f"{API}/models/{small_model['id']}").json()["step"] == 0


def test_batch_too_large_for_the_model(data_dir, pretrained_dir):
    from tests.api.conftest import make_settings, open_client

    with open_client(make_settings(data_dir, pretrained_dir, max_batch_values=100_000)) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        r = c.post(f"{API}/models/{mid}/train", json={"steps": 1, "batch_size": 512})
        assert r.status_code == 422 and "at most" in r.json()["detail"]
        assert c.get(f"{API}/models/{mid}").json()["training"]["batch_size"] == 32  # unchanged


def test_evaluate(client, small_model):
    mid = small_model["id"]
    r = client.post(f"{API}/models/{mid}/evaluate", json={"split": "test"})
    assert r.status_code == 200
    ev = r.json()
    assert len(ev["confusion_matrix"]) == 10 and sum(map(sum, ev["confusion_matrix"])) == 32
    assert ev["classes"] == [str(i) for i in range(10)] and 0 <= ev["accuracy"] <= 1
    assert all(set(m) == {"index", "label", "prediction", "confidence"} for m in ev["misclassified"])
    assert client.post(f"{API}/models/{mid}/evaluate", json={"split": "train", "max_examples": 10}).json()["split"] == "train"
    assert client.post(f"{API}/models/{mid}/evaluate").status_code == 200
    assert client.post(f"{API}/models/{mid}/evaluate", json={"split": "dev"}).status_code == 422
    evals = client.get(f"{API}/models/{mid}/history").json()["evaluations"]
    assert [e["split"] for e in evals] == ["test", "train", "test"]


def test_next_batch_is_what_the_trainer_uses(client, small_model, data_dir):
    mid = small_model["id"]
    client.patch(f"{API}/models/{mid}", json={"training": {"batch_size": 4}})
    r = client.get(f"{API}/models/{mid}/train/batch?count=3")
    assert r.status_code == 200
    batch = r.json()
    x = decode_tensor(batch["images"])
    assert x.shape == (3, 1, 28, 28) and len(batch["labels"]) == 3
    ds = load_dataset(data_dir / "datasets" / "digits.npz")
    idx = [i for i in range(len(ds.y_train)) if np.allclose(ds.x_train[i] / 255, x[0], atol=1e-6)]
    assert idx and ds.y_train[idx[0]] == batch["labels"][0]
    client.patch(f"{API}/models/{mid}", json={"training": {"augment": True}})
    aug = decode_tensor(client.get(f"{API}/models/{mid}/train/batch?count=3").json()["images"])
    assert aug.shape == x.shape and not np.array_equal(aug, x)
    assert client.get(f"{API}/models/{mid}/train/batch?count=0").status_code == 422


def test_model_without_dataset(client):
    spec = {"input_shape": [1, 5, 5], "layers": [{"type": "flatten"}, {"type": "dense", "units": 3}]}
    m = client.post(f"{API}/models", json={"spec": spec}).json()
    assert m["dataset"] is None and m["classes"] == ["0", "1", "2"]
    r = client.post(f"{API}/models/{m['id']}/train", json={"steps": 1})
    assert r.status_code == 409 and "dataset" in r.json()["detail"]
    assert client.post(f"{API}/models/{m['id']}/evaluate").status_code == 409
    assert client.post(f"{API}/models/{m['id']}/forward", json={"sample": {"index": 0}}).status_code == 409


def test_divergence_keeps_last_finite_weights(client, small_model, data_dir):
    mid = small_model["id"]
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 2, "batch_size": 4}).status_code == 200
    rec = client.app.state.cnnvis.models.get(mid)
    rec.model.params["layers.7.weight"][0, 0] = np.nan  # as if the weights had blown up
    r = client.post(f"{API}/models/{mid}/train", json={"steps": 1})
    assert r.status_code == 200 and r.json()["loss"] == [None]  # JSON has no NaN: null
    fwd = client.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 0}})
    assert fwd.status_code == 200 and None in fwd.json()["probabilities"]
    from engine.checkpoint import load_checkpoint

    saved = load_checkpoint(data_dir / "models" / mid / "checkpoint.npz")
    assert saved.step == 2 and np.isfinite(saved.model.params["layers.7.weight"]).all()
    assert client.post(f"{API}/models/{mid}/reset", json={"seed": 1}).status_code == 200
    assert load_checkpoint(data_dir / "models" / mid / "checkpoint.npz").step == 0


def test_long_histories_are_kept_whole_and_sent_downsampled(client, small_model):
    mid = small_model["id"]
    client.post(f"{API}/models/{mid}/train", json={"steps": 25, "batch_size": 2})
    body = client.get(f"{API}/models/{mid}/history?points=12").json()
    steps = [s["step"] for s in body["steps"]]
    assert len(steps) <= 12 and steps[-1] == 25 and steps == sorted(steps) and steps[0] == 1
    assert body["downsampled"] and body["total_steps"] == 25
    full = client.get(f"{API}/models/{mid}/history?from_step=0").json()
    assert [s["step"] for s in full["steps"]] == list(range(1, 26)) and full["next_from_step"] is None
