"""The colour table on the wire: GET /colormaps, the page's bootstrap, and the PNGs' `cmap` choice."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
from PIL import Image

from engine import pictures
from engine.checkpoint import load_checkpoint
from engine.colormaps import COLORMAPS
from engine.data.dataset import load_dataset, to_float
from tests.api.conftest import SHIPPED_ID

API = "/api/v1"
LAYERS = f"{API}/models/{SHIPPED_ID}/layers"


def test_colormaps_route_and_bootstrap_carry_the_table(client):
    r = client.get(f"{API}/colormaps")
    assert r.status_code == 200
    maps = r.json()
    assert [m["name"] for m in maps] == list(COLORMAPS)
    for m in maps:
        ref = COLORMAPS[m["name"]]
        assert (m["label"], m["kind"]) == (ref.label, ref.kind)
        lut = np.frombuffer(base64.b64decode(m["lut"], validate=True), dtype=np.uint8)
        assert np.array_equal(lut.reshape(256, 3), ref.lut)
    page = client.get("/").text
    boot = re.search(r'<script type="application/json" id="bootstrap">(.*?)</script>', page, re.S)
    if boot:  # the page's template may be missing in a bare install
        assert json.loads(boot.group(1))["colormaps"] == maps
    assert "/api/v1/colormaps" in client.get("/openapi.json").json()["paths"]


def test_png_colour_map_choice(client, data_dir):
    auto = client.get(f"{LAYERS}/0/activations.png?sample=0&split=test")
    magma = client.get(f"{LAYERS}/0/activations.png?sample=0&split=test&cmap=magma")
    assert auto.status_code == magma.status_code == 200 and auto.content != magma.content
    # the PNG is the engine's picture of the layer, on the chosen map
    model = load_checkpoint(client.get(f"{API}/models/{SHIPPED_ID}/checkpoint").content).model
    x = to_float(load_dataset(data_dir / "datasets" / "shapes.npz").x_test[:1])
    act = model.forward(x, stop=1).output[0]
    got = np.asarray(Image.open(io.BytesIO(magma.content)).convert("RGB"))
    assert np.array_equal(got, pictures.activation_grid(act, "magma"))
    assert client.get(f"{LAYERS}/2/filters.png?cmap=puor").status_code == 200
    for bad in (f"{LAYERS}/2/filters.png?cmap=jet", f"{LAYERS}/0/activations.png?sample=0&cmap=RdBu"):
        r = client.get(bad)
        assert r.status_code == 422
        assert r.json()["detail"].startswith("cmap: ") and "'viridis'" in r.json()["detail"]
