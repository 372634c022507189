"""What a unit looks for, over HTTP: the top-9 pass (cached per step, invalidated by training and
reset, progress readable while it runs) and dreams (activation maximization)."""

from __future__ import annotations

import base64
import io
import threading

import pytest
from PIL import Image

from app.services import features as service
from tests.api.conftest import SHIPPED_ID, SMALL_SPEC

API = "/api/v1"


def unit(mid: str, layer: int, channel: int, what: str = "top") -> str:
    return f"{API}/models/{mid}/layers/{layer}/channels/{channel}/{what}"


def png(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.fixture
def passes(monkeypatch) -> list[int]:
    """Counts the dataset passes the service runs."""
    calls: list[int] = []
    original = service.features.layer_top_activations

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(service.features, "layer_top_activations", counted)
    return calls


def test_top_nine_with_crops_and_projections(client, passes):
    assert client.get(unit(SHIPPED_ID, 4, 1)).json()["status"] == "none"
    r = client.post(unit(SHIPPED_ID, 4, 1))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "done" and body["done"] == body["total"] == 64 and len(body["items"]) == 9
    values = [it["value"] for it in body["items"]]
    assert values == sorted(values, reverse=True)
    for it in body["items"]:
        top, left, bottom, right = it["box"]
        assert png(it["crop"]).size == (right - left, bottom - top) == png(it["projection"]).size
    # the same step: answered from the cache, for this channel and any other of the layer
    assert client.get(unit(SHIPPED_ID, 4, 1)).json()["items"] == body["items"]
    assert client.post(unit(SHIPPED_ID, 4, 7)).json()["status"] == "done"
    assert len(passes) == 1


def test_a_training_step_or_a_reset_invalidates_the_cache(client, small_model, passes):
    mid = small_model["id"]
    assert client.post(unit(mid, 1, 2)).json()["status"] == "done"
    assert client.post(unit(mid, 1, 2)).json()["status"] == "done" and len(passes) == 1
    assert client.post(f"{API}/models/{mid}/train", json={"steps": 1}).status_code == 200
    assert client.get(unit(mid, 1, 2)).json()["status"] == "none"
    first = client.post(unit(mid, 1, 2)).json()
    assert first["status"] == "done" and first["step"] == 1 and len(passes) == 2
    assert client.post(f"{API}/models/{mid}/reset", json={"seed": 1}).status_code == 200  # step 1 -> 0, new weights
    assert client.get(unit(mid, 1, 2)).json()["status"] == "none"


def test_progress_is_readable_while_the_pass_runs(client, monkeypatch):
    original = service.features.layer_top_activations
    started, go = threading.Event(), threading.Event()

    def slow(model, images, layer, k, *, progress):
        def report(done, total):
            progress(done, total)
            if not started.is_set():
                started.set()
                go.wait(10)
        return original(model, images, layer, k, batch=16, progress=report)

    monkeypatch.setattr(service.features, "layer_top_activations", slow)
    answers = []
    worker = threading.Thread(target=lambda: answers.append(client.post(unit(SHIPPED_ID, 2, 0))))
    worker.start()
    assert started.wait(10)
    running = client.get(unit(SHIPPED_ID, 2, 0)).json()
    assert (running["status"], running["done"], running["total"]) == ("running", 16, 64)
    assert client.post(unit(SHIPPED_ID, 2, 0)).json()["status"] == "running"  # no second pass
    go.set()
    worker.join(20)
    assert answers[0].json()["status"] == "done"
    final = client.get(unit(SHIPPED_ID, 2, 0)).json()
    assert final["status"] == "done" and final["done"] == final["total"] == 64


@pytest.mark.parametrize("layer, channel, status, words", [
    (99, 0, 404, "layer 99 does not exist"),
    (10, 0, 422, "has no maps"),
    (2, 10, 404, "channel 10 does not exist"),
])  # fmt: skip
def test_bad_units_are_refused_clearly(client, layer, channel, status, words):
    for method in ("get", "post"):
        r = client.request(method.upper(), unit(SHIPPED_ID, layer, channel))
        assert r.status_code == status and words in r.json()["detail"]


def test_dream_raises_the_unit_and_reports_progress(client, small_model):
    mid = small_model["id"]
    r = client.post(unit(mid, 3, 1, "maximize"), json={"seed": 4, "steps": 24})
    assert r.status_code == 200, r.text
    body = r.json()
    assert png(body["image"]).size == (28, 28) and body["steps"] == 24
    assert body["after"] > body["before"] and body["after"] > body["grey"]
    status = client.get(unit(mid, 3, 1, "maximize")).json()
    assert status["status"] == "done" and status["done"] == status["total"] == 24
    assert client.post(unit(mid, 3, 1, "maximize"), json={"steps": 100_000}).status_code == 422
    assert client.post(unit(mid, 6, 0, "maximize"), json={}).status_code == 422  # flatten: no maps
