"""One colour table (issue 10, item 3): for every colour map, the page's canvas (colormap.js over the
server's tables, drawn by canvas.js) and the engine (engine/colormaps.py) give the same RGB for the
same values; for one map, so does the API's PNG, decoded with Pillow."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from app.encoding import decode_tensor
from engine import pictures
from engine.colormaps import CHOICES, EPS, colorize

pytestmark = pytest.mark.browser

_rng = np.random.default_rng(0)
ARRAYS = {  # float32, as the page receives activations
    "signed": np.array([-3, -1.5, -1e-3, 0, 0, 1e-3, 0.75, 1.5, 2, 2], dtype=np.float32),  # negatives, zero, ties
    "non-negative": np.array([0, 0.25, 0.25, 1, 3.5, 7], dtype=np.float32),
    "all negative": np.array([-4, -2, -2, -1], dtype=np.float32),
    "constant": np.full(5, 2.5, dtype=np.float32),
    "zeros": np.zeros(4, dtype=np.float32),
    "below epsilon": np.array([0, EPS / 5, EPS / 2, -EPS / 4], dtype=np.float32),
    # exactly half-way between two entries (v / max * 255 = k + 0.5), where the order of the float64
    # operations decides: (v - a) / (b - a) * 255 and (v - a) * (255 / (b - a)) round apart here
    "half entries": (np.r_[0, (2 * np.arange(255) + 1) * 49, 24990] / 2**14).astype(np.float32),
    "half entries, signed": (np.r_[0, (2 * np.arange(255) + 1) * 49, 24990] - 12495).astype(np.float32) / 2**14,
    "random": (_rng.normal(size=500) * 3).astype(np.float32),
}

# Colour `arg.values` (lists of float32 values) the way the page draws a layer: its range from
# tensorStats, the map from resolveMap, the span from displayRange, the pixels from canvas.drawMap.
PAINT = """
    const { resolveMap, displayRange } = await import('/static/js/colormap.js');
    const { drawMap } = await import('/static/js/canvas.js');
    const { tensorStats } = await import('/static/js/scale.js');
    const canvas = document.createElementNS('http://www.w3.org/1999/xhtml', 'canvas');
    return arg.values.map((values) => {
      const data = Float32Array.from(values);
      const st = tensorStats({ shape: [data.length], data });
      const cmap = resolveMap(arg.choice, st.lo);
      const [lo, hi] = displayRange(cmap, st.lo, st.hi);
      drawMap(canvas, data, 0, 1, data.length, lo, hi, cmap);
      const px = canvas.getContext('2d').getImageData(0, 0, data.length, 1).data;
      return Array.from(px).filter((_, i) => i % 4 !== 3);
    });
"""


def paint(page, choice: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    got = page.evaluate(f"async (arg) => {{ {PAINT} }}", {"choice": choice, "values": [a.tolist() for a in arrays]})
    return [np.array(g, dtype=np.uint8).reshape(-1, 3) for g in got]


def open_index(page) -> list[str]:
    """Load the page itself (tables from its bootstrap); returns the colour-table requests it made."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/colormaps" in r.url else None)
    page.goto(page.base_url + "/")
    return asked


@pytest.mark.parametrize("choice", CHOICES)
def test_page_and_engine_colour_alike(page, choice):
    asked = open_index(page)
    got = paint(page, choice, list(ARRAYS.values()))
    for (name, values), rgb in zip(ARRAYS.items(), got, strict=True):
        want = colorize(values, choice)
        bad = np.flatnonzero((rgb != want).any(axis=1))
        assert bad.size == 0, f"{choice}, {name}: values {values[bad[:5]].tolist()} -> page {rgb[bad[:5]].tolist()}, engine {want[bad[:5]].tolist()}"
    assert asked == []  # the tables came with the page


def test_a_page_without_bootstrap_fetches_the_same_tables(page):
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=b""))
    page.goto(page.base_url + "/static/favicon.svg")
    values = ARRAYS["random"]
    for choice in ("auto", "puor", "gray"):
        assert np.array_equal(paint(page, choice, [values])[0], colorize(values, choice))


def test_api_png_matches_the_page(page):
    """A layer's activations.png (Pillow-decoded) against the page colouring the forward answer's
    numbers for that layer on one shared range, laid out as the engine lays out a grid."""
    models = json.loads(page.request.get(page.base_url + "/api/v1/models").body())
    model = next(m for m in models if m["id"].startswith("tiny-vgg"))
    base = f"{page.base_url}/api/v1/models/{model['id']}"
    fwd = json.loads(page.request.post(f"{base}/forward", data={"sample": {"split": "test", "index": 0}}).body())
    open_index(page)
    for layer, choice in ((0, "magma"), (0, "auto"), (1, "auto")):
        act = decode_tensor(next(x for x in fwd["layers"] if x["index"] == layer)["output"])
        png = page.request.get(f"{base}/layers/{layer}/activations.png?sample=0&split=test&cmap={choice}")
        assert png.status == 200
        got = np.asarray(Image.open(io.BytesIO(png.body())).convert("RGB"))
        rgb = paint(page, choice, [act.ravel()])[0]
        assert np.array_equal(got, pictures.activation_layout(rgb.reshape(*act.shape, 3))), (layer, choice)
