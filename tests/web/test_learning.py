"""Inside the learning step on the page: the overview switched to gradients draws new maps; after a
Step the last-step view shows weights, gradient and applied update side by side, and per-layer curves."""

from __future__ import annotations

import pytest

from .conftest import expect, shot, wait_until
from .test_page import ensure_trainable, maps_signature, open_page

pytestmark = pytest.mark.browser

PANEL = '[data-view="last-step"]'


def test_overview_switches_to_gradients(page):
    open_page(page)
    before = maps_signature(page)
    page.click('[data-learning="gradients"]')
    expect(page.locator(".learn-note")).to_contain_text("How the loss for")
    page.select_option('[data-learning="label"]', "1")  # a class it is not sure of: gradients worth seeing
    expect(page.locator(".learn-note")).to_contain_text('"ring"')
    wait_until(lambda: maps_signature(page) != before, "the maps to show gradients")
    expect(page.locator('[data-learning="gradients"]')).to_have_attribute("aria-pressed", "true")
    page.locator(".ov-maps canvas.map").nth(1).hover()
    expect(page.locator("[data-tooltip]")).to_contain_text("gradient dL/d(out)")
    shot(page, "learning-overview-gradients")
    page.click('[data-learning="activations"]')
    wait_until(lambda: maps_signature(page) == before, "the maps to show activations again")


def test_last_step_view_after_a_step(page):
    open_page(page)
    ensure_trainable(page)
    page.click('[data-tab="training"]')
    page.click('[data-action="step"]')
    page.select_option(f'{PANEL} [data-learning="step-label"]', "1")
    row = page.locator(f"{PANEL} .learn-row:not(.learn-head)").first
    expect(row.locator("canvas.map")).to_have_count(3)  # weights, dL/dW, the applied update
    expect(page.locator(f"{PANEL} .learn-scales")).to_contain_text("update / weight size")
    row.locator("canvas.map").nth(2).hover()
    expect(page.locator("[data-tooltip]")).to_contain_text("update")
    expect(page.locator(f"{PANEL} .learn-dead-row").first).to_contain_text("never fired")
    page.click('[data-action="step-n"]')  # a few more steps: the curves become lines
    expect(page.locator('[data-view="layer-curves"] path.chart-line.learn-s0[d*="L"]').first).to_be_attached()
    expect(page.locator('[data-view="layer-curves"] path.chart-line.learn-ref')).to_be_attached()
    page.locator(PANEL).scroll_into_view_if_needed()
    shot(page, "learning-last-step")
    page.locator('[data-view="layer-curves"]').scroll_into_view_if_needed()
    shot(page, "learning-layer-curves")
