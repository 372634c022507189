"""The page's finer interactions: the architecture editor's fields follow its draft (revert, another
model), a dataset without a test split, clickable class rows, legends that fit, Clear on the
drawing pad and the steps/s counter."""

from __future__ import annotations

import io
import json
import uuid
import zipfile

import pytest

from .conftest import api, expect, record_requests, shot
from .test_page import ensure_trainable, open_page

pytestmark = pytest.mark.browser

KERNEL3 = 'input[aria-label="Layer 3 kernel size"]'
SUMMARY = "() => document.querySelector('.arch-summary').textContent"


def small_model(pg) -> dict:
    """A model on a small imported grey dataset (3 images per class, one of them for testing)."""
    from PIL import Image

    name = "tiny-grey"
    if not any(d["name"] == name for d in api(pg, "GET", "/datasets")):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for c, shade in (("dark", 30), ("light", 220)):
                for i in range(3):
                    im = io.BytesIO()
                    Image.new("L", (8, 8), shade + 5 * i).save(im, "PNG")
                    z.writestr(f"{c}/{i}.png", im.getvalue())
        b = uuid.uuid4().hex
        fields = {"name": name, "channels": "1", "height": "8", "width": "8", "test_fraction": "0.34"}
        parts = [f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="d.zip"\r\n'
                     "Content-Type: application/zip\r\n\r\n".encode() + buf.getvalue() + b"\r\n")
        parts.append(f"--{b}--\r\n".encode())
        api(pg, "POST", "/datasets", b"".join(parts), f"multipart/form-data; boundary={b}")
    return api(pg, "POST", "/models", json.dumps({"preset": "mlp", "dataset": name, "name": "MLP on tiny grey"}).encode())


def switch_to(pg, label_part: str) -> None:
    option = pg.locator("#model-select option", has_text=label_part).first
    option.wait_for(state="attached")  # the list of models arrives after the page shows its first model
    value = option.get_attribute("value")
    pg.select_option("#model-select", value)
    pg.wait_for_function("(v) => window.cnnvis.store.get().model?.id === v", arg=value, timeout=30_000)


def test_architecture_fields_follow_the_draft(page):
    open_page(page)
    switch_to(page, "LeNet-5")
    page.click('[data-tab="architecture"]')
    page.wait_for_function(f"() => /parameters/.test(({SUMMARY})())")
    original = page.evaluate(SUMMARY)
    assert page.input_value(KERNEL3) == "5"
    conv_doc = next(t["explanation"] for t in api(page, "GET", "/layer-types") if t["type"] == "conv2d")
    assert page.get_attribute('select[aria-label="Layer 3 type"]', "title") == conv_doc  # the explanation as plain text
    # typing keeps the focus and the text (the row is not rebuilt under the cursor)
    page.fill(KERNEL3, "")
    page.type(KERNEL3, "9", delay=30)
    page.wait_for_function(f"(s) => ({SUMMARY})() !== s && /parameters/.test(({SUMMARY})())", arg=original)
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Layer 3 kernel size"
    assert page.input_value(KERNEL3) == "9"
    page.click("text=Revert to the current model")
    page.wait_for_function(f"(s) => ({SUMMARY})() === s", arg=original)
    assert page.input_value(KERNEL3) == "5", "Revert left the edited value in the field"
    # another model with the same layer types: its values, not the old ones
    page.fill(KERNEL3, "3")
    page.wait_for_function(f"(s) => ({SUMMARY})() !== s && /parameters/.test(({SUMMARY})())", arg=original)
    page.click('[data-action="create-from-spec"]')
    page.wait_for_function("() => /My network/.test(window.cnnvis.store.get().model?.name || '')", timeout=30_000)
    page.wait_for_function(f"() => document.querySelector('{KERNEL3}').value === '3'")
    switch_to(page, "LeNet-5")
    page.wait_for_function(f"(s) => ({SUMMARY})() === s", arg=original)
    assert page.input_value(KERNEL3) == "5", "another model's values stayed in the fields"
    # moving a row keeps the focus on its button
    up = page.locator('button[aria-label="Move up layer 3"]')
    up.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement?.getAttribute('aria-label') === 'Move up layer 2'")
    page.click("text=Revert to the current model")
    page.wait_for_function(f"(s) => ({SUMMARY})() === s", arg=original)
    page.evaluate("document.querySelector('.arch').scrollIntoView({block: 'start'})")
    shot(page, "architecture-1280x800")


def test_a_dataset_without_test_images_opens_and_old_errors_go(page, tmp_path):
    """The server now refuses empty test splits, but older datasets may have one: the page is told
    (by a rewritten dataset answer) that the test split is empty, and must never ask for it."""
    page.expected_http_errors.update({415, 422})  # the bad file below, nothing else (no 404)
    model = small_model(page)

    def no_test_split(route):
        info = route.fetch().json()
        route.fulfill(json={**info, "sizes": {**info["sizes"], "test": 0}, "counts": {**info["counts"], "test": [0, 0]}})

    page.route(f"**/api/v1/datasets/{model['dataset']}", no_test_split)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(f"{r.url} {r.post_data or ''}") if "/samples/test/" in r.url or '"test"' in (r.post_data or "") else None)
    open_page(page)
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"not a picture" * 20)
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector('[data-message][data-kind="error"]:not([hidden])')
    asked.clear()
    switch_to(page, model["name"])
    page.wait_for_function("() => document.querySelector('.input-name').textContent === 'train sample #0'", timeout=30_000)
    assert page.is_hidden("[data-message]"), "the old error stayed on screen after the switch"
    srcs = page.eval_on_selector_all(".samples img", "els => els.map((e) => e.getAttribute('src'))")
    assert len(srcs) == 4 and all("/samples/train/" in s for s in srcs)
    page.locator(".sample").nth(2).click()
    page.wait_for_function("() => document.querySelector('.input-name').textContent === 'train sample #2'")
    assert page.get_attribute(".sample >> nth=2", "aria-pressed") == "true"
    assert not asked, f"the page asked for the empty test split: {asked}"


def test_class_rows_are_units_of_the_softmax(page):
    open_page(page)
    rows = page.locator(".ov-probs .prob-btn")
    assert rows.count() >= 2
    assert rows.first.get_attribute("aria-label")
    rows.nth(1).hover()
    page.wait_for_selector("[data-tooltip]:not([hidden])")
    tip = page.text_content("[data-tooltip]")
    assert "probability" in tip and "score before softmax" in tip
    rows.nth(1).click()
    page.wait_for_function("() => /unit 1\\b/.test(document.querySelector('#panel-detail .detail-title').textContent)")
    assert "probability" in page.text_content("#panel-detail .detail-stats")
    assert "score before softmax" in page.text_content("#panel-detail .detail-stats")
    assert rows.nth(1).get_attribute("aria-pressed") == "true"
    assert page.is_visible("#panel-detail .unit-mark"), "the selected unit is not marked in the grid"
    mark = page.eval_on_selector("#panel-detail .unit-mark", "m => m.style.transform")
    # the keyboard reaches the rows too
    rows.nth(0).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => /unit 0\\b/.test(document.querySelector('#panel-detail .detail-title').textContent)")
    assert page.eval_on_selector("#panel-detail .unit-mark", "m => m.style.transform") != mark
    assert rows.nth(0).get_attribute("aria-pressed") == "true" and rows.nth(1).get_attribute("aria-pressed") == "false"
    shot(page, "softmax-unit", full_page=True)


def test_column_labels_and_legends_fit(page):
    open_page(page)
    label = page.get_attribute('.ov-col[data-layer="-1"]', "aria-label")
    assert label.startswith("Input, output "), label
    clashes = page.evaluate(
        """() => Array.from(document.querySelectorAll('.ov-col .legend-ticks')).flatMap((t) => {
             const box = t.getBoundingClientRect();
             const spans = Array.from(t.children).filter((s) => s.textContent && getComputedStyle(s).display !== 'none')
               .map((s) => { const r = document.createRange(); r.selectNodeContents(s); return r.getBoundingClientRect(); });
             const bad = spans.some((r, i) => r.left < box.left - 0.5 || r.right > box.right + 0.5 || (i && r.left < spans[i - 1].right + 1));
             return bad ? [t.textContent] : [];
           })"""
    )
    assert not clashes, f"legend ticks overlap or spill: {clashes}"


def test_clear_on_the_drawing_pad_brings_back_the_previous_input(page):
    open_page(page)
    before = page.text_content(".input-name")
    page.click("button:has-text('Draw')")
    box = page.locator(".drawpad-canvas").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + 160, steps=6)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('.input-name').textContent === 'your drawing'", timeout=15_000)
    page.click(".drawpad button:has-text('Clear')")
    page.wait_for_function("(t) => document.querySelector('.input-name').textContent === t", arg=before, timeout=15_000)


def test_steps_per_second_resets_after_pause_and_reset(page):
    open_page(page)
    ensure_trainable(page)
    rate = '[data-counter="rate"]'
    page.click('[data-action="play"]')
    page.wait_for_function(f"() => document.querySelector('{rate}').textContent !== '–'", timeout=30_000)
    page.click('[data-action="play"]')
    page.wait_for_selector('[data-action="play"][aria-pressed="false"]', timeout=15_000)
    expect(page.locator(rate)).to_contain_text("(paused)")  # the last measured rate stays (issue 13)
    paused_at = page.text_content('[data-counter="step"]')
    page.click('[data-action="step"]')
    expect(page.locator('[data-counter="step"]')).not_to_have_text(paused_at)  # the step's answer is in
    expect(page.locator(rate)).not_to_have_text("–")
    page.wait_for_selector('[data-action="reset"]:not([disabled])')
    requests = record_requests(page)
    page.click('[data-action="reset"]')  # a trained model asks for confirmation first: nothing is lost yet
    assert page.text_content('[data-action="reset"]') == "Confirm reset"
    assert page.text_content('[data-counter="step"]') not in ("0", "")  # (a late answer may still move it on)
    assert not [r for r in requests if r.startswith("POST ") and r.endswith("/reset")], "one click reset the model"
    page.click('[data-action="reset"]')
    expect(page.locator(rate)).to_have_text("–")
    expect(page.locator('[data-counter="step"]')).to_have_text("0")
    resets = [r for r in requests if r.startswith("POST ") and r.endswith("/reset")]
    assert len(resets) == 1, f"the first click reset the model too: {resets}"
