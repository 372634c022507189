"""The page reads every layer type's facts from the engine's registry (issue 10, item 1): no layer
type is named in static/js, titles and explanations on screen are the registry's, the editor offers
every type by title, and the units' walks (which filter made a map) go by kind and shape alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.registry import REGISTRY, layer_types

from .conftest import shot
from .test_modules import run
from .test_page import open_page

pytestmark = pytest.mark.browser

JS = Path(__file__).resolve().parents[2] / "static" / "js"
DETAIL_TITLE = "#panel-detail .detail-title"


def _types() -> dict[str, dict]:
    return {t["type"]: t for t in layer_types()}


# The Learn mode teaches particular layer types (what ReLU does, a dropout mask, a 1x1 convolution)
# and builds small specs to show them: there a type name is the lesson's subject, not a table of facts.
LESSONS = JS / "views" / "learn"


def test_no_layer_type_name_is_a_string_in_the_page_code():
    """A type named in a quoted string is a table or a test by name: the next type would need an edit."""
    names = "|".join(re.escape(t) for t in sorted(REGISTRY, key=len, reverse=True))
    quoted = re.compile(rf"""(['"`])({names})\1""")
    files = [p for p in sorted(JS.rglob("*.js")) if LESSONS not in p.parents]
    assert len(files) > 30, "the page's modules were not found"
    found = [f"{p.relative_to(JS)}:{n}: {m.group(0)}" for p in files
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) for m in quoted.finditer(line)]
    assert not found, "layer type names as strings in static/js:\n" + "\n".join(found)


def test_detail_shows_the_registry_title_and_explanation(page):
    """The shipped TinyVGG: a conv, a relu, a pool, the flatten and the dense layer, clicked in the overview."""
    open_page(page)
    model = page.evaluate("() => window.cnnvis.store.get().model")
    assert model["spec"]["layers"][0]["type"] == "conv2d", "the default model is no longer TinyVGG"
    types = _types()
    kinds = [layer["kind"] for layer in model["layers"]]
    picks = [kinds.index("weighted"), kinds.index("elementwise"), kinds.index("window"), kinds.index("reshape"),
             len(kinds) - 1 - kinds[::-1].index("weighted")]
    for i in picks:
        layer = model["layers"][i]
        t = types[layer["type"]]
        assert layer["title"] == t["title"] and layer["kind"] == t["kind"]
        page.locator(f'.ov-col[data-layer="{i}"] canvas.map').first.click()
        page.wait_for_function("(p) => document.querySelector(p[0])?.textContent.startsWith(p[1])",
                               arg=[DETAIL_TITLE, f"{t['title']} {i} "])
        assert page.text_content("#panel-detail .detail-about") == t["explanation"]
    # the column headings are the registry's titles too
    heads = page.eval_on_selector_all(".ov-col", "els => els.map((e) => e.textContent)")
    assert any(types["conv2d"]["title"] in h for h in heads)


def test_the_editor_offers_every_type_by_title(page):
    open_page(page)
    page.click('[data-tab="architecture"]')
    page.wait_for_selector(".arch-row")
    options = page.eval_on_selector_all('select[aria-label="Type of layer to add"] option',
                                        "els => els.map((o) => [o.value, o.textContent, o.title])")
    want = [[t["type"], t["title"], t["explanation"]] for t in layer_types()]
    assert options == want
    row = page.locator('select[aria-label="Layer 0 type"]')
    first = _types()[page.evaluate("() => window.cnnvis.store.get().draft.layers[0].type")]
    assert row.get_attribute("title") == first["explanation"]
    # each declared field has its widget, with its help as the tooltip
    for f in first["fields"]:
        label = page.locator(f'.arch-row[data-index="0"] label.arch-field:has(input[data-field="{f["name"]}"])')
        assert label.get_attribute("title") == f["help"]
        kind = label.locator("input").get_attribute("type")
        assert kind == ("checkbox" if f["kind"] == "bool" else "text" if f.get("choices") else "number")


def test_units_walk_back_by_kind_and_shape(page):
    """A made-up network with a normalizing layer and types the page has never heard of: the filter
    behind a map or a vector unit, and the layers whose per-channel numbers act on it on the way."""
    def layer(kind, shape, parameters=0):
        return {"type": f"new_{kind}", "kind": kind, "output_shape": shape, "parameters": parameters,
                "receptive_field": {"size": 1, "jump": 1, "start": 0}}
    model = {"spec": {"input_shape": [3, 8, 8]}, "layers": [
        layer("weighted", [4, 6, 6], 112), layer("normalize", [4, 6, 6], 8), layer("elementwise", [4, 6, 6]),
        layer("window", [4, 3, 3]), layer("reshape", [36]), layer("normalize", [36], 72), layer("weighted", [5], 185),
        layer("normalize", [5], 10), layer("output", [5]), layer("reshape", [4])]}
    model["layers"] = [dict(ly, index=i) for i, ly in enumerate(model["layers"])]
    got = run(page, """
        const u = await import('/static/js/units.js');
        const m = arg;
        return {
          conv: [0, 1, 2, 3, 4].map((i) => u.producingConv(m, i)),
          dense: [4, 5, 6, 7, 8].map((i) => u.producingDense(m, i)),
          adjusting: [0, 1, 2, 3, 6, 8].map((i) => u.adjustingLayers(m, i)),
          flat: [4, 5, 9].map((i) => u.flattenSource(m, i)),
          filters: u.filterLayers(m),
        };
    """, model)
    assert got["conv"] == [0, 0, 0, 0, None]
    assert got["dense"] == [None, None, 6, 6, 6]
    assert got["adjusting"] == [[], [1], [1], [1], [], [7]]
    assert got["flat"] == [3, 3, None]  # a reshape that keeps every value is a flatten; one that pools is not
    assert got["filters"] == [0]


def test_a_normalizing_layer_shows_its_scale_and_shift_and_the_filter_before_it(page):
    """Any registry type of kind "normalize", put after a convolution: its map, the per-channel numbers
    it learned for the selected channel, and the filter that made the map."""
    types = _types()
    norm = next((t for t in types.values() if t["kind"] == "normalize" and "weight" in t["parameters"]), None)
    if norm is None:
        pytest.skip("no layer type of kind 'normalize' with weights in the registry yet")
    values = {f["name"]: (True if f["kind"] == "bool" else f.get("min", 1)) for f in norm["fields"] if f.get("required")}
    open_page(page)
    shown = page.evaluate("() => window.cnnvis.store.get().model")
    spec = {"version": 1, "input_shape": shown["spec"]["input_shape"], "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": norm["type"], **values}, {"type": "relu"},
        {"type": "flatten"}, {"type": "dense", "units": len(shown["classes"])}, {"type": "softmax"}]}
    created = page.evaluate("""async (body) => { const ok = await window.cnnvis.actions.createModel(body);
                                  return ok && window.cnnvis.store.get().model; }""",
                            {"spec": spec, "dataset": shown["dataset"], "name": "Normalized"})
    assert created and created["layers"][1]["kind"] == "normalize"
    page.wait_for_selector('.ov-col[data-layer="1"] canvas.map')
    page.locator('.ov-col[data-layer="1"] canvas.map').nth(2).click()
    page.wait_for_function("(p) => document.querySelector(p[0])?.textContent.startsWith(p[1])",
                           arg=[DETAIL_TITLE, f"{norm['title']} 1 · channel 2"])
    adjust = page.locator("#panel-detail .detail-adjust")
    adjust.wait_for(state="visible")
    page.wait_for_function("() => /scale w\\[2\\] = /.test(document.querySelector('#panel-detail .detail-adjust').textContent)")
    assert f"{norm['title']} 1 rescales each map" in adjust.text_content()
    assert page.text_content("#panel-detail .detail-about") == norm["explanation"]
    page.wait_for_selector("#panel-detail .slices canvas")
    assert page.text_content("#panel-detail h3.detail-title >> nth=1").startswith(f"Filter 2 of {types['conv2d']['title']} 0")
    shot(page, "detail-normalize", full_page=True)
