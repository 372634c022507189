"""The Learn mode (issue 14, item 10 and steps 1-5): each step opened by its deep link on the shipped
TinyVGG in a fresh page, its title, and the numbers it shows equal to the API's; keyboard navigation
between steps; screenshots test-artifacts/learn-<step>.png."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from .conftest import api, expect, shot, wait_until

pytestmark = pytest.mark.browser

MODEL = "tiny-vgg-shapes"
INPUT = "sample:test:3"
SAMPLE = {"sample": {"split": "test", "index": 3}}
PANEL = '[data-view="learn"]'
TITLES = {"conv": "Sliding a filter: the convolution", "stride": "Stride and padding: where the filter lands",
          "deeper": "Going deeper: seeing more of the image", "layers": "ReLU, pooling, dropout and 1×1 convolutions",
          "probabilities": "From features to probabilities"}


def open_step(pg, step: str, extra: str = "", titles: dict[str, str] = TITLES) -> None:
    """Open a Learn step by its deep link on the shipped TinyVGG and wait for its title and input."""
    pg.set_viewport_size({"width": 1280, "height": 900})
    pg.goto(f"{pg.base_url}/#learn={step}&model={MODEL}&input={INPUT}{extra}")
    expect(pg.locator(f'{PANEL} [data-learn="title"]')).to_have_text(titles[step])
    expect(pg.locator(".input-name")).not_to_be_empty()


def post(pg, path: str, body: dict):
    return api(pg, "POST", path, json.dumps(body).encode())


def tensor(t: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(t["data"]), dtype=np.float32).reshape(t["shape"])


def forward_layer(pg, index: int) -> np.ndarray:
    body = post(pg, f"/models/{MODEL}/forward?layers={index}&format=json", SAMPLE)
    return tensor(body["layers"][0]["output"])


def value(pg, name: str, within: str = PANEL) -> float:
    loc = pg.locator(f'{within} [data-learn="{name}"]')
    expect(loc).to_have_attribute("data-value", re.compile(r"."))
    return float(loc.get_attribute("data-value") or "nan")


def test_conv_step_sum_plus_bias_is_the_activation(page):
    open_step(page, "conv", "&layer=2&filter=4&row=5&col=7")
    pos = page.locator(f'{PANEL} [data-learn="position"]')
    expect(pos).to_have_attribute("data-col", "7")
    assert pos.get_attribute("data-row") == "5" and pos.get_attribute("data-layer") == "2"
    out = forward_layer(page, 2)
    assert value(page, "total") == pytest.approx(float(out[4, 5, 7]), abs=1e-4)
    assert value(page, "activation") == pytest.approx(float(out[4, 5, 7]), abs=1e-6)
    expect(page.locator(f'{PANEL} [data-learn="match"]')).to_have_text("the same number.")
    expect(page.locator(f'{PANEL} [data-learn="counts"]')).to_contain_text("3×3×10 = 90")
    expect(page.locator(f'{PANEL} [data-learn="counts"]')).to_contain_text("(62 − 3 + 2×0) / 1 + 1 = 60")
    expect(page.locator(f'{PANEL} .lm-table')).to_have_count(10)
    shot(page, "learn-conv", full_page=True)
    page.locator(f'{PANEL} [data-learn="step"]').click()  # one position on
    expect(pos).to_have_attribute("data-col", "8")
    assert value(page, "total") == pytest.approx(float(out[4, 5, 8]), abs=1e-4)
    assert "col=8" in page.evaluate("() => location.hash")
    page.locator(f'{PANEL} [data-learn="play"]').click()  # the animation moves on, and pauses
    wait_until(lambda: pos.get_attribute("data-col") not in ("8", None), "the animation to move")
    page.locator(f'{PANEL} [data-learn="play"]').click()
    expect(page.locator(f'{PANEL} [data-learn="play"]')).to_have_text("Play")


def one_conv(size: int, kernel: int, stride: int, padding: int) -> dict:
    conv = {"type": "conv2d", "filters": 1, "kernel_size": kernel, "stride": stride, "padding": padding}
    return {"input_shape": [1, size, size], "layers": [conv, {"type": "flatten"}, {"type": "dense", "units": 2}]}


def test_stride_sandbox_matches_the_engine(page):
    open_step(page, "stride", "&size=9&kernel=3&stride=2&padding=1")
    expected = post(page, "/specs/validate", {"spec": one_conv(9, 3, 2, 1)})["layers"][0]["output_shape"][1]
    assert value(page, "out-size") == expected == 5
    expect(page.locator(f'{PANEL} [data-learn="grid"] circle')).to_have_count(25)
    expect(page.locator(f'{PANEL} [data-learn="formula"]')).to_contain_text("(9 − 3 + 2×1) / 2 + 1")
    shot(page, "learn-stride", full_page=True)
    page.locator(f'{PANEL} [data-learn="padding"]').fill("0")
    page.locator(f'{PANEL} [data-learn="kernel"]').fill("12")
    detail = post(page, "/specs/validate", {"spec": one_conv(9, 12, 2, 0)})["detail"]
    assert "smaller than kernel_size 12" in detail
    expect(page.locator(f'{PANEL} [data-learn="error"]')).to_have_text(detail)


def test_deeper_step_receptive_fields_and_filters(page):
    open_step(page, "deeper")
    model = api(page, "GET", f"/models/{MODEL}")
    items = page.locator(f'{PANEL} [data-learn="rf"]')
    expect(items).to_have_count(6)  # 4 convolutions, 2 poolings
    for i in range(6):
        el = items.nth(i)
        layer = model["layers"][int(el.get_attribute("data-layer") or -1)]
        assert float(el.get_attribute("data-size") or 0) == layer["receptive_field"]["size"]
    expect(page.locator(f'{PANEL} [data-learn="filters"] canvas')).to_have_count(10)
    expect(page.locator(f'{PANEL} [data-box="picked"]')).to_have_count(1)
    shot(page, "learn-deeper", full_page=True)


def test_layers_step_relu_pool_dropout(page):
    open_step(page, "layers")
    conv0 = forward_layer(page, 0)
    zeroed = value(page, "relu-zeroed")
    channel = int(page.locator(f'{PANEL} [data-learn="map-channel"]').input_value())
    # the channel shown is the one closest to half negative (a clear before and after), the first on a
    # tie, among those not flat before the first pooling (layer 4)
    negatives = [int((c < 0).sum()) for c in conv0]
    cells = conv0[0].size
    pooled = forward_layer(page, 3)
    live = [c for c in range(len(negatives)) if pooled[c].max() > pooled[c].min()]
    assert channel == min(live, key=lambda c: abs(2 * negatives[c] - cells))
    assert zeroed == negatives[channel] and 0 < zeroed < cells
    assert value(page, "pool-winners") == 30 * 30
    drop = post(page, f"/models/{MODEL}/learn/dropout", {**SAMPLE, "layer": 9, "rate": 0.5, "seed": 0})
    assert value(page, "dropout-kept") == drop["kept"]
    expect(page.locator(f'{PANEL} [data-learn="no-onebyone"]')).to_be_visible()
    shot(page, "learn-layers", full_page=True)
    page.locator(f'{PANEL} [data-learn="new-mask"]').click()
    expect(page.locator(f'{PANEL} [data-learn="dropout-seed"]')).to_have_text("1")
    again = post(page, f"/models/{MODEL}/learn/dropout", {**SAMPLE, "layer": 9, "rate": 0.5, "seed": 1})
    assert value(page, "dropout-kept") == again["kept"]


def test_probabilities_step_matches_the_forward_pass(page):
    open_step(page, "probabilities")
    body = post(page, f"/models/{MODEL}/forward?layers=11&format=json", SAMPLE)
    logits = tensor(body["layers"][0]["output"])
    probs = page.locator(f'{PANEL} [data-learn="prob"]')
    expect(probs).to_have_count(len(body["probabilities"]))
    for k, p in enumerate(body["probabilities"]):
        assert float(probs.nth(k).get_attribute("data-value") or "nan") == pytest.approx(p, abs=1e-6)
        logit = page.locator(f'{PANEL} [data-learn="logit"][data-class="{k}"]')
        assert float(logit.get_attribute("data-value") or "nan") == pytest.approx(float(logits[k]), abs=1e-5)
    expect(page.locator(f'{PANEL} [data-learn="dense-input"]')).to_have_count(9)
    k = body["prediction"]["index"]
    expect(page.locator(f'{PANEL} [data-learn="class-score"]')).to_have_text(f"{logits[k]:.3f}".replace("-", "−"))
    assert float(page.locator(f'{PANEL} [data-learn="predicted-prob"]').get_attribute("data-value") or "nan") == \
        pytest.approx(body["probabilities"][k], rel=1e-4)
    shot(page, "learn-probabilities", full_page=True)


ORDER = ["conv", "stride", "deeper", "layers", "probabilities", "learning", "testing", "hyperparameters", "beyond"]


def test_keys_walk_every_step_and_links_keep_model_and_input(page):
    """ArrowRight from the first step to the last (Next then disabled), PageUp back to the first (Back
    then disabled): every step's title, its place, and a hash that is its own deep link."""
    from .test_learn_more import TITLES as MORE

    titles = {**TITLES, **MORE}
    assert list(titles) == ORDER
    open_step(page, "conv")
    panel, title = page.locator(PANEL), page.locator(f'{PANEL} [data-learn="title"]')
    count = page.locator(f'{PANEL} [data-learn="count"]')
    for keys, order in (("ArrowRight", ORDER), ("PageUp", ORDER[::-1])):
        for i, step in enumerate(order):
            if i:
                panel.press(keys)
            expect(title).to_have_text(titles[step])
            expect(count).to_have_text(f"Step {ORDER.index(step) + 1} of {len(ORDER)}")
            expect(page.locator(f'{PANEL} [data-learn-step="{step}"]')).to_have_attribute("aria-current", "true")
            hash_ = page.evaluate("() => location.hash")
            assert hash_.startswith(f"#learn={step}&model={MODEL}&input={INPUT.replace(':', '%3A')}"), hash_
        edge = "next" if keys == "ArrowRight" else "prev"
        expect(page.locator(f'{PANEL} [data-learn="{edge}"]')).to_be_disabled()
        panel.press(keys)  # at the end: nowhere to go
        expect(title).to_have_text(titles[order[-1]])


def test_keys_move_between_steps_and_the_button_closes(page):
    open_step(page, "conv")
    title = page.locator(f'{PANEL} [data-learn="title"]')
    panel = page.locator(PANEL)
    for key, step in (("ArrowRight", "stride"), ("PageDown", "deeper"), ("ArrowLeft", "stride"), ("PageUp", "conv")):
        panel.press(key)
        expect(title).to_have_text(TITLES[step])
        assert f"learn={step}" in page.evaluate("() => location.hash")
    page.locator(f'{PANEL} [data-learn="next"]').click()
    expect(title).to_have_text(TITLES["stride"])
    page.locator("[data-learn-toggle]").click()
    expect(panel).to_be_hidden()
    page.locator("[data-learn-toggle]").click()
    expect(title).to_have_text(TITLES["conv"])
