"""The explanation panel: a method draws its overlay with a legend and a sentence; a class row of the
probabilities explains that class; the sanity check and the deletion curve show their results;
occlusion shows its progress."""

from __future__ import annotations

import pytest

from .conftest import expect, record_requests, shot
from .test_page import open_page

pytestmark = pytest.mark.browser

PANEL = '[data-view="explain"]'


def explain(pg, method: str) -> None:
    pg.select_option(f'{PANEL} [data-explain="method"]', method)
    expect(pg.locator(".input-explain")).to_be_visible()
    expect(pg.locator(f'{PANEL} [data-explain="how"]')).not_to_be_empty()


def test_method_overlay_legend_and_class_rows(page):
    open_page(page)
    explain(page, "gradient_x_input")
    how = page.locator(f'{PANEL} [data-explain="how"]')
    expect(how).to_contain_text("Gradient × input")
    expect(page.locator(f"{PANEL} .legend")).to_be_visible()
    expect(page.locator(f"{PANEL} .legend [data-mid]")).to_have_text("0")  # signed: a diverging scale around zero
    predicted = how.get_attribute("data-target")
    other = "1" if predicted != "1" else "2"
    page.locator(f'.ov-probs .prob-btn[data-unit="{other}"]').click()
    expect(how).to_have_attribute("data-target", other)
    expect(page.locator(f'{PANEL} [data-explain="class"]')).to_have_value(other)
    page.locator(f'{PANEL} [data-explain="opacity"]').fill("0.9")
    expect(page.locator(".input-explain")).to_have_css("opacity", "0.9")
    page.select_option(f'{PANEL} [data-explain="method"]', "grad_cam")
    expect(page.locator(f'{PANEL} [data-explain="layer"]')).to_be_visible()
    expect(how).to_contain_text("Grad-CAM at layer")
    expect(how).to_have_attribute("data-target", other)  # the chosen class stays
    shot(page, "explain-overlay")


def test_sanity_check_and_deletion_curves(page):
    open_page(page)
    explain(page, "guided_backprop")
    page.click(f'{PANEL} [data-explain="sanity"]')
    corr = page.locator(f'{PANEL} [data-explain="correlation"]')
    expect(corr).to_contain_text("Rank correlation")
    assert -1.0 <= float(corr.get_attribute("data-value")) <= 1.0
    expect(page.locator(f'{PANEL} [data-explain="sanity-result"] canvas')).to_have_count(2)
    page.locator(f'{PANEL} [data-explain="sanity-result"]').scroll_into_view_if_needed()
    shot(page, "explain-sanity")
    page.click(f'{PANEL} [data-explain="deletion"]')
    keys = page.locator(f'{PANEL} [data-explain="curves"] li')
    expect(keys).to_have_count(1)
    explain(page, "grad_cam")
    expect(page.locator(f'{PANEL} [data-explain="sanity-result"]')).to_be_hidden()
    page.click(f'{PANEL} [data-explain="deletion"]')
    expect(keys).to_have_count(2)  # the earlier method's curve stays for comparison
    expect(page.locator(f"{PANEL} .explain-chart polyline")).to_have_count(2)
    assert 0.0 <= float(keys.nth(1).get_attribute("data-auc")) <= 1.0
    page.locator(PANEL).scroll_into_view_if_needed()
    shot(page, "explain-checks")


def test_occlusion_shows_progress(page):
    open_page(page)
    seen = record_requests(page)
    page.select_option(f'{PANEL} [data-explain="method"]', "occlusion")
    page.locator(f'{PANEL} [data-explain="stride"]').fill("2")
    page.locator(f'{PANEL} [data-explain="stride"]').dispatch_event("change")
    # while it runs the bar counts the server's forward passes; then the count of all stays
    expect(page.locator(f'{PANEL} [data-explain="progress-text"]')).to_have_text("Covered all 841 patch positions")
    expect(page.locator(f'{PANEL} [data-explain="progress"]')).to_be_hidden()
    assert any(r.endswith("/explain/stream") for r in seen if r.startswith("POST"))
    expect(page.locator(f'{PANEL} [data-explain="how"]')).to_contain_text("Occlusion")
    shot(page, "explain-occlusion")
