"""The Learn mode's steps 6-9 (issue 14): each opened by its deep link on the shipped TinyVGG in a
fresh page, a number it shows equal to the API's; screenshots test-artifacts/learn-<step>.png."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import api, expect, shot
from . import test_learn as learn
from .test_learn import MODEL, PANEL, SAMPLE, post

pytestmark = pytest.mark.browser

TITLES = {"learning": "Learning: forward, loss, backward, update", "testing": "Testing: how good is it really?",
          "hyperparameters": "Choosing hyperparameters: depth, filters, kernel, stride, padding",
          "beyond": "Beyond classification: where, transfer, augmentation"}


def open_step(pg, step: str, extra: str = "") -> None:
    learn.open_step(pg, step, extra, titles=TITLES)


def attr(pg, name: str, key: str = "data-value") -> str:
    loc = pg.locator(f'{PANEL} [data-learn="{name}"]')
    loc.first.wait_for()
    return loc.first.get_attribute(key) or ""


def test_learning_step_loss_update_and_lr_experiment(page):
    open_step(page, "learning", "&lrsteps=10")
    grads = post(page, f"/models/{MODEL}/gradients", SAMPLE)
    assert float(attr(page, "loss")) == pytest.approx(grads["loss"], abs=1e-6)
    # the two losses spelled out: −ln(p of the right class) and E = ½ Σ (target − p)², from the API's probabilities
    p, k = np.array(grads["probabilities"], dtype=np.float64), grads["label"]
    target = np.eye(len(p))[k]
    assert float(attr(page, "ce")) == pytest.approx(-np.log(p[k]), rel=1e-9, abs=1e-12)
    assert float(attr(page, "mse")) == pytest.approx(0.5 * ((target - p) ** 2).sum(), rel=1e-9, abs=1e-15)
    assert grads["loss_name"] == "cross_entropy" and float(attr(page, "ce")) == pytest.approx(grads["loss"], rel=1e-3, abs=1e-6)
    w, g, lr = (float(attr(page, n)) for n in ("w-before", "dw", "lr-value"))
    assert lr == api(page, "GET", f"/models/{MODEL}")["training"]["learning_rate"]
    assert float(attr(page, "w-after")) == pytest.approx(w - lr * g, abs=1e-7)
    page.locator(f'{PANEL} [data-learn="lr-run"]').click()
    curves = page.locator(f'{PANEL} [data-learn="lr-curve"]')
    expect(curves).to_have_count(3)
    body = post(page, f"/models/{MODEL}/learn/lr-experiment", {"steps": 10})
    for i, c in enumerate(body["curves"]):
        assert float(curves.nth(i).get_attribute("data-rate") or "nan") == pytest.approx(c["learning_rate"])
        final = [v for v in c["loss"] if v is not None][-1]
        assert float(curves.nth(i).get_attribute("data-final") or "nan") == pytest.approx(final, abs=1e-6)
    expect(page.locator(f'{PANEL} path.chart-line')).to_have_count(3)
    shot(page, "learn-learning", full_page=True)


def test_testing_step_accuracy_is_the_evaluation(page):
    open_step(page, "testing")
    ev = post(page, f"/models/{MODEL}/evaluate", {"split": "test"})
    assert float(attr(page, "accuracy")) == pytest.approx(ev["accuracy"])
    k = len(ev["classes"])
    expect(page.locator(f'{PANEL} [data-learn="cell"]')).to_have_count(k * k)
    expect(page.locator(f'{PANEL} [data-learn="wrong"]')).to_have_count(min(8, len(ev["misclassified"])))
    shot(page, "learn-testing", full_page=True)


def test_hyperparameters_step_counts_are_the_engines(page):
    open_step(page, "hyperparameters", "&layer=5&change=filters")
    spec = api(page, "GET", f"/models/{MODEL}")["spec"]
    spec["layers"][5]["filters"] *= 2
    after = post(page, "/specs/validate", {"spec": spec})
    assert after["valid"]
    expect(page.locator(f'{PANEL} [data-learn="params-after"]')).to_have_attribute("data-value", str(after["parameters"]))
    maps = [layer for layer in after["layers"] if len(layer["output_shape"]) == 3]
    assert float(attr(page, "rf-after")) == maps[-1]["receptive_field"]["size"]
    shot(page, "learn-hyperparameters", full_page=True)
    page.locator(f'{PANEL} [data-learn="hp-change"]').select_option("add")
    spec["layers"][5]["filters"] //= 2
    spec["layers"].insert(6, {"type": "conv2d", "filters": 10, "kernel_size": 3, "stride": 1, "padding": 1})
    added = post(page, "/specs/validate", {"spec": spec})
    expect(page.locator(f'{PANEL} [data-learn="params-after"]')).to_have_attribute("data-value", str(added["parameters"]))


def drawn_box(pg, frame: int, H: int, W: int) -> tuple[float, float, float, float]:
    """The box drawn over figure ``frame`` of the localization section, in the map's cells: (top, left,
    bottom, right) with bottom and right inclusive, measured on the screen."""
    fig = pg.locator(f'{PANEL} [data-learn="localize"] .lm-frame').nth(frame)
    outer = fig.locator("canvas").bounding_box()
    inner = fig.locator('[data-box="picked"]').bounding_box()
    assert outer and inner
    sy, sx = outer["height"] / H, outer["width"] / W
    return ((inner["y"] - outer["y"]) / sy, (inner["x"] - outer["x"]) / sx,
            (inner["y"] + inner["height"] - outer["y"]) / sy - 1, (inner["x"] + inner["width"] - outer["x"]) / sx - 1)


def check_box(pg, threshold: float) -> dict:
    """The box the page states and draws (on the image and on the map) is the API's at ``threshold``."""
    body = post(pg, f"/models/{MODEL}/learn/localize", {**SAMPLE, "threshold": threshold})
    loc, (H, W) = body["box"], body["map"]["shape"]
    stated = pg.locator(f'{PANEL} [data-learn="box"]')
    expect(stated).to_have_attribute("data-cells", str(loc["cells"]))
    assert [stated.get_attribute(f"data-{k}") for k in ("top", "left", "bottom", "right", "hot")] == \
        [str(loc[k]) for k in ("top", "left", "bottom", "right", "hot")]
    expect(stated).to_contain_text(f"rows {loc['top']}–{loc['bottom']}, columns {loc['left']}–{loc['right']}")
    for frame in (0, 1):
        got = drawn_box(pg, frame, H, W)
        assert got == pytest.approx((loc["top"], loc["left"], loc["bottom"], loc["right"]), abs=0.35), (frame, got)
    return body


def test_beyond_step_box_transfer_and_batch(page):
    open_step(page, "beyond", "&to=shapes&threshold=0.5")
    expect(page.locator(f'{PANEL} [data-learn="threshold-value"]')).to_have_text("50% of the peak")
    body = check_box(page, 0.5)
    loc = body["box"]
    # tight: the peak's spot, not every hot cell of the map
    assert loc["cells"] <= loc["hot"] and (loc["bottom"] - loc["top"] + 1) * (loc["right"] - loc["left"] + 1) < 0.5 * 64 * 64
    expect(page.locator(f'{PANEL} [data-box="picked"]')).to_have_count(2)
    expect(page.locator(f'{PANEL} [data-box="peak"]')).to_have_count(2)
    slider = page.locator(f'{PANEL} [data-learn="threshold"]')
    slider.focus()
    for _ in range(4):
        slider.press("ArrowRight")  # 4 steps of 5%: 70%
    expect(page.locator(f'{PANEL} [data-learn="threshold-value"]')).to_have_text("70% of the peak")
    assert "threshold=0.7" in page.evaluate("() => location.hash")
    check_box(page, 0.7)
    page.locator(f'{PANEL} [data-learn="transfer-go"]').click()
    layers = page.locator(f'{PANEL} [data-learn="transfer-layer"]')
    expect(layers).to_have_count(13)
    frozen = [int(layers.nth(i).get_attribute("data-layer") or -1) for i in range(13)
              if layers.nth(i).get_attribute("data-frozen") == "true"]
    assert frozen == [0, 2, 5, 7]
    expect(page.locator(f'{PANEL} [data-learn="batch-image"]')).to_have_count(8)
    shot(page, "learn-beyond", full_page=True)
    page.locator(f'{PANEL} [data-learn="transfer-train"]').click()
    expect(page.locator(f'{PANEL} [data-learn="transfer-loss"]')).to_have_attribute("data-step", "20")
    page.expected_http_errors.add(422)  # digits has one channel: the copy is refused, and the page says why
    page.locator(f'{PANEL} [data-learn="transfer-dataset"]').select_option("digits")
    page.locator(f'{PANEL} [data-learn="transfer-go"]').click()
    expect(page.locator(f'{PANEL} [data-learn="transfer-error"]')).to_contain_text("channels")
