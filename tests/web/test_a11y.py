"""The page as people use it (issue 13, items 4 and 5): the network and the learning curves on one
screen while training plays; the keyboard (each grid of tiles one Tab stop, arrow keys inside, the
tabs a few Tab presses from the top); accessible names that contain the visible labels; and an
axe-core audit of every tab with no serious or critical violations."""

from __future__ import annotations

import json

import pytest

from .conftest import ARTIFACTS, expect, shot, wait_until
from .test_page import ensure_trainable

pytestmark = pytest.mark.browser

MAX_TABS_TO_TABLIST = 15
TABS = ["detail", "filters", "training", "architecture", "evaluation"]
READY = {  # something each panel shows once it has drawn
    "detail": "#panel-detail canvas",
    "filters": "#panel-filters [data-filter]",
    "training": "#panel-training .chart-svg",
    "architecture": "#panel-architecture button",
    "evaluation": '#panel-evaluation [data-action="evaluate"]',
}


def open_page(pg, width: int = 1280, height: int = 800) -> None:
    pg.set_viewport_size({"width": width, "height": height})
    pg.goto(pg.base_url + "/")
    pg.wait_for_selector(".ov-col canvas.map", state="visible", timeout=30_000)
    expect(pg.locator(".input-name")).not_to_be_empty()
    expect(pg.locator(".samples button.sample").first).to_be_visible()


def active(pg) -> dict:
    return pg.evaluate(
        """() => { const a = document.activeElement;
                   return { role: a.getAttribute('role'), tab: a.dataset.tab || null, layer: a.dataset.layer ?? null,
                            channel: a.dataset.channel ?? null, index: a.dataset.index ?? null, filter: a.dataset.filter ?? null,
                            tabindex: a.getAttribute('tabindex'), text: (a.textContent || '').trim().slice(0, 40),
                            label: a.getAttribute('aria-label') || '' }; }"""
    )


def tab_presses_to_tablist(pg, limit: int = 200) -> tuple[int, list[str]]:
    """Tab presses from the top of the page until a tab of the tool dock has the focus."""
    pg.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    pg.locator("h1").click()  # the focus starts at the top of the document
    path = []
    for n in range(1, limit + 1):
        pg.keyboard.press("Tab")
        a = active(pg)
        path.append(a["label"] or a["text"] or a["role"] or "?")
        if a["role"] == "tab":
            return n, path
    return limit + 1, path


def test_the_tabs_are_a_few_tab_presses_from_the_top(page):
    open_page(page)
    n, path = tab_presses_to_tablist(page)
    print(f"\nTab presses to the first tab: {n}: {path}")
    assert n <= MAX_TABS_TO_TABLIST, f"{n} Tab presses reach the tabs: {path}"
    # every grid of tiles is one stop: exactly one tile of each is in the Tab order
    counts = page.evaluate(
        """() => [['.ov-track', 'canvas.map, .prob-btn'], ['.samples', 'button.sample']].map(([g, t]) =>
              Array.from(document.querySelector(g).querySelectorAll(t)).filter((e) => e.tabIndex === 0).length)"""
    )
    assert counts == [1, 1]
    shot(page, "a11y-tab-order")


def test_arrow_keys_move_inside_the_grids(page):
    open_page(page)
    first = page.locator('.ov-track canvas.map[data-layer="0"]').first
    first.focus()
    assert active(page)["channel"] == "0"
    page.keyboard.press("ArrowDown")
    a = active(page)
    assert (a["layer"], a["channel"], a["tabindex"]) == ("0", "1", "0")
    page.keyboard.press("ArrowRight")
    assert active(page)["layer"] == "1"
    # the tile last focused is the grid's one Tab stop
    assert page.locator('.ov-track canvas.map[tabindex="0"], .ov-track .prob-btn[tabindex="0"]').count() == 1
    page.keyboard.press("Enter")
    expect(page.locator("#tab-detail")).to_have_attribute("aria-selected", "true")

    page.locator(".samples button.sample").first.focus()
    page.keyboard.press("ArrowRight")
    assert active(page)["index"] == "1"
    page.keyboard.press("End")
    assert active(page)["index"] == str(page.locator(".samples button.sample").count() - 1)
    page.keyboard.press("Home")
    assert active(page)["index"] == "0"

    page.click("#tab-filters")
    page.wait_for_selector("#panel-filters [data-filter]", state="visible", timeout=30_000)
    assert page.locator('#panel-filters [data-filter][tabindex="0"]').count() == 1
    page.locator('#panel-filters [data-filter="0"]').focus()
    page.keyboard.press("ArrowRight")
    assert active(page)["filter"] == "1"
    page.keyboard.press("ArrowDown")  # the nearest filter in the next row (the next one in a list)
    assert int(active(page)["filter"]) > 1
    page.keyboard.press("Enter")  # opens the filter's map in the detail tab
    expect(page.locator("#tab-detail")).to_have_attribute("aria-selected", "true")
    shot(page, "a11y-keys")


def test_accessible_names_contain_the_visible_labels(page):
    open_page(page)
    snapshot = page.locator(".transport-buttons").aria_snapshot()
    for label in ("Play", "Step", "Step ×N", "Reset"):
        assert f'button "{label}' in snapshot or f'button "{label}"' in snapshot, snapshot
    step = page.locator('[data-action="step"]')
    assert step.get_attribute("aria-label") is None and step.get_attribute("title") == "Train one mini-batch"
    expect(page.get_by_role("button", name="Step ×N", exact=True)).to_have_count(1)
    expect(page.get_by_role("button", name="Step", exact=True)).to_have_count(1)


def test_axe_finds_no_serious_violations_on_any_tab(page):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    open_page(page)
    report = {}
    for tab in TABS:
        page.click(f"#tab-{tab}")
        expect(page.locator(f"#tab-{tab}")).to_have_attribute("aria-selected", "true")
        page.wait_for_selector(READY[tab], state="attached", timeout=30_000)
        violations = axe.run(page).response["violations"]
        report[tab] = {v["id"]: {"impact": v["impact"], "nodes": len(v["nodes"]),
                                 "first": v["nodes"][0]["target"] if v["nodes"] else None} for v in violations}
        shot(page, f"a11y-{tab}", full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "a11y-axe.json").write_text(json.dumps(report, indent=1))
    print("\naxe violations per tab:", json.dumps(report, indent=1))
    bad = {t: {k: v for k, v in r.items() if v["impact"] in ("serious", "critical")} for t, r in report.items()}
    assert not any(bad.values()), bad


def test_network_and_curves_on_one_screen_while_training(page):
    open_page(page, 1440, 900)
    ensure_trainable(page)
    page.click("#tab-detail")  # the curves of the Training tab are below the fold: the dock shows them
    page.click('[data-action="play"]')
    page.wait_for_selector('[data-action="play"][aria-pressed="true"]', timeout=30_000)
    page.evaluate("() => window.scrollTo(0, 0)")
    dock = page.locator('[data-view="dock"]')
    expect(dock).to_be_visible()
    wait_until(lambda: page.locator(".spark-loss .spark-line").get_attribute("d"), "the docked loss curve")
    boxes = page.evaluate(
        """() => [document.querySelector('.ov-col[data-layer="0"]'), document.querySelector('.spark-loss'),
                  document.querySelector('.spark-acc')].map((e) => { const r = e.getBoundingClientRect();
                  return [r.left, r.top, r.right, r.bottom]; })"""
    )
    assert page.evaluate("() => window.cnnvis.store.get().training.playing")
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= 1440 and 0 <= top < bottom <= 900, boxes
    shot(page, "dock-1440")
    page.click('[data-action="play"]')
    page.wait_for_selector('[data-action="play"][aria-pressed="false"]', timeout=30_000)
