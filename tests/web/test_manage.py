"""Managing a model from the Training tab's model card: freezing layers for transfer learning (the
API's `trainable`, a Step that leaves frozen weights alone, the overview's mark) and deleting a
model with a two-click confirm: right after live training, or while it plays (one DELETE, answered
at once, never a 409 to retry), or from elsewhere while this page trains it (the server closes the
live socket with code 4410 and the page says so, without reconnecting)."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import api, expect, record_requests, shot
from .test_page import ensure_trainable, open_page

pytestmark = pytest.mark.browser

MODEL_ID = "() => window.cnnvis.store.get().model?.id"


def weights(pg, model_id: str, layer: int) -> str:
    """A layer's weights and bias as the API sends them (without the step, which always moves)."""
    r = api(pg, "GET", f"/models/{model_id}/layers/{layer}/filters")
    return json.dumps({k: r[k] for k in r if k != "step"}, sort_keys=True)


def trainable(pg, model_id: str) -> list[bool]:
    return [layer["trainable"] for layer in api(pg, "GET", f"/models/{model_id}")["layers"]]


def test_freeze_a_layer_then_step_leaves_its_weights(page):
    open_page(page)
    page.click('[data-tab="training"]')
    assert page.is_disabled('input[data-freeze="0"]'), "a read-only model's layers cannot be frozen"
    ensure_trainable(page)
    page.wait_for_selector('input[data-freeze="0"]:not([disabled])')
    mid = page.evaluate(MODEL_ID)
    model = api(page, "GET", f"/models/{mid}")
    weighted = [layer["index"] for layer in model["layers"] if layer["type"] in ("conv2d", "dense")]
    boxes = page.eval_on_selector_all("input[data-freeze]", "(bs) => bs.map((b) => Number(b.dataset.freeze))")
    assert boxes == weighted and all(page.is_checked(f'input[data-freeze="{i}"]') for i in weighted)
    assert trainable(page, mid)[0] is True
    last_dense = max(i for i in weighted if model["layers"][i]["type"] == "dense")

    page.uncheck('input[data-freeze="0"]')
    page.wait_for_selector('.ov-col[data-layer="0"] .ov-frozen', timeout=15_000)
    assert trainable(page, mid)[0] is False and api(page, "GET", f"/models/{mid}")["frozen"] == [0]
    assert not page.is_checked('input[data-freeze="0"]') and page.is_checked(f'input[data-freeze="{last_dense}"]')
    assert page.get_attribute('.ov-col[data-layer="0"] .ov-frozen', "title").startswith("Frozen")
    assert page.locator(".ov-frozen").count() == 1
    shot(page, "model-card-frozen", full_page=True)

    before0, before_last = weights(page, mid, 0), weights(page, mid, last_dense)
    step0 = page.evaluate("() => window.cnnvis.store.get().model.step")
    page.wait_for_selector('[data-action="step"]:not([disabled])')
    page.click('[data-action="step"]')
    page.wait_for_function(f"() => window.cnnvis.store.get().model.step > {step0}", timeout=30_000)
    assert weights(page, mid, 0) == before0, "a frozen layer's weights changed"
    assert weights(page, mid, last_dense) != before_last, "the trainable last layer did not learn"

    page.wait_for_selector('input[data-freeze="0"]:not([disabled])')
    page.check('input[data-freeze="0"]')
    page.wait_for_selector(".ov-frozen", state="detached", timeout=15_000)
    assert trainable(page, mid)[0] is True and api(page, "GET", f"/models/{mid}")["frozen"] == []


def test_delete_needs_two_clicks_and_switches_model(page):
    open_page(page)
    page.click('[data-tab="training"]')
    assert page.is_hidden('[data-action="delete-model"]'), "a shipped model offers no Delete"
    ensure_trainable(page)
    mid = page.evaluate(MODEL_ID)
    requests = record_requests(page)
    # a live connection is open after Play and Pause: the server may not have let go of it yet
    page.click('[data-action="play"]')
    page.wait_for_function("() => window.cnnvis.store.get().model.step >= 2", timeout=30_000)
    page.click('[data-action="play"]')
    page.wait_for_function("() => !window.cnnvis.store.get().training.playing", timeout=30_000)

    delete = page.locator('[data-action="delete-model"]')
    delete.click()
    assert delete.text_content() == "Confirm delete"
    assert any(m["id"] == mid for m in api(page, "GET", "/models")), "one click deleted the model"
    delete.click()
    page.wait_for_function(f"() => window.cnnvis.store.get().model?.id && window.cnnvis.store.get().model.id !== {json.dumps(mid)}",
                           timeout=30_000)
    assert all(m["id"] != mid for m in api(page, "GET", "/models"))
    page.wait_for_function(f"() => !document.querySelector('#model-select option[value={json.dumps(mid)}]')")
    shown = page.evaluate("() => window.cnnvis.store.get().model")
    assert shown["read_only"], "the page shows the shipped model after deleting"
    page.wait_for_selector(".ov-col canvas.map", state="visible")
    assert page.is_hidden('[data-action="delete-model"]')
    assert deletes(requests, mid) == [f"DELETE {page.base_url}/api/v1/models/{mid}"], "one DELETE, no refusal, no retry"


def test_delete_abandons_requests_in_flight(page):
    """A forward the page is still waiting for when it deletes the model is abandoned, not answered
    404 by the server after the deletion: no error reaches the console or the message line."""
    open_page(page)
    page.click('[data-tab="training"]')
    ensure_trainable(page)
    mid = page.evaluate(MODEL_ID)
    held = []
    page.route(f"**/api/v1/models/{mid}/forward", lambda route: held.append(route))  # the forward waits here until released
    with page.expect_request(f"**/api/v1/models/{mid}/forward"):  # the refresh's forward is on its way
        page.evaluate("() => { window.cnnvis.actions.refresh(); }")
    delete = page.locator('[data-action="delete-model"]')
    delete.click()
    delete.click()
    page.wait_for_function(f"() => window.cnnvis.store.get().model?.id && window.cnnvis.store.get().model.id !== {json.dumps(mid)}",
                           timeout=30_000)
    assert all(m["id"] != mid for m in api(page, "GET", "/models"))
    assert held, "the refresh's forward never reached the route that holds it"
    try:  # released after the deletion: without the abandon, the server would answer it 404
        held[0].continue_()
    except Exception:  # noqa: BLE001 (the page has abandoned it; Playwright may say so)
        pass
    page.unroute(f"**/api/v1/models/{mid}/forward")
    expect(page.locator("[data-message-text]")).to_have_text(re.compile("^Deleted"))
    page.wait_for_selector(".ov-col canvas.map", state="visible")


def deletes(requests: list[str], mid: str) -> list[str]:
    """The page's DELETE requests for the model, and any error answer to them."""
    return [r for r in requests if "DELETE " in r and r.endswith(f"/models/{mid}")]


def play_until_step(pg, step: int) -> None:
    pg.click('[data-action="play"]')
    expect(pg.locator('[data-action="play"]')).to_have_attribute("aria-pressed", "true")
    pg.wait_for_function(f"() => window.cnnvis.store.get().model.step >= {step}", timeout=30_000)


def test_delete_while_training_plays(page):
    """No pause first: the one DELETE is answered at once (the server ends the live session itself)."""
    open_page(page)
    page.click('[data-tab="training"]')
    ensure_trainable(page)
    mid, name = page.evaluate(MODEL_ID), page.evaluate("() => window.cnnvis.store.get().model.name")
    requests = record_requests(page)
    play_until_step(page, page.evaluate("() => window.cnnvis.store.get().model.step") + 2)
    # No 404 is allowed: the page abandons its requests about the model before it sends the DELETE.
    delete = page.locator('[data-action="delete-model"]')
    delete.click()
    delete.click()
    expect(page.locator("[data-message-text]")).to_have_text(f"Deleted “{name}”.")
    assert deletes(requests, mid) == [f"DELETE {page.base_url}/api/v1/models/{mid}"], "one DELETE, no refusal, no retry"
    assert all(m["id"] != mid for m in api(page, "GET", "/models"))
    assert page.evaluate("() => window.cnnvis.store.get().model.read_only"), "the page shows the shipped model"
    expect(page.locator('[data-action="play"]')).to_have_attribute("aria-pressed", "false")
    assert api(page, "GET", "/health")["live_sessions"] == 0


def test_a_model_deleted_elsewhere_stops_live_training_with_a_message(page):
    """Another client deletes the model this page trains: the socket closes with 4410; the page stops,
    says so and shows the shipped model, and neither reconnects nor asks the server about the deleted one."""
    open_page(page)
    page.click('[data-tab="training"]')
    ensure_trainable(page)
    mid, name = page.evaluate(MODEL_ID), page.evaluate("() => window.cnnvis.store.get().model.name")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    play_until_step(page, page.evaluate("() => window.cnnvis.store.get().model.step") + 2)
    # A request the page sent while it still trained (its curves poll) may meet the deletion: a 404 then.
    page.expected_http_errors.add(404)  # type: ignore[attr-defined]
    api(page, "DELETE", f"/models/{mid}")  # answered at once, though the model trains live
    expect(page.locator('[data-message][data-kind="error"] [data-message-text]')).to_have_text(
        f"“{name}” was deleted, so its live training stopped.")
    requests = record_requests(page)  # from the moment the page knows, it asks nothing about that model
    expect(page.locator('[data-action="play"]')).to_have_attribute("aria-pressed", "false")
    expect(page.locator(f'#model-select option[value="{mid}"]')).to_have_count(0)  # the picker no longer offers it
    assert page.evaluate("() => window.cnnvis.store.get().model.read_only"), "the page shows the shipped model"
    assert page.evaluate("() => window.cnnvis.store.get().training.live") is False
    assert len(sockets) == 1 and sockets[0].split("?")[0].endswith(f"/models/{mid}/live"), f"the page reconnected: {sockets}"
    assert not [r for r in requests if f"/models/{mid}" in r], f"the page asked about the deleted model: {requests}"


def test_model_card_screenshots(page):
    for width, height in ((1280, 800), (420, 800)):
        open_page(page, width, height)
        page.click('[data-tab="training"]')
        ensure_trainable(page)
        page.wait_for_selector('input[data-freeze="0"]:not([disabled])')
        card = page.locator('[data-view="models"]')
        card.scroll_into_view_if_needed()
        box = card.bounding_box()
        assert box and box["width"] <= width, "the model card overflows the page"
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        card.screenshot(path=str(shot(page, f"model-card-{width}")))
