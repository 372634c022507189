"""The Learn mode's numbers not yet checked elsewhere: the 1x1 convolution's channel-mixing matrix in
step "layers" (on a Network-in-Network model made through the API) equals the layer's weights and its
outputs at the pixel equal the forward pass; step "deeper"'s top 9 equal the unit API's."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from .conftest import api, expect, shot
from .test_learn import INPUT, MODEL, PANEL, SAMPLE, TITLES, post, tensor

pytestmark = pytest.mark.browser

MAX = 10  # the view shows at most this many rows and columns of the matrix


def test_onebyone_matrix_is_the_weights_and_outputs_the_forward_pass(page):
    made = post(page, "/models", {"preset": "nin", "dataset": "shapes", "name": "learn-units-nin"})
    mid = made["id"]
    spec = api(page, "GET", f"/models/{mid}")["spec"]
    index = next(i for i, l in enumerate(spec["layers"]) if l["type"] == "conv2d" and l["kernel_size"] == 1)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{page.base_url}/#learn=layers&model={mid}&input={INPUT}")
    expect(page.locator(f'{PANEL} [data-learn="title"]')).to_have_text(TITLES["layers"])
    outs = page.locator(f'{PANEL} [data-learn="mix-out"]')
    expect(outs.first).to_have_attribute("data-layer", str(index))

    f = api(page, "GET", f"/models/{mid}/layers/{index}/filters")
    w = tensor(f)
    F, C, kh, kw = w.shape
    assert (kh, kw) == (1, 1)
    cells = page.locator(f'{PANEL} [data-learn="mix-w"]')
    expect(cells).to_have_count(min(F, MAX) * min(C, MAX))
    shown = cells.evaluate_all("els => els.map(e => [+e.dataset.out, +e.dataset.in, +e.dataset.value])")
    assert {(o, i) for o, i, _ in shown} == {(o, i) for o in range(min(F, MAX)) for i in range(min(C, MAX))}
    for o, i, v in shown:
        assert v == pytest.approx(float(w[o, i, 0, 0]), rel=1e-6, abs=1e-7), (o, i)

    expect(outs).to_have_count(min(F, MAX))
    row, col = int(outs.first.get_attribute("data-row") or -1), int(outs.first.get_attribute("data-col") or -1)
    body = post(page, f"/models/{mid}/forward?layers={index}&format=json", SAMPLE)
    y = tensor(body["layers"][0]["output"])
    got = outs.evaluate_all("els => els.map(e => [+e.dataset.out, +e.dataset.value])")
    assert [o for o, _ in got] == list(range(min(F, MAX)))
    for o, v in got:
        assert v == pytest.approx(float(y[o, row, col]), rel=1e-5, abs=1e-6), o
    # and the output is the matrix times the input channels at that pixel, plus the bias
    before = post(page, f"/models/{mid}/forward?layers={index - 1}&format=json", SAMPLE) if index else None
    x = tensor(before["layers"][0]["output"]) if before else None
    if x is not None:
        b = tensor(f["bias"]) if isinstance(f["bias"], dict) else np.asarray(f["bias"] or np.zeros(F), np.float32)
        mixed = w[:, :, 0, 0].astype(np.float64) @ x[:, row, col].astype(np.float64) + b
        np.testing.assert_allclose([v for _, v in got], mixed[: min(F, MAX)], rtol=1e-4, atol=1e-4)
    shot(page, "learn-onebyone", full_page=True)


def test_deeper_top9_are_the_unit_apis(page):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{page.base_url}/#learn=deeper&model={MODEL}&input={INPUT}")
    expect(page.locator(f'{PANEL} [data-learn="title"]')).to_have_text(TITLES["deeper"])
    find = page.locator(f'{PANEL} [data-learn="find-top"]')
    # the view's first GET of the cached top 9 has answered (a click before it can be overtaken)
    expect(page.locator(f'{PANEL} [data-learn="top-note"]')).to_contain_text("Press the button")
    expect(find).to_be_enabled()
    find.click()
    items = page.locator(f'{PANEL} [data-learn="top-item"]')
    expect(items).to_have_count(9)
    shown = items.evaluate_all(
        "els => els.map(e => [+e.dataset.layer, +e.dataset.channel, +e.dataset.index, +e.dataset.value,"
        " e.querySelector('figcaption').textContent])")
    layer, channel = shown[0][0], shown[0][1]
    assert all((s[0], s[1]) == (layer, channel) for s in shown)
    spec = api(page, "GET", f"/models/{MODEL}")["spec"]
    convs = [i for i, l in enumerate(spec["layers"]) if l["type"] == "conv2d"]
    assert layer == convs[-1]  # the view's deep layer is the last convolution
    body = api(page, "GET", f"/models/{MODEL}/layers/{layer}/channels/{channel}/top")
    assert body["status"] == "done" and len(body["items"]) == 9
    assert [s[2] for s in shown] == [it["index"] for it in body["items"]]
    for s, it in zip(shown, body["items"]):
        assert s[3] == pytest.approx(it["value"], rel=1e-6)
        assert s[4] == f"{it['value']:.2f}"
    again = api(page, "POST", f"/models/{MODEL}/layers/{layer}/channels/{channel}/top", json.dumps({}).encode())
    assert again.get("status") == "done" and again["items"] == body["items"]
    shot(page, "learn-deeper-top", full_page=True)



@pytest.mark.parametrize(("held", "channel"), [(True, 3), (False, 5)], ids=["before-the-model", "as-it-loads"])
def test_deeper_first_click_finds_the_top9(page, held, channel):
    """Issue 14, left open: the deeper step opened by its deep link and "Find its top 9 images" clicked
    the moment it is visible, waiting for nothing else; the search must still run and show 9 images of
    that channel. `held`: the page's forward passes are held back until the click is done, so the
    click surely comes before the model is there; otherwise the click races the loading as it may."""
    waiting: list = []  # the page's forward passes, held back until the click is done
    released = [not held]
    page.route(re.compile(r"/api/v1/models/[^/?]+/forward"),
               lambda route: route.continue_() if released[0] else waiting.append(route))
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{page.base_url}/#learn=deeper&model={MODEL}&input={INPUT}&channel={channel}")
    find = page.locator(f'{PANEL} [data-learn="find-top"]')
    find.click()  # Playwright waits for it to be visible and enabled, nothing else
    note = page.locator(f'{PANEL} [data-learn="top-note"]')
    if held:
        expect(note).to_contain_text("as soon as the model has loaded")
        released[0] = True
        for route in waiting:
            route.continue_()
    items = page.locator(f'{PANEL} [data-learn="top-item"]')
    expect(items).to_have_count(9)
    assert {int(c) for c in items.evaluate_all("els => els.map(e => e.dataset.channel)")} == {channel}
    expect(note).to_contain_text(f"channel {channel} most")
    body = api(page, "GET", f"/models/{MODEL}/layers/{items.first.get_attribute('data-layer')}/channels/{channel}/top")
    assert [int(i) for i in items.evaluate_all("els => els.map(e => e.dataset.index)")] == [it["index"] for it in body["items"]]
