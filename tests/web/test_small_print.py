"""Issue 13's small print in the page: receptive-field labels agree with the tooltips, a paused
steps/s keeps its last number, filter and dense weights on hover, a confusion cell's examples, and
the crop/fit toggle of an uploaded image."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest

from app.encoding import decode_tensor

from .conftest import api, expect, shot, wait_until
from .test_page import ensure_trainable, open_page

pytestmark = pytest.mark.browser

TIP = "[data-tooltip]"


def model_id(pg) -> str:
    return pg.evaluate("() => window.cnnvis.store.get().model.id")


def hover_at(pg, locator, x: float, y: float) -> str:
    """Move the pointer to (x, y) inside the element and return the tooltip's text."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box, "the element is not on screen"
    pg.mouse.move(box["x"] + 0.5, box["y"] + 0.5)  # a first move inside, then the point itself
    pg.mouse.move(box["x"] + x, box["y"] + y)
    expect(pg.locator(TIP)).to_be_visible()
    return pg.locator(TIP).text_content() or ""


def number_after(text: str, word: str) -> float:
    m = re.search(word + r" ([−\-\d.e]+)", text)
    assert m, f"no {word!r} in {text!r}"
    return float(m.group(1).replace("−", "-"))


def open_tab(pg, tab: str, selector: str):
    """Open the page on one tab and wait for ``selector`` in it; returns its first match."""
    open_page(pg)
    pg.click(f'[data-tab="{tab}"]')
    first = pg.locator(f"#panel-{tab} {selector}").first
    expect(first).to_be_visible()
    return first


def shown_weights(pg) -> np.ndarray:
    """The weights of the layer picked in the filters tab, from the API."""
    layer = int(pg.locator('input[name="filters-layer"]:checked').get_attribute("value") or -1)
    return decode_tensor(api(pg, "GET", f"/models/{model_id(pg)}/layers/{layer}/filters"))


def hover_cell(pg, locator, shape: tuple[int, int], row: int, col: int, want: float) -> str:
    """Hover cell (row, col) of a picture of ``shape`` cells; its tooltip's weight must be ``want``."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    tip = hover_at(pg, locator, box["width"] * (col + 0.5) / shape[1], box["height"] * (row + 0.5) / shape[0])
    assert math.isclose(number_after(tip, "weight"), want, rel_tol=1e-3, abs_tol=1e-6), tip
    return tip


def test_receptive_field_labels_agree_with_the_tooltips(page):
    open_page(page)
    cols = page.locator(".ov-col")
    checked = 0
    for i in range(cols.count()):
        col = cols.nth(i)
        layer = int(col.get_attribute("data-layer") or -1)
        label = (col.locator(".ov-rf").text_content() or "").strip()
        if layer < 0 or not label.startswith("RF") or not col.locator("canvas.map").count():
            continue  # the input, and the probabilities (bars, no receptive field in the tooltip)
        size = label.removeprefix("RF ").split("×")
        want = f"{size[0]}×{size[-1]}"
        col.scroll_into_view_if_needed()
        tip = hover_at(page, col.locator("canvas.map").first, 2, 2)
        assert f"receptive field {want} px" in tip, f"layer {layer}: label {label!r}, tooltip {tip!r}"
        assert want in (col.locator(".ov-rf").get_attribute("title") or "")
        checked += 1
    assert checked >= 4
    shot(page, "small-print-rf")


def test_paused_rate_and_the_named_transforms_of_the_next_batch(page):
    open_page(page)
    ensure_trainable(page)
    rate = page.locator('[data-counter="rate"]')
    page.click('[data-action="play"]')
    expect(rate).to_have_text(re.compile(r"\d"))
    page.click('[data-action="play"]')
    page.wait_for_selector('[data-action="play"][aria-pressed="false"]')
    expect(rate).to_have_text(re.compile(r"^[\d.,e]+ \(paused\)$"))
    expect(rate).to_have_attribute("data-paused", "true")
    shot(page, "small-print-paused-rate")
    # The next batch, before it is trained, names each transform applied to each image.
    page.click('[data-tab="training"]')
    page.check('[data-hyper="augment"]')
    named = page.locator("#panel-training [data-transforms]")
    expect(named.first).to_have_text(re.compile(r"rotate|shift|flip|brightness|contrast|noise|unchanged"))
    expect(page.locator("#panel-training .batch-item")).to_have_count(named.count())
    named.first.scroll_into_view_if_needed()
    shot(page, "small-print-augmented-batch")


def test_filter_and_dense_weights_on_hover(page):
    slice0 = open_tab(page, "filters", '[data-filter="0"] .slices canvas')
    w = shown_weights(page)
    row = w.shape[2] - 1  # the bottom-left cell
    assert f"(row {row}, col 0)" in hover_cell(page, slice0, w.shape[2:], row, 0, float(w[0, 0, row, 0]))
    shot(page, "small-print-filter-weight")
    # A dense layer: its matrix, a row per unit and a column per input.
    page.locator("#panel-filters label.seg", has_text="(matrix)").last.click()
    matrix = page.locator("#panel-filters canvas[data-matrix]")
    expect(matrix).to_be_visible()
    w = shown_weights(page)
    assert w.ndim == 2
    unit = w.shape[0] - 1
    assert f"unit {unit} ← input 1" in hover_cell(page, matrix, w.shape, unit, 1, float(w[unit, 1]))
    shot(page, "small-print-dense-matrix")


def test_a_confusion_cell_lists_its_examples(page):
    cell = open_tab(page, "evaluation", "td[data-cell]")
    n = int(cell.text_content() or 0)
    cell.click()
    thumbs = page.locator("#panel-evaluation [data-cell-examples] button.mis")
    expect(thumbs).to_have_count(min(n, 24))
    t, p = (cell.get_attribute("data-cell") or "").split(",")
    expect(page.locator("#panel-evaluation [data-cell-examples]")).to_contain_text(f"{n} image")
    shot(page, "small-print-confusion-cell")
    index = thumbs.first.get_attribute("data-index")
    thumbs.first.click()
    expect(page.locator(".input-name")).to_have_text(f"test sample #{index}")
    assert page.evaluate("() => window.cnnvis.store.get().forward.label") == int(t)
    assert page.evaluate("() => window.cnnvis.store.get().forward.prediction.index") == int(p)


def test_crop_or_fit_an_uploaded_image(page):
    from PIL import Image, ImageDraw

    open_page(page)
    img = Image.new("RGB", (123, 37), (250, 250, 250))
    ImageDraw.Draw(img).rectangle([4, 8, 30, 30], fill=(20, 20, 20))  # a mark the crop cuts away
    buf = io.BytesIO()
    img.save(buf, "PNG")
    page.set_input_files("#file-input", files=[{"name": "wide.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    origin = page.locator(".input-origin")
    expect(origin).to_be_visible()
    expect(page.locator('[data-fit="crop"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-origin-note]")).to_contain_text("shaded margins are cut off")
    picture = "() => document.querySelector('.input-canvas').toDataURL()"
    cropped = page.evaluate(picture)
    shot(page, "small-print-crop")
    page.click('[data-fit="pad"]')
    expect(page.locator('[data-fit="pad"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-origin-note]")).to_contain_text("padded with black")
    wait_until(lambda: page.evaluate(picture) != cropped, "the input to change to the padded image")
    assert page.evaluate("() => window.cnnvis.store.get().input.fit") == "pad"
    shot(page, "small-print-fit")
