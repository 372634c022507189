"""Every view has a URL (issue 13, items 1-2): the model, input, selected map, open tab and colour
mode are in the address; reload, back/forward and a pasted link reopen that view; a link to a model or
image that is gone says so and falls back. Training a ready-trained model asks once, names the copy
and reuses the person's untrained copy instead of making another."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from .conftest import api, expect, shot, wait_until
from .test_page import OVERVIEW, open_page

pytestmark = pytest.mark.browser

SHIPPED = "tiny-vgg-shapes"
VIEW = """() => { const s = window.cnnvis.store.get();
  return {model: s.model?.id, input: s.input && (s.input.kind === 'sample' ? `${s.input.split}:${s.input.index}` : s.input.id),
          selection: s.selection, tab: s.tab, colour: s.colour.mode}; }"""


def view(pg) -> dict:
    return pg.evaluate(VIEW)


def query(pg) -> dict[str, str]:
    """The address's query (from the page: Playwright's `page.url` may lag behind a pushState)."""
    return {k: v[0] for k, v in parse_qs(pg.evaluate("() => location.search").lstrip("?")).items()}


def opened(pg, url: str) -> None:
    """Go to ``url`` and wait until its maps are drawn and the address says what is shown."""
    pg.goto(url)
    pg.wait_for_selector(OVERVIEW, state="visible", timeout=30_000)
    wait_until(lambda: "model" in query(pg) and not pg.evaluate("() => window.cnnvis.store.get().loading"), "the view in the address")


def choose_a_view(pg) -> dict:
    """As a person would: a sample, a map of layer 3, the Filters tab, the global colour scale."""
    pg.click('.samples button.sample[data-index="3"]')
    expect(pg.locator(".input-name")).to_have_text("test sample #3")
    pg.locator('.ov-col[data-layer="3"] canvas.map[data-channel="2"]').click()
    pg.click('[data-tab="filters"]')
    pg.click('label[for="scale-global"]')
    want = {"model": SHIPPED, "input": "sample:test:3", "layer": "3", "channel": "2", "tab": "filters", "colour": "global"}
    wait_until(lambda: query(pg) == want, f"the address to say {want} (it says {query(pg)})")
    return view(pg)


def test_reload_and_a_pasted_link_reopen_the_view(page, browser):
    open_page(page)
    shown = choose_a_view(page)
    assert shown == {"model": SHIPPED, "input": "test:3", "selection": {"layer": 3, "channel": 2}, "tab": "filters", "colour": "global"}
    url = page.evaluate("() => location.href")
    page.reload()
    page.wait_for_selector(OVERVIEW, state="visible", timeout=30_000)
    wait_until(lambda: view(page) == shown, f"the reloaded page to show {shown}")
    expect(page.locator('[data-tab="filters"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator("#scale-global")).to_be_checked()
    assert page.evaluate("() => location.href") == url
    fresh = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()  # a link pasted elsewhere
    try:
        opened(fresh, url)
        wait_until(lambda: view(fresh) == shown, f"a pasted link to show {shown}")
        expect(fresh.locator(".input-name")).to_have_text("test sample #3")
        shot(fresh, "route-pasted-link")
    finally:
        fresh.context.close()


def test_back_and_forward_walk_the_views(page):
    open_page(page)
    wait_until(lambda: "model" in query(page), "the address to name the model")
    first = view(page)
    page.click('.samples button.sample[data-index="5"]')
    wait_until(lambda: query(page).get("input") == "sample:test:5", "the address to name sample 5")
    page.click('[data-tab="training"]')
    wait_until(lambda: query(page).get("tab") == "training", "the address to name the tab")
    page.locator('.ov-col[data-layer="3"] canvas.map[data-channel="1"]').click()  # a map: replaces, no new entry
    wait_until(lambda: query(page).get("channel") == "1", "the address to name the channel")
    page.go_back()  # the map click went back to the detail tab (a push); Back returns to Training
    wait_until(lambda: view(page)["tab"] == "training", "Back to show the Training tab")
    page.go_back()
    wait_until(lambda: view(page)["tab"] == first["tab"] and view(page)["input"] == "test:5", "Back to show the tab before")
    page.go_back()
    wait_until(lambda: view(page)["input"] == first["input"], "Back to show the first sample again")
    expect(page.locator(".input-name")).to_have_text(f"test sample #{first['input'].split(':')[1]}")
    page.go_forward()
    wait_until(lambda: view(page)["input"] == "test:5", "Forward to show sample 5 again")
    assert query(page)["input"] == "sample:test:5"


def test_a_link_to_a_missing_model_or_image_says_so_and_falls_back(page):
    page.expected_http_errors.add(404)
    opened(page, page.base_url + "/?model=gone-model&layer=3&channel=1&tab=filters&colour=per-map")
    expect(page.locator("[data-message-text]")).to_contain_text("“gone-model” in this link is no longer on the server")
    wait_until(lambda: query(page).get("model") == SHIPPED, "the address to name the model shown")
    shown = view(page)  # the tab and colours of the link still apply
    assert shown["model"] == SHIPPED and shown["tab"] == "filters" and shown["colour"] == "channel"
    opened(page, page.base_url + f"/?model={SHIPPED}&input=image:0123456789ab")
    expect(page.locator("[data-message-text]")).to_contain_text("The image in this link is no longer on the server")
    wait_until(lambda: view(page)["input"] == "test:0", "the first sample instead")
    expect(page.locator(".input-name")).to_have_text("test sample #0")
    shot(page, "route-missing-image")


def untrained_copies(pg) -> list[dict]:
    step = api(pg, "GET", f"/models/{SHIPPED}")["step"]
    return [m for m in api(pg, "GET", "/models") if m.get("copied_from") == SHIPPED and m["step"] == step]


def test_step_on_the_ready_model_asks_once_then_reuses_the_untrained_copy(page):
    for m in untrained_copies(page):  # copies other tests made and left untrained would be reused
        api(page, "DELETE", f"/models/{m['id']}")
    open_page(page)
    before = {m["id"] for m in api(page, "GET", "/models")}
    page.click('[data-action="step"]')
    ask = page.locator('[data-ask="copy"]')
    expect(ask).to_be_visible()
    expect(ask).to_contain_text("TinyVGG on shapes (my copy)")
    shot(page, "route-ask-copy")
    page.click('[data-answer="yes"]')
    expect(ask).to_be_hidden()
    shipped_step = api(page, "GET", f"/models/{SHIPPED}")["step"]
    wait_until(lambda: page.evaluate("() => window.cnnvis.store.get().model.step") == shipped_step + 1, "the copy to train one step")
    made = [m for m in api(page, "GET", "/models") if m["id"] not in before]
    assert len(made) == 1 and made[0]["copied_from"] == SHIPPED and made[0]["name"].startswith("TinyVGG on shapes (my copy)")
    page.reload()  # the address names the copy: Step trains it, no second copy
    page.wait_for_selector(OVERVIEW, state="visible", timeout=30_000)
    wait_until(lambda: view(page)["model"] == made[0]["id"], "the reloaded page to show the copy")
    page.click('[data-action="step"]')
    wait_until(lambda: api(page, "GET", f"/models/{made[0]['id']}")["step"] == shipped_step + 2, "the copy to train again")
    # an untrained copy (made elsewhere, never trained) is reused when Step is pressed on the ready model
    spare = api(page, "POST", "/models", f'{{"from": "{SHIPPED}", "name": "spare"}}'.encode())
    page.reload()
    page.select_option("#model-select", SHIPPED)
    wait_until(lambda: view(page)["model"] == SHIPPED, "the ready model again")
    count = len(api(page, "GET", "/models"))
    page.click('[data-action="step"]')
    expect(page.locator("[data-message-text]")).to_contain_text("Training your copy “spare”")
    wait_until(lambda: view(page)["model"] == spare["id"], "the untrained copy to be reused")
    wait_until(lambda: api(page, "GET", f"/models/{spare['id']}")["step"] == shipped_step + 1, "the reused copy to train")
    assert len(api(page, "GET", "/models")) == count and not page.is_visible('[data-ask="copy"]')
