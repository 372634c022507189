"""The Learn mode's routes: a convolution spelled out at a row of positions (its sums plus bias are the
forward pass's activations) and dropout's mask on one image, with their errors."""

from __future__ import annotations

import numpy as np
import pytest

from app.encoding import decode_tensor
from tests.api.conftest import SHIPPED_ID, image_bytes, upload

API = "/api/v1"
LEARN = f"{API}/models/{SHIPPED_ID}/learn"
SAMPLE = {"sample": {"split": "test", "index": 3}}


def forward_layer(client, index: int, ref: dict = SAMPLE) -> np.ndarray:
    r = client.post(f"{API}/models/{SHIPPED_ID}/forward?layers={index}", json=ref)
    assert r.status_code == 200, r.text
    return decode_tensor(r.json()["layers"][0]["output"])


@pytest.mark.parametrize(("layer", "filt", "row"), [(0, 2, 5), (2, 9, 59)])
def test_conv_row_sums_are_the_forward_activations(client, layer, filt, row):
    r = client.post(f"{LEARN}/conv", json={**SAMPLE, "layer": layer, "filter": filt, "row": row})
    assert r.status_code == 200, r.text
    body = r.json()
    out = forward_layer(client, layer)
    assert body["output_shape"] == list(out.shape) and len(body["positions"]) == out.shape[2]
    c, k = body["input_shape"][0], body["kernel_size"]
    assert np.array(body["kernel"]).shape == (c, k, k)
    for p in body["positions"]:
        window, products = np.array(p["window"]), np.array(p["products"])
        np.testing.assert_allclose(products, window * np.array(body["kernel"]), rtol=1e-9, atol=1e-12)
        assert p["sum"] == pytest.approx(products.sum()) and p["total"] == pytest.approx(p["sum"] + body["bias"])
        assert p["activation"] == pytest.approx(float(out[filt, row, p["col"]]), abs=1e-6)
        assert p["total"] == pytest.approx(p["activation"], abs=1e-4)


def test_conv_one_position_of_an_uploaded_image(client):
    image_id = upload(client, image_bytes()).json()["id"]
    ref = {"image_id": image_id}
    r = client.post(f"{LEARN}/conv", json={**ref, "layer": 0, "filter": 1, "row": 10, "col": 20})
    assert r.status_code == 200, r.text
    (p,) = r.json()["positions"]
    assert (p["row"], p["col"], p["top"], p["left"]) == (10, 20, 10, 20)
    assert p["activation"] == pytest.approx(float(forward_layer(client, 0, ref)[1, 10, 20]), abs=1e-6)


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"layer": 1}, 422, "not a convolution"),
    ({"layer": 0, "filter": 10}, 422, "filter 10"),
    ({"layer": 0, "row": 62}, 422, "row 62"),
    ({"layer": 0, "col": 99}, 422, "columns [99]"),
    ({"layer": 40}, 404, "layer 40"),
])
def test_conv_errors_name_the_problem(client, body, status, says):
    r = client.post(f"{LEARN}/conv", json={**SAMPLE, **body})
    assert r.status_code == status and says in r.json()["detail"]


def test_conv_needs_an_input(client):
    assert client.post(f"{LEARN}/conv", json={"layer": 0}).status_code == 422
    assert client.post(f"{API}/models/nope/learn/conv", json={**SAMPLE, "layer": 0}).status_code == 404


def test_dropout_after_a_layer_is_seeded_and_rescaled(client):
    body = {**SAMPLE, "layer": 9, "rate": 0.5, "seed": 4}
    r = client.post(f"{LEARN}/dropout", json=body)
    assert r.status_code == 200, r.text
    d = r.json()
    before, keep, train, ev = (decode_tensor(d[k]) for k in ("before", "keep", "train", "evaluation"))
    np.testing.assert_array_equal(before, forward_layer(client, 9))
    np.testing.assert_array_equal(ev, before)
    np.testing.assert_allclose(train, before * keep * 2.0, rtol=1e-6)
    assert not d["in_model"] and d["scale"] == 2.0 and d["kept"] == int(keep.sum()) and d["count"] == keep.size
    assert client.post(f"{LEARN}/dropout", json=body).json()["keep"] == d["keep"]
    assert client.post(f"{LEARN}/dropout", json={**body, "seed": 5}).json()["keep"] != d["keep"]


def test_dropout_errors(client):
    assert client.post(f"{LEARN}/dropout", json={**SAMPLE, "layer": 99}).status_code == 404
    assert client.post(f"{LEARN}/dropout", json={**SAMPLE, "layer": 1, "rate": 0.99}).status_code == 422


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_localize_box_is_the_engines_peak_spot_on_the_returned_map(client, threshold):
    """The box is `engine.learn.localize` on the very map returned; the peak is the map's maximum."""
    from engine.learn import localize

    r = client.post(f"{LEARN}/localize", json={**SAMPLE, "threshold": threshold})
    assert r.status_code == 200, r.text
    body = r.json()
    cam = decode_tensor(body["map"])
    want = localize(cam, threshold)
    b = body["box"]
    assert (b["top"], b["left"], b["bottom"], b["right"], b["cells"], b["hot"]) == \
        (want.top, want.left, want.bottom, want.right, want.cells, want.hot)
    assert cam[b["peak_row"], b["peak_col"]] == cam.max() and b["cutoff"] == pytest.approx(threshold * float(cam.max()))
    assert 1 <= b["cells"] <= b["hot"] <= (cam >= b["cutoff"]).sum()


@pytest.mark.parametrize("threshold", [0, 1.5, "half"])
def test_localize_threshold_is_checked(client, threshold):
    assert client.post(f"{LEARN}/localize", json={**SAMPLE, "threshold": threshold}).status_code == 422
