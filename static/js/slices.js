// @ts-check
/**
 * Weight pictures: a filter's slices per input channel (or a dense unit's weights folded back onto
 * the map they read), each a reusable canvas with a caption, on one symmetric diverging scale.
 */
import { drawMap, drawRGBFilter, drawVector } from './canvas.js';
import { h, replaceChildren, setText } from './dom.js';

/**
 * Largest |w| over `data[offset .. offset+count)`.
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} count
 */
export function maxAbs(data, offset, count) {
  let m = 0;
  for (let i = offset; i < offset + count; i++) m = Math.max(m, Math.abs(data[i]));
  return m || 1e-9;
}

/**
 * Make sure `box` holds `n` captioned canvases; returns them (reused between calls).
 * @param {HTMLElement} box
 * @param {number} n
 * @param {(i: number) => string} caption
 * @returns {HTMLCanvasElement[]}
 */
export function ensureTiles(box, n, caption) {
  if (box.children.length !== n) {
    replaceChildren(box, Array.from({ length: n }, (_, i) =>
      h('figure', { class: 'slice' }, h('canvas', { class: 'map', 'aria-label': caption(i) }), h('figcaption', {}, caption(i)))));
  }
  return Array.from(box.querySelectorAll('canvas'));
}

/**
 * Draw slices: `count` maps of (kh, kw) starting at `offset`, on [-m, m], each CSS-sized `px`.
 * @param {HTMLElement} box
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} count
 * @param {number} kh
 * @param {number} kw
 * @param {number} m
 * @param {string} cmap
 * @param {number} px
 * @param {(i: number) => string} caption
 */
export function drawSlices(box, data, offset, count, kh, kw, m, cmap, px, caption) {
  const tiles = ensureTiles(box, count, caption);
  tiles.forEach((c, i) => {
    drawMap(c, data, offset + i * kh * kw, kh, kw, -m, m, cmap);
    c.style.width = `${px}px`;
    c.style.height = `${Math.round((px * kh) / kw)}px`;
    setText(/** @type {Element} */ (c.nextElementSibling), caption(i));
  });
}

/**
 * One RGB filter in colour.
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} kh
 * @param {number} kw
 * @param {number} m
 * @param {number} px
 */
export function drawColourFilter(canvas, data, offset, kh, kw, m, px) {
  drawRGBFilter(canvas, data, offset, kh, kw, m);
  canvas.style.width = `${px}px`;
  canvas.style.height = `${Math.round((px * kh) / kw)}px`;
}

/**
 * A weight vector as a near-square grid.
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} n
 * @param {number} m
 * @param {string} cmap
 * @param {number} px
 */
export function drawWeightVector(canvas, data, offset, n, m, cmap, px) {
  const cols = Math.ceil(Math.sqrt(n));
  drawVector(canvas, data, offset, n, cols, -m, m, cmap);
  canvas.style.width = `${px}px`;
  canvas.style.height = `${Math.round((px * Math.ceil(n / cols)) / cols)}px`;
}

/**
 * A CSS size that shows a k-pixel map as integer multiples when it can, between lo and hi.
 * @param {number} k
 * @param {number} lo
 * @param {number} hi
 */
export function crispSize(k, lo, hi) {
  const mult = Math.max(1, Math.floor(hi / k));
  return Math.max(lo, Math.min(hi, k * mult));
}

/**
 * The cell (row, col) of an (h, w) picture under the pointer, from the canvas's CSS box; null outside.
 * @param {HTMLCanvasElement} canvas
 * @param {MouseEvent} ev
 * @param {number} h
 * @param {number} w
 */
export function cellAt(canvas, ev, h, w) {
  const r = canvas.getBoundingClientRect();
  const row = Math.floor(((ev.clientY - r.top) / r.height) * h);
  const col = Math.floor(((ev.clientX - r.left) / r.width) * w);
  return row >= 0 && row < h && col >= 0 && col < w ? { row, col } : null;
}

/**
 * A dense layer's weights (units, D) as one picture, a row per unit and a column per input, on
 * [-m, m]; each cell at least 1 CSS pixel wide (a wide matrix scrolls) and a few pixels tall.
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} units
 * @param {number} d
 * @param {number} m
 * @param {string} cmap
 * @param {number} room CSS pixels of width available
 */
export function drawMatrix(canvas, data, units, d, m, cmap, room) {
  drawMap(canvas, data, 0, units, d, -m, m, cmap);
  const cellW = Math.max(1, Math.min(16, Math.floor(room / d)));
  const cellH = Math.max(3, Math.min(24, Math.floor(360 / units)));
  canvas.style.width = `${d * cellW}px`;
  canvas.style.height = `${units * cellH}px`;
}
