"""The page in a real browser (issue 5, item 11): load, upload (picker, drop, paste), bad file, step,
play/pause, the architecture editor's errors; no console errors anywhere; screenshots saved to
test-artifacts/. How long the page takes to load is not a test's business (a busy machine is slow)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from .conftest import api, expect, record_requests, shot, wait_until

pytestmark = pytest.mark.browser

OVERVIEW = ".ov-col canvas.map"


def open_page(pg, width: int = 1280, height: int = 800) -> None:
    """Load the page and wait until the overview's maps and the input's name are on screen."""
    pg.set_viewport_size({"width": width, "height": height})
    pg.goto(pg.base_url + "/")
    pg.wait_for_selector(OVERVIEW, state="visible", timeout=30_000)
    expect(pg.locator(".input-name")).not_to_be_empty()


def maps_signature(pg) -> str:
    """The pixels of the first few thumbnails of the first conv column (changes when the input does)."""
    return pg.evaluate(
        """() => Array.from(document.querySelectorAll('.ov-maps canvas.map')).slice(0, 14)
               .map((c) => c.toDataURL()).join('|')"""
    )


def png_bytes(colour=(230, 40, 40), size=64) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (245, 245, 245))
    ImageDraw.Draw(img).rectangle([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def loss_points(pg) -> int:
    """Raw training points drawn in the loss chart (one `M..h0` per point)."""
    return pg.evaluate(
        """() => { const p = document.querySelector('#panel-training .chart-fig:first-child .chart-dots');
                   return p ? (p.getAttribute('d').match(/M/g) || []).length : 0; }"""
    )


def step_count(pg) -> int:
    return int(pg.text_content('[data-counter="step"]').replace(",", ""))


def current_model(pg) -> dict:
    return pg.evaluate("() => window.cnnvis.store.get().model")


def maps_change_from(pg, before: str, why: str) -> None:
    wait_until(lambda: maps_signature(pg) != before, f"the maps to change for {why}")


def curves_and_batch_drawn(pg) -> None:
    """The training panel is done loading: the loss chart has every recorded step and the next
    mini-batch is shown (both arrive after the panel does, and the batch changes its height)."""
    mid = current_model(pg)["id"]
    recorded = len(api(pg, "GET", f"/models/{mid}/history")["steps"])
    wait_until(lambda: loss_points(pg) == recorded, f"the loss chart to show the {recorded} recorded steps")
    step = current_model(pg)["step"]
    expect(pg.locator("#panel-training p.hint", has_text=f" images of step {step + 1:,}, with")).to_be_visible()


def page_caught_up(pg) -> int:
    """After training stopped: wait until the page's step counter shows the server's step; returns it."""
    mid = current_model(pg)["id"]

    def caught_up() -> list[int] | None:
        server = api(pg, "GET", f"/models/{mid}")["step"]
        return [server] if server == step_count(pg) else None

    return wait_until(caught_up, "the page's step counter to show the server's step after training stopped")[0]


def ensure_trainable(pg) -> None:
    """A ready-trained (read-only) model is copied first, as a person would, so counts start clean."""
    if pg.is_visible(".modelbar .badge"):
        pg.click('[data-tab="training"]')
        pg.click('[data-action="copy"]')
        pg.wait_for_selector(".modelbar .badge", state="hidden", timeout=30_000)
        pg.wait_for_selector(OVERVIEW, state="visible")


def test_load_shows_the_overview(page):
    open_page(page)  # first load may create the default model and generate its dataset
    columns = page.locator(".ov-col")
    assert columns.count() >= 5
    assert page.locator(OVERVIEW).count() > 10
    assert page.locator(".ov-probs .prob.is-pred").count() == 1
    assert page.locator(".ov-col .legend-ticks").first.text_content().strip()
    rendering = page.eval_on_selector(OVERVIEW, "c => getComputedStyle(c).imageRendering")
    assert rendering in ("pixelated", "crisp-edges")
    shot(page, "overview-1280x800")
    page.set_viewport_size({"width": 420, "height": 900})
    wait_until(lambda: page.evaluate("document.documentElement.scrollWidth") <= 421,
               "the page to fit a narrow screen (it scrolls sideways)")
    shot(page, "overview-420-wide")
    shot(page, "overview-420-wide-full", full_page=True)


def test_hover_shows_value_and_receptive_field_and_click_shows_detail(page):
    open_page(page)
    tile = page.locator('.ov-col[data-layer="2"] canvas.map').first
    tile.hover()
    page.wait_for_selector("[data-tooltip]:not([hidden])")
    assert "=" in page.text_content("[data-tooltip]")
    page.wait_for_selector(".rf-box:not([hidden])")
    tile.click()
    page.wait_for_selector("#panel-detail .slices canvas")
    assert "channel 0" in page.text_content("#panel-detail .detail-title")
    shot(page, "detail")


def test_upload_png_changes_the_maps(page, tmp_path):
    open_page(page)
    before = maps_signature(page)
    path = tmp_path / "red-square.png"
    path.write_bytes(png_bytes())
    page.set_input_files("#file-input", str(path))
    expect(page.locator(".input-name")).to_have_text("red-square.png")
    maps_change_from(page, before, "the uploaded image")
    shot(page, "uploaded-png")


def test_bad_file_shows_the_servers_error_and_keeps_the_state(page, tmp_path):
    page.expected_http_errors.update({415, 422})
    open_page(page)
    name = page.text_content(".input-name")
    before = maps_signature(page)
    path = tmp_path / "not-an-image.png"
    path.write_bytes(b"this is not a picture at all" * 10)
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector('[data-message][data-kind="error"]:not([hidden])')
    text = page.text_content("[data-message-text]")
    assert text and len(text) > 5
    assert page.text_content(".input-name") == name
    assert maps_signature(page) == before
    shot(page, "bad-file-error")


def test_step_adds_a_point_to_the_loss_curve(page):
    open_page(page)
    ensure_trainable(page)
    page.click('[data-tab="training"]')
    page.wait_for_selector("#panel-training .chart-svg")
    curves_and_batch_drawn(page)
    before = loss_points(page)
    step0 = step_count(page)
    page.click('[data-action="step"]')
    page.wait_for_function(f"() => {{ const p = document.querySelector('#panel-training .chart-dots');"
                           f" return p && (p.getAttribute('d').match(/M/g) || []).length > {before}; }}", timeout=30_000)
    assert loss_points(page) == before + 1
    assert step_count(page) == step0 + 1
    with page.expect_download() as download:
        page.click("text=Download CSV")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.startswith("split,step,epoch,loss,accuracy") and "\ntrain," in text
    shot(page, "after-one-step", full_page=True)


def test_play_then_pause_trains_and_stops(page):
    open_page(page)
    ensure_trainable(page)
    page.click('[data-tab="training"]')
    # what is above the learning curves must not move; the curves' panel may grow below
    layout = """() => JSON.stringify([...['.overview', '.ov-col canvas.map', '.sidebar', '.stage', '.dock .tabs']
        .map((s) => document.querySelector(s).getBoundingClientRect()), document.querySelector('.train-charts').getBoundingClientRect().top])"""
    page.wait_for_selector("#panel-training .chart-svg")
    curves_and_batch_drawn(page)
    before = page.evaluate(layout)
    page.click('[data-action="play"]')
    page.wait_for_selector('[data-action="play"][aria-pressed="true"]')
    start = step_count(page)
    page.wait_for_function(f"() => Number(document.querySelector('[data-counter=\"step\"]').textContent.replace(/,/g, '')) >= {start + 3}",
                           timeout=30_000)
    assert page.evaluate(layout) == before, "the layout moved while training"
    shot(page, "playing", full_page=True)
    page.click('[data-action="play"]')  # now the pause button
    page.wait_for_selector('[data-action="play"][aria-pressed="false"]', timeout=15_000)
    stopped = page_caught_up(page)
    # training that went on after the pause would refuse this with a 409 (and the step would be further)
    assert api(page, "POST", f"/models/{current_model(page)['id']}/train", b'{"steps": 1}')["step"] == stopped + 1
    assert loss_points(page) >= 3


def test_architecture_editor_rejects_an_impossible_layer(page):
    open_page(page)  # an invalid spec is a 200 answer ({"valid": false}): no 422 in the console
    page.click('[data-tab="architecture"]')
    page.wait_for_selector(".arch-row")
    page.wait_for_function("() => /parameters/.test(document.querySelector('.arch-summary').textContent)")
    rows = page.locator(".arch-row").count()
    page.select_option('select[aria-label="Type of layer to add"]', "conv2d")
    page.click('[data-action="add-layer"]')  # a convolution after the softmax: its input is a vector
    page.wait_for_selector(".arch-row.has-error .arch-error:not([hidden])", timeout=10_000)
    bad = page.locator(".arch-row.has-error")
    assert bad.get_attribute("data-index") == str(rows)
    assert len(bad.locator(".arch-error").text_content()) > 5
    assert page.is_disabled('[data-action="create-from-spec"]')
    shot(page, "architecture-error", full_page=True)
    bad.locator('button[data-op="remove"]').click()
    page.wait_for_selector(".arch-row.has-error", state="detached")
    page.wait_for_function("() => /parameters/.test(document.querySelector('.arch-summary').textContent)")


def test_evaluation_shows_a_confusion_matrix(page):
    open_page(page)
    page.click('[data-tab="evaluation"]')
    page.wait_for_selector(".cm-cell", timeout=60_000)
    assert page.locator(".cm tbody tr").count() >= 2
    mis = page.locator(".mis")
    if mis.count():
        mis.first.click()
        page.wait_for_function("() => /sample #/.test(document.querySelector('.input-name').textContent)")
    shot(page, "evaluation", full_page=True)


def test_colour_scale_modes_and_lock(page):
    open_page(page)
    legend = '.ov-col[data-layer="0"] .legend-ticks'
    per_layer = page.text_content(legend)
    page.click("label[for=scale-channel]")
    page.wait_for_function(f"() => document.querySelector('{legend}').textContent !== {per_layer!r}")
    page.click("label[for=scale-layer]")
    page.wait_for_function(f"() => document.querySelector('{legend}').textContent === {per_layer!r}")
    page.click("text=Lock range")
    page.wait_for_selector('button[aria-pressed="true"]:has-text("Lock range")')
    before = maps_signature(page)
    page.locator(".sample").nth(3).click()
    page.wait_for_function("() => /#3$/.test(document.querySelector('.input-name').textContent)")
    maps_change_from(page, before, "sample #3")
    assert page.text_content(legend) == per_layer, "a locked range changed with the image"
    page.click("text=Lock range")
    page.wait_for_function(f"() => document.querySelector('{legend}').textContent !== {per_layer!r}")


def test_keyboard_reaches_the_maps(page):
    open_page(page)
    tile = page.locator('.ov-col[data-layer="2"] canvas.map').nth(1)
    tile.focus()
    page.wait_for_selector(".rf-box:not([hidden])")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function("() => /channel 2/.test(document.querySelector('#panel-detail .detail-title').textContent)")
    unnamed = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, input, select, [role=button], [role=tab]'))
                 .filter((el) => !el.closest('[hidden]'))
                 .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || (el.labels && el.labels.length)))
                 .map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert not unnamed, f"controls without a label: {unnamed}"


def test_step_n_trains_n_steps_live_then_stops(page):
    open_page(page)
    ensure_trainable(page)
    start = step_count(page)
    page.fill('input[aria-label="Number of steps"]', "3")
    page.click('[data-action="step-n"]')
    page.wait_for_function(f"() => Number(document.querySelector('[data-counter=\"step\"]').textContent.replace(/,/g, '')) >= {start + 3}"
                           " && document.querySelector('[data-action=\"play\"]').getAttribute('aria-pressed') === 'false'", timeout=60_000)
    assert page_caught_up(page) == start + 3


DROP_OR_PASTE = """async ([how, b64, fileName]) => {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], fileName, { type: 'image/png' }));
  if (how === 'drop') {
    const zone = document.querySelector('.dropzone');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    const highlighted = zone.closest('.is-dragging') !== null;
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    return highlighted && zone.closest('.is-dragging') === null;
  }
  document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  return true;
}"""


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_drop_or_paste_an_image_runs_it(page, how):
    """Dropping a file on the input panel (which lights up while dragged over) or pasting one
    uploads it and shows its maps, as the file picker does."""
    import base64

    open_page(page)
    before = maps_signature(page)
    name = {"drop": "dropped.png", "paste": "pasted.png"}[how]
    ok = page.evaluate(DROP_OR_PASTE, [how, base64.b64encode(png_bytes((40, 40, 230))).decode(), name])
    assert ok, "the drop zone did not light up while dragged over, or stayed lit after the drop"
    expect(page.locator(".input-name")).to_have_text(name)
    maps_change_from(page, before, f"the {how} image")


def test_the_rest_of_the_page_follows_the_overview(page):
    """The views the first drawing does not need come in a second stage (static/js/main.js): every
    panel is there once it has, and a press on the Learn toggle while its module is still on the
    way opens the Learn mode when it arrives."""
    held = []
    page.route("**/static/js/views/learn/panel.js", lambda route: held.append(route))  # hold the Learn view's module
    page.goto(page.base_url + "/")
    page.wait_for_selector(OVERVIEW, state="visible", timeout=30_000)
    wait_until(lambda: page.evaluate("1") and held, "the second stage to ask for the Learn view's module")
    page.click("[data-learn-toggle]")
    assert page.is_hidden("#learn") and page.get_attribute("html", "data-views") is None
    held[0].continue_()
    expect(page.locator("html")).to_have_attribute("data-views", "all")
    expect(page.locator("#learn")).to_be_visible()
    expect(page.locator("[data-learn-toggle]")).to_have_attribute("aria-expanded", "true")
    expect(page.locator('[data-learn="title"]')).not_to_be_empty()
    for panel in ("input", "detail", "filters", "training", "architecture", "evaluation"):
        assert page.locator(f'[data-view="{panel}"] > *').count() > 0, panel
    assert page.locator("[data-roving]").count() >= 4  # the grids of both stages move with the arrow keys, once each


def test_first_load_asks_for_the_model_its_data_and_a_forward_pass_at_once(page):
    """The bootstrap names the default model's dataset, so the page asks for the dataset and the
    first sample's forward pass beside the model, not after it: both are asked for while the
    model's own answer is held back."""
    api(page, "GET", "/datasets/shapes")  # the listing in the page's bootstrap then has the dataset's sizes
    held = []
    page.route("**/api/v1/models/tiny-vgg-shapes", lambda route: held.append(route))
    seen = record_requests(page)
    page.goto(page.base_url + "/")
    wait_until(lambda: page.evaluate("1") and held, "the model request")
    wait_until(lambda: page.evaluate("1") and any("/forward" in s for s in seen) and any("/datasets/shapes" in s for s in seen),
               "the dataset and forward requests while the model's answer is held")
    held[0].continue_()
    page.wait_for_selector(OVERVIEW, state="visible", timeout=30_000)
    expect(page.locator(".input-name")).not_to_be_empty()
    assert sum("/forward" in s for s in seen) == 1  # the early answer was used, not asked for again
