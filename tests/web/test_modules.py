"""The page's pure modules, run in the browser against Python oracles: float16 decoding (NumPy),
receptive-field rectangles (the engine's recurrence, worked by hand for TinyVGG), colour ranges,
chart ticks and smoothing."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from engine.registry import REGISTRY

pytestmark = pytest.mark.browser


def run(page, code: str, arg=None):
    """Evaluate an async function body in the page, with the static modules importable."""
    if not page.url.startswith(page.base_url):
        page.route("**/favicon.ico", lambda route: route.fulfill(status=204, body=b""))  # a bare file page asks for one
        page.goto(page.base_url + "/static/favicon.svg")
    return page.evaluate(f"async (arg) => {{ {code} }}", arg)


def test_float16_and_float32_decoding_matches_numpy(page):
    rng = np.random.default_rng(0)
    special = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 6.1e-5, 5.96e-8, np.inf, -np.inf], dtype=np.float16)
    h = np.concatenate([special, rng.normal(0, 100, 500).astype(np.float16)])
    f = rng.normal(0, 1, 300).astype(np.float32)
    wire = [
        {"shape": [len(h)], "dtype": "float16", "data": base64.b64encode(h.astype("<f2").tobytes()).decode()},
        {"shape": [3, 100], "dtype": "float32", "data": base64.b64encode(f.astype("<f4").tobytes()).decode()},
    ]
    got = run(page, """
        const { decodeTensor } = await import('/static/js/tensor.js');
        return arg.map((t) => { const d = decodeTensor(t); return { shape: d.shape, data: Array.from(d.data, (v) => Number.isFinite(v) ? v : String(v)) }; });
    """, wire)
    want16 = [v if np.isfinite(v) else ("Infinity" if v > 0 else "-Infinity") for v in h.astype(np.float32).tolist()]
    assert got[0]["data"] == want16
    assert got[1]["shape"] == [3, 100]
    assert np.array_equal(np.array(got[1]["data"], dtype=np.float32), f)
    with pytest.raises(Exception, match="needs 8 bytes"):
        run(page, "const { decodeTensor } = await import('/static/js/tensor.js'); return decodeTensor(arg);",
            {"shape": [2], "dtype": "float32", "data": base64.b64encode(b"\0" * 4).decode()})


def test_receptive_rectangles_follow_the_engine(page):
    # TinyVGG on 64x64: conv3 (size 3, jump 1, start 1), conv3 (5, 1, 2), pool2 (6, 2, 2.5), flatten, dense
    kinds = {row.type: row.spec.kind for row in REGISTRY.values()}
    layer = lambda t, shape, size, jump, start: {"type": t, "kind": kinds[t], "output_shape": shape, "parameters": 0,
                                                 "receptive_field": {"size": size, "jump": jump, "start": start}}
    model = {"spec": {"input_shape": [3, 64, 64]}, "layers": [
        layer("conv2d", [10, 62, 62], 3, 1, 1), layer("conv2d", [10, 60, 60], 5, 1, 2), layer("maxpool2d", [10, 30, 30], 6, 2, 2.5),
        layer("flatten", [9000], 6, 2, 2.5), layer("dense", [8], 64, 0, 31.5)]}
    got = run(page, """
        const { receptiveRect, flattenSource, producingConv } = await import('/static/js/units.js');
        const m = arg;
        return [receptiveRect(m, 0, 0, 0, 0), receptiveRect(m, 0, 0, 10, 20), receptiveRect(m, 2, 0, 0, 0),
                receptiveRect(m, 2, 0, 29, 29), receptiveRect(m, 3, 30 * 30 + 31, -1, -1), receptiveRect(m, 4, 3, -1, -1),
                flattenSource(m, 3), producingConv(m, 2)];
    """, model)
    rect = lambda top, left, h, w: {"top": top, "left": left, "height": h, "width": w}
    assert got[0] == rect(0, 0, 3, 3)  # unit (0, 0) of a 3x3 conv reads pixels 0..2
    assert got[1] == rect(10, 20, 3, 3)
    assert got[2] == rect(0, 0, 6, 6)  # pool of two 3x3 convs: 6 pixels from the corner
    assert got[3] == rect(58, 58, 6, 6)  # the last pooled unit ends at the image edge
    assert got[4] == rect(2, 2, 6, 6)  # flatten index 931 = channel 1, row 1, col 1 of the pool
    assert got[5] == rect(0, 0, 64, 64)  # a dense unit sees everything
    assert got[6] == 2 and got[7] == 1


def test_colour_ranges_ticks_and_smoothing(page):
    got = run(page, """
        const c = await import('/static/js/colormap.js');
        const ch = await import('/static/js/charts.js');
        return {
          auto: [c.resolveMap('auto', -1), c.resolveMap('auto', 0), c.resolveMap('magma', -1)],
          ranges: [c.displayRange('rdbu', -2, 1), c.displayRange('viridis', 0.5, 3), c.displayRange('viridis', -1, 2), c.displayRange('viridis', 0, 0)],
          lut: Array.from(c.lut('gray').slice(0, 4)).concat(Array.from(c.lut('gray').slice(1020, 1024))),
          ticks: ch.niceTicks(0, 1, 5), ticks2: ch.niceTicks(3, 97, 4),
          flat: ch.niceTicks(2.302585, 2.302585 + 4e-16, 4), // a range below the values' precision
          smooth: ch.smooth([[1, 2], [2, 2], [3, 2]], 0.9), smooth0: ch.smooth([[1, 1], [2, 5]], 0),
        };
    """)
    assert got["auto"] == ["rdbu", "viridis", "magma"]
    assert got["ranges"][0] == [-2, 2] and got["ranges"][1] == [0, 3] and got["ranges"][2] == [-1, 2]
    assert got["ranges"][3][0] == 0 and got["ranges"][3][1] > 0  # never an empty range
    assert got["lut"] == [0, 0, 0, 255, 255, 255, 255, 255]
    assert got["ticks"] == [0, 0.2, 0.4, 0.6, 0.8, 1]
    assert got["ticks2"] == [25, 50, 75]
    assert 1 <= len(got["flat"]) <= 17 and all(abs(v - 2.302585) < 1e-6 for v in got["flat"])
    assert [round(v, 9) for _, v in got["smooth"]] == [2, 2, 2]  # bias-corrected: a constant stays constant
    assert got["smooth0"] == [[1, 1], [2, 5]]


def test_spec_validation_answers_old_and_new(page):
    """`POST /specs/validate` answers 200 with a `valid` flag; older servers answered 422 with the
    layer's index. Both mean the same to the editor."""
    got = run(page, """
        const { validationOf } = await import('/static/js/editor.js');
        const { ApiError } = await import('/static/js/api.js');
        return [
          validationOf({ valid: true, layers: [{}], parameters: 5, output_shape: [2] }),
          validationOf({ valid: false, detail: 'layer 4 (maxpool2d): too small', layer_index: 4 }),
          validationOf({ valid: false, detail: 'input_shape: bad', layer_index: null }),
          validationOf(null, new ApiError(422, 'layer 2 (conv2d): no', { detail: 'layer 2 (conv2d): no', layer_index: 2 })),
          validationOf(null, new ApiError(0, 'The server cannot be reached.')),
        ];
    """)
    assert got[0]["error"] is None and got[0]["result"]["parameters"] == 5 and got[0]["pending"] is False
    assert got[1] == {"pending": False, "result": None, "error": "layer 4 (maxpool2d): too small", "layer": 4}
    assert got[2]["error"] == "input_shape: bad" and got[2]["layer"] is None
    assert got[3]["error"] == "layer 2 (conv2d): no" and got[3]["layer"] == 2
    assert got[4]["error"].startswith("The server cannot") and got[4]["layer"] is None


def test_fmtint_groups_as_the_locale_does(page):
    """`fmtInt` groups digits itself (the locale data's first load cost the first drawing ~30 ms):
    the same text as ``toLocaleString('en-US')`` for integers, and that call for anything else."""
    got = run(page, """
        const { fmtInt } = await import('/static/js/format.js');
        const values = [0, -0, 1, -1, 7, 12, 999, 1000, -1000, 12345, 123456, 1234567, -9876543210, 2 ** 53 - 1,
                        -(2 ** 53 - 1), 2 ** 53, 1e21, 1.5, -2.25, 0.0004, NaN, Infinity, -Infinity, '42', null];
        for (let i = 0; i < 2000; i++) values.push(Math.round((Math.random() - 0.5) * 10 ** (i % 16)));
        return values.filter((v) => fmtInt(v) !== Number(v).toLocaleString('en-US')).map(String);
    """)
    assert got == []


def test_every_float16_pattern_decodes_as_numpy_does(page):
    """The float16 table is made from bit patterns, on first use: all 65536 values against NumPy."""
    bits = np.arange(65536, dtype=np.uint16)
    wire = {"shape": [65536], "dtype": "float16", "data": base64.b64encode(bits.astype("<u2").tobytes()).decode()}
    got = run(page, """
        const { decodeTensor } = await import('/static/js/tensor.js');
        const d = decodeTensor(arg).data;
        return Array.from(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    """, wire)
    want = bits.view(np.float16).astype(np.float32)
    mine = np.frombuffer(bytes(got), dtype="<f4")
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(mine), nan)
    assert mine[~nan].tobytes() == want[~nan].tobytes()  # the same bits, signed zeros included


def test_legends_fitted_together_read_as_fitted_one_by_one(page):
    """`fitLegends` measures a row of compact legends at once; the result is the one-by-one fitting's."""
    page.goto(page.base_url + "/")
    page.wait_for_selector(".ov-col canvas.map", state="visible", timeout=30_000)
    got = page.evaluate("""async () => {
        const { createLegend, fitLegends, updateLegend } = await import('/static/js/legend.js');
        const ranges = [[-123.4, 123.4], [0.001234, 98765], [-5, 5], [0, 1], [-0.5, 2], [-1e-7, 1e-7]];
        const rows = [];
        for (const together of [false, true]) {
          const row = document.createElement('div');
          document.body.append(row);
          const els = [];
          for (const [i, [lo, hi]] of ranges.entries()) {
            const box = document.createElement('div');
            box.className = 'ov-col';
            box.style.width = `${40 + 12 * i}px`;
            const el = createLegend('test', 'legend-compact');
            box.append(el);
            row.append(box);
            els.push(el);
          }
          const unfitted = [];
          els.forEach((el, i) => updateLegend(el, { lo: ranges[i][0], hi: ranges[i][1], cmap: 'rdbu' }, undefined, 2,
                                               together ? unfitted : undefined));
          if (together) fitLegends(unfitted);
          rows.push(els.map((el) => [el.className, el.querySelector('.legend-ticks').textContent]));
          row.remove();
        }
        return rows;
    }""")
    assert got[0] == got[1]
    assert any("legend-tight" in cls for cls, _ in got[0])  # the check is not vacuous
