"""The binary wire in the browser (issue 16): tensor.js decodes the binary forward answer into the
same numbers as the JSON one (float32 as views on the body, without copies), and the page draws its
overview from a binary forward answer."""

from __future__ import annotations

import pytest

from .conftest import api, expect
from .test_modules import run

pytestmark = pytest.mark.browser

BINARY = "application/vnd.cnnvis.tensors"


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_binary_decoder_equals_the_json_path(page, dtype):
    mid = api(page, "GET", "/models")[0]["id"]
    got = run(page, """
        const { decodeBinary, decodeTensor } = await import('/static/js/tensor.js');
        const url = `/api/v1/models/${arg.mid}/forward?dtype=${arg.dtype}`;
        const init = (accept) => ({ method: 'POST', body: JSON.stringify({ sample: { split: 'test', index: 0 } }),
                                     headers: { 'Content-Type': 'application/json', Accept: accept } });
        const js = await (await fetch(url, init('application/json'))).json();
        const res = await fetch(url, init(arg.binary));
        const buffer = await res.arrayBuffer();
        const bin = decodeBinary(buffer);
        const pairs = [[decodeTensor(js.input), bin.input]].concat(js.layers.map((l, i) => [decodeTensor(l.output), bin.layers[i].output]));
        const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
        return {
          type: res.headers.get('Content-Type'),
          shapes: pairs.every(([a, b]) => a.shape.join() === b.shape.join()),
          equal: pairs.map(([a, b]) => same(a.data, b.data)),
          views: pairs.map(([, b]) => b.data.buffer === buffer && b.data.byteOffset % 8 === 0),
          passThrough: decodeTensor(bin.input) === bin.input,
          rest: JSON.stringify([js.step, js.probabilities, js.prediction, js.layers.map((l) => [l.index, l.min, l.max, l.mean])])
            === JSON.stringify([bin.step, bin.probabilities, bin.prediction, bin.layers.map((l) => [l.index, l.min, l.max, l.mean])]),
        };
    """, {"mid": mid, "dtype": dtype, "binary": BINARY})
    assert got["type"] == BINARY and got["shapes"] and got["rest"] and got["passThrough"]
    assert all(got["equal"]) and len(got["equal"]) > 5
    assert all(got["views"]) == (dtype == "float32")  # float16 is expanded into new arrays


def test_decoder_refuses_a_body_that_is_not_binary(page):
    with pytest.raises(Exception, match="magic"):
        run(page, "const { decodeBinary } = await import('/static/js/tensor.js'); return decodeBinary(new ArrayBuffer(16));")


def test_the_page_draws_the_overview_from_a_binary_forward(page):
    asked: list[str] = []
    answered: list[str] = []
    page.on("request", lambda r: asked.append(r.headers.get("accept", "")) if r.url.split("?")[0].endswith("/forward") else None)
    page.on("response", lambda r: answered.append(r.headers.get("content-type", "")) if r.url.split("?")[0].endswith("/forward") else None)
    page.goto(page.base_url + "/")
    expect(page.locator(".ov-col canvas.map").first).to_be_visible()
    assert asked and all(a.startswith(BINARY) for a in asked)
    assert answered and answered[0] == BINARY
    expect(page.locator('.ov-col[data-layer="1"] canvas.map').first).to_be_visible()
