"""Explanations over the API: every method at input resolution with its sign, any class, an overlay
picture, the two checks, the bounds, and numbers equal to the engine's own functions on the same weights."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from app.encoding import decode_tensor
from engine import explain
from engine.checkpoint import load_checkpoint
from tests.api.conftest import SHIPPED_ID

API = "/api/v1"
SIGNED = {"gradient": True, "saliency": False, "smoothgrad": True, "gradient_x_input": True, "integrated_gradients": True,
          "guided_backprop": True, "deconvnet": True, "grad_cam": False, "guided_grad_cam": True, "occlusion": True}
PARAMS = {"smoothgrad": {"samples": 6, "sigma": 0.2, "seed": 5}, "integrated_gradients": {"steps": 16},
          "occlusion": {"patch": 6, "stride": 3}, "grad_cam": {"layer": 2}, "guided_grad_cam": {"layer": 2}}


def engine_map(model, x, method, target, p):
    """The engine's own call for ``method`` with the request's parameters ``p``."""
    if method == "smoothgrad":
        return explain.smoothgrad(model, x, target, rng=np.random.default_rng(p["seed"]), n=p["samples"], sigma=p["sigma"])[0]
    if method == "integrated_gradients":
        return explain.integrated_gradients(model, x, target, steps=p["steps"])[0]
    if method in ("grad_cam", "guided_grad_cam"):
        return getattr(explain, method)(model, x, p["layer"], target)[0]
    if method == "occlusion":
        return explain.occlusion(model, x, target, patch=p["patch"], stride=p["stride"])[0]
    return getattr(explain, method)(model, x, target)[0]


@pytest.fixture
def small(client, small_model):
    """(model id, the model from its checkpoint, x: (1, 28, 28) test sample 2, classes)."""
    mid = small_model["id"]
    model = load_checkpoint(client.get(f"{API}/models/{mid}/checkpoint").content).model
    fwd = client.post(f"{API}/models/{mid}/forward", json={"sample": {"index": 2}}).json()
    return mid, model, decode_tensor(fwd["input"]), fwd["classes"]


@pytest.mark.parametrize("method", list(SIGNED))
def test_each_method_matches_the_engine(client, small, method):
    mid, model, x, classes = small
    p = PARAMS.get(method, {})
    r = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": method, "target": 3, **p})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == method and body["target"] == 3 and body["class"] == classes[3]
    assert body["signed"] is SIGNED[method] and body["how_to_read"].endswith(".")
    m = decode_tensor(body["map"])
    assert m.shape == (28, 28) and np.isfinite(m).all()
    want = engine_map(model, x, method, 3, p)
    if want.ndim == 3:
        assert np.allclose(decode_tensor(body["channels"]), want, rtol=1e-5, atol=1e-7)
        want = want.sum(axis=0)
    else:
        assert body["channels"] is None
    assert np.allclose(m, want, rtol=1e-4, atol=1e-6)
    if not SIGNED[method]:
        assert m.min() >= 0
    png = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert png.format == "PNG" and png.size == (28, 28)
    assert "checks" not in body
    assert body["layer"] == (2 if method in ("grad_cam", "guided_grad_cam") else None)


def test_default_target_is_the_prediction(client, small):
    mid, model, x, classes = small
    body = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": "gradient"}).json()
    predicted = int(model.predict_proba(x[None])[0].argmax())
    assert body["target"] == predicted and body["class"] == classes[predicted]


def test_checks_equal_the_engine(client, small):
    mid, model, x, _ = small
    r = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": "gradient", "target": 1,
                                                         "seed": 7, "checks": ["randomization", "deletion"]})
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    rnd = explain.model_randomization(model, x, explain.gradient, 1, seed=7)
    assert checks["randomization"]["rank_correlation"] == pytest.approx(rnd.rank_correlation, abs=1e-6)
    assert np.allclose(decode_tensor(checks["randomization"]["map"]), rnd.randomized.sum(axis=0), rtol=1e-4, atol=1e-6)
    curve = explain.deletion_curve(model, x, explain.gradient(model, x, 1)[0], 1, steps=20)
    assert np.allclose(checks["deletion"]["fractions"], curve.fractions)
    assert np.allclose(checks["deletion"]["scores"], curve.scores, atol=1e-6)
    assert checks["deletion"]["auc"] == pytest.approx(curve.auc, abs=1e-6)


def test_only_the_checks_asked_for(client, small):
    mid = small[0]
    body = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": "grad_cam", "checks": ["deletion"]}).json()
    assert set(body["checks"]) == {"deletion"} and len(body["checks"]["deletion"]["scores"]) == 21


@pytest.mark.parametrize("extra", [{"samples": 51}, {"samples": 0}, {"steps": 129}, {"sigma": 2}, {"patch": 0}, {"stride": 65},
                                   {"checks": ["magic"]}, {"method": "lime"}, {"target": -1}, {"seed": -1}])
def test_bounds_are_422(client, extra):
    r = client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, **extra})
    assert r.status_code == 422, r.text


def test_bad_layer_target_and_occlusion_size_are_422(client, small):
    mid = small[0]
    for method in ("grad_cam", "guided_grad_cam"):
        r = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "method": method, "layer": 7})
        assert r.status_code == 422 and "feature maps" in r.json()["detail"]
    r = client.post(f"{API}/models/{mid}/explain", json={"sample": {"index": 2}, "target": 10})
    assert r.status_code == 422 and "0 to 9" in r.json()["detail"]
    r = client.post(f"{API}/models/{SHIPPED_ID}/explain", json={"sample": {"index": 1}, "method": "occlusion", "patch": 1, "stride": 1})
    assert r.status_code == 422 and "stride" in r.json()["detail"]


def test_stream_reports_occlusion_progress_then_the_same_result(client, small):
    mid = small[0]
    req = {"sample": {"index": 2}, "method": "occlusion", "patch": 4, "stride": 2, "target": 5, "checks": ["randomization"]}
    r = client.post(f"{API}/models/{mid}/explain/stream", json=req)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    progress, last = lines[:-1], lines[-1]
    assert progress and all(0 < p["done"] <= p["total"] for p in progress)
    assert {p["pass"] for p in progress} == {1, 2} and progress[-1]["done"] == progress[-1]["total"]
    plain = client.post(f"{API}/models/{mid}/explain", json=req).json()
    assert np.array_equal(decode_tensor(last["result"]["map"]), decode_tensor(plain["map"]))
    assert last["result"]["checks"]["randomization"]["rank_correlation"] == plain["checks"]["randomization"]["rank_correlation"]
    bad = client.post(f"{API}/models/{mid}/explain/stream", json={**req, "target": 10})
    assert bad.status_code == 422 and "0 to 9" in bad.json()["detail"]
