"""What a unit looks for, in the channel detail: find the top 9 images (progress, then 9 crops that
switch to their deconvnet projections) and dream up an image that excites the unit."""

from __future__ import annotations

import pytest

from .conftest import expect, shot
from .test_page import open_page

pytestmark = pytest.mark.browser

PANEL = '[data-view="lookfor"]'


def open_channel(pg, layer: int = 2, nth: int = 1) -> None:
    pg.locator(f'.ov-col[data-layer="{layer}"] canvas.map').nth(nth).click()
    pg.wait_for_selector("#panel-detail .slices canvas")
    expect(pg.locator(PANEL)).to_be_visible()


def test_top_nine_crops_with_projections(page):
    open_page(page)
    open_channel(page)
    page.locator(f'{PANEL} [data-lookfor="find"]').click()
    items = page.locator(f'{PANEL} [data-lookfor="item"]')
    expect(items).to_have_count(9)
    expect(page.locator(f'{PANEL} [data-lookfor="note"]')).to_contain_text("Top 9 of")
    expect(page.locator(f'{PANEL} [data-lookfor="progress"]')).to_be_hidden()
    first = items.first.locator("img")
    crop = first.get_attribute("src")
    assert crop and crop.startswith("data:image/png;base64,")
    page.locator(f'{PANEL} [data-lookfor="projections"]').check()
    expect(first).to_have_attribute("src", first.get_attribute("data-projection") or "")
    assert first.get_attribute("src") != crop
    shot(page, "unit-top9", full_page=True)
    # another channel of the same layer answers from the server's cache at once
    open_channel(page, nth=2)
    expect(items).to_have_count(9)


def test_dream_it_up(page):
    open_page(page)
    open_channel(page, layer=5, nth=0)
    page.locator(f'{PANEL} [data-lookfor="dream"]').click()
    img = page.locator(f'{PANEL} [data-lookfor="dream-image"]')
    expect(img).to_be_visible()
    assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")
    expect(page.locator(f'{PANEL} [data-lookfor="dream-note"]')).to_contain_text("went from")
    expect(page.locator(f'{PANEL} [data-lookfor="dream"]')).to_be_enabled()
    shot(page, "unit-dream", full_page=True)
