"""Forward passes, explanations and pictures: shapes, wire format, and numbers a client can reproduce."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.encoding import decode_tensor
from engine.checkpoint import load_checkpoint
from engine.data.dataset import load_dataset
from tests.api.conftest import SHIPPED_ID, image_bytes, upload

API = "/api/v1"
FWD = f"{API}/models/{SHIPPED_ID}/forward"


def test_forward_sample_reproducible(client, data_dir):
    r = client.post(FWD, json={"sample": {"split": "test", "index": 3}})
    assert r.status_code == 200
    body = r.json()
    ds = load_dataset(data_dir / "datasets" / "shapes.npz")
    x = decode_tensor(body["input"])
    assert np.array_equal(x, ds.x_test[3].astype(np.float32) / 255) or np.allclose(x, ds.x_test[3] / 255, atol=1e-7)
    assert body["label"] == int(ds.y_test[3])
    # the client can reproduce every number from the checkpoint and the input
    model = load_checkpoint(client.get(f"{API}/models/{SHIPPED_ID}/checkpoint").content).model
    res = model.forward(x[None], keep=True)
    assert len(body["layers"]) == len(model.layers)
    for layer, act in zip(body["layers"], res.activations, strict=True):
        out = decode_tensor(layer["output"])
        assert out.shape == act.shape[1:] and np.allclose(out, act[0], atol=1e-6)
        assert layer["min"] == float(act.min()) and layer["max"] == float(act.max())
        exact = act.astype(np.float64).mean()  # the mean is summed another way: as close as float32 allows
        assert abs(layer["mean"] - exact) <= 1e-6 * np.abs(act).astype(np.float64).mean()
    probs = np.array(body["probabilities"])
    assert np.allclose(probs, model.predict_proba(x[None])[0], atol=1e-6)
    top = body["prediction"]
    assert top["index"] == int(probs.argmax()) and top["class"] == body["classes"][top["index"]]
    assert body["step"] == 500 and body["classes"][0] == "circle"


def test_forward_dtype_and_layers(client):
    full = client.post(FWD, json={"sample": {"index": 0}})
    half = client.post(f"{FWD}?dtype=float16", json={"sample": {"index": 0}})
    assert len(half.content) < 0.6 * len(full.content)
    a, b = full.json()["layers"][2]["output"], half.json()["layers"][2]["output"]
    assert b["dtype"] == "float16" and np.allclose(decode_tensor(a), decode_tensor(b), atol=1e-2, rtol=1e-2)
    some = client.post(f"{FWD}?layers=0,3", json={"sample": {"index": 0}}).json()
    assert [layer["index"] for layer in some["layers"]] == [0, 3] and some["layers"][1]["type"] == "relu"
    none = client.post(f"{FWD}?layers=", json={"sample": {"index": 0}}).json()
    assert none["layers"] == [] and len(none["probabilities"]) == 8
    for bad in ("x", "99", "-1", "1,,a"):
        r = client.post(f"{FWD}?layers={bad}", json={"sample": {"index": 0}})
        assert r.status_code == 422, bad
    assert client.post(f"{FWD}?dtype=float64", json={"sample": {"index": 0}}).status_code == 422


def test_forward_image_id_and_multipart(client):
    data = image_bytes("PNG", size=(64, 64))
    image_id = upload(client, data).json()["id"]
    by_id = client.post(FWD, json={"image_id": image_id}).json()
    by_file = client.post(FWD, files={"file": ("x.png", data, "image/png")}).json()
    assert by_id["input"] == by_file["input"] and by_id["probabilities"] == by_file["probabilities"]
    assert "label" not in by_id


def test_forward_errors(client):
    assert client.post(FWD, json={"sample": {"index": 10**6}}).status_code == 404
    assert client.post(FWD, json={"sample": {"index": -1}}).status_code == 422
    assert client.post(FWD, json={"sample": {"split": "val", "index": 0}}).status_code == 422
    assert client.post(FWD, json={"image_id": "0123456789abcdef"}).status_code == 404
    assert client.post(FWD, json={}).status_code == 422
    assert client.post(FWD, json={"image_id": "a", "sample": {"index": 0}}).status_code == 422
    assert client.post(FWD, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post(FWD, content=b"", headers={"content-type": "application/json"}).status_code == 422
    assert client.post(FWD, files={"other": ("x", b"1", "text/plain")}).status_code == 422
    assert client.post(FWD, files={"file": ("x.txt", b"hello", "text/plain")}).status_code == 415
    assert client.post(f"{API}/models/nope/forward", json={"sample": {"index": 0}}).status_code == 404


def test_explain_methods(client):
    for method in ("saliency", "grad_cam", "occlusion"):
        r = client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, "method": method, "target": 2})
        assert r.status_code == 200, r.text
        body = r.json()
        m = decode_tensor(body["map"])
        assert m.shape == (64, 64) and np.isfinite(m).all() and body["target"] == 2
        assert body["layer"] == (9 if method == "grad_cam" else None)
    r = client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, "method": "grad_cam", "layer": 3})
    assert r.json()["layer"] == 3 and isinstance(r.json()["target"], int)
    bad = client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, "method": "grad_cam", "layer": 11})
    assert bad.status_code == 422 and "feature maps" in bad.json()["detail"]
    bad = client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, "target": 8})
    assert bad.status_code == 422 and "0 to 7" in bad.json()["detail"]
    assert client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, "method": "magic"}).status_code == 422


def test_filters_and_pictures(client):
    base = f"{API}/models/{SHIPPED_ID}/layers"
    t = client.get(f"{base}/0/filters").json()
    assert t["shape"] == [10, 3, 3, 3] and t["layer"] == 0
    model = load_checkpoint(client.get(f"{API}/models/{SHIPPED_ID}/checkpoint").content).model
    assert np.array_equal(decode_tensor(t), model.params["layers.0.weight"])
    assert np.array_equal(decode_tensor(t["bias"]), model.params["layers.0.bias"])
    dense = client.get(f"{base}/11/filters").json()  # a dense layer: weights [units, D] in PyTorch layout
    assert dense["shape"] == [8, 1690] and dense["bias"]["shape"] == [8]
    assert np.array_equal(decode_tensor(dense), model.params["layers.11.weight"])
    assert client.get(f"{base}/11/filters.png").status_code == 422
    assert client.get(f"{base}/2/filters?dtype=float16").json()["shape"] == [10, 10, 3, 3]
    png = client.get(f"{base}/0/filters.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).mode == "RGB"
    assert client.get(f"{base}/2/filters.png").status_code == 200
    r = client.get(f"{base}/1/filters")
    assert r.status_code == 422 and "relu" in r.json()["detail"]
    assert client.get(f"{base}/99/filters.png").status_code == 404
    acts = client.get(f"{base}/3/activations.png?sample=0&split=test")
    assert acts.status_code == 200 and Image.open(io.BytesIO(acts.content)).size[0] > 64
    image_id = upload(client, image_bytes("PNG")).json()["id"]
    assert client.get(f"{base}/11/activations.png?image_id={image_id}").status_code == 200
    assert client.get(f"{base}/3/activations.png").status_code == 422
    assert client.get(f"{base}/3/activations.png?sample=0&image_id={image_id}").status_code == 422
    assert client.get(f"{base}/30/activations.png?sample=0").status_code == 404


def test_summary_of_arrays_the_fast_mean_does_not_take():
    from app.services.inference import summary

    rng = np.random.default_rng(0)
    for a in (rng.normal(size=(4, 5)), rng.normal(size=(6, 6)).astype(np.float32)[:, ::2], np.float32([1.5])):
        assert summary(a) == {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean())}
    assert summary(np.float32([1, np.inf])) == {"min": 1.0, "max": None, "mean": None}
    assert summary(np.float32([np.nan, 2])) == {"min": None, "max": None, "mean": None}
