// @ts-check
/**
 * Canvas 2D drawing of maps at their native resolution: one canvas pixel per unit, enlarged by
 * CSS with `image-rendering: pixelated`, so maps stay crisp and redraws are cheap. ImageData
 * buffers are reused per canvas, so live updates allocate nothing.
 */
import { colorIndex, lut } from './colormap.js';

const BUFFERS = new WeakMap();

/**
 * A reusable ImageData of the right size for `canvas` (resizing the canvas only when needed).
 * @param {HTMLCanvasElement} canvas
 * @param {number} w
 * @param {number} h
 */
function buffer(canvas, w, h) {
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  let img = BUFFERS.get(canvas);
  if (!img || img.width !== w || img.height !== h) {
    img = new ImageData(w, h);
    BUFFERS.set(canvas, img);
  }
  return img;
}

/** @param {HTMLCanvasElement} canvas */
function ctx2d(canvas) {
  const c = canvas.getContext('2d');
  if (!c) throw new Error('no 2D canvas context');
  return c;
}

/**
 * Draw an (h, w) map stored at `data[offset..]` through a colour map over [lo, hi].
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} h
 * @param {number} w
 * @param {number} lo
 * @param {number} hi
 * @param {string} cmap
 */
export function drawMap(canvas, data, offset, h, w, lo, hi, cmap) {
  const img = buffer(canvas, w, h);
  const px = img.data;
  const table = lut(cmap);
  for (let i = 0, n = h * w; i < n; i++) {
    const j = colorIndex(data[offset + i], lo, hi) * 4;
    const o = i * 4;
    px[o] = table[j];
    px[o + 1] = table[j + 1];
    px[o + 2] = table[j + 2];
    px[o + 3] = 255;
  }
  ctx2d(canvas).putImageData(img, 0, 0);
}

/**
 * Draw `n` values as a grid of `cols` columns (unused cells transparent).
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} n
 * @param {number} cols
 * @param {number} lo
 * @param {number} hi
 * @param {string} cmap
 */
export function drawVector(canvas, data, offset, n, cols, lo, hi, cmap) {
  const rows = Math.ceil(n / cols);
  const img = buffer(canvas, cols, rows);
  const px = img.data;
  px.fill(0);
  const table = lut(cmap);
  for (let i = 0; i < n; i++) {
    const t = colorIndex(data[offset + i], lo, hi) * 4;
    px.set([table[t], table[t + 1], table[t + 2], 255], i * 4);
  }
  ctx2d(canvas).putImageData(img, 0, 0);
}

/**
 * Draw a planar (3, h, w) image as colour, mapping [lo, hi] to [0, 255] on every channel.
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} h
 * @param {number} w
 * @param {number} lo
 * @param {number} hi
 */
export function drawRGB(canvas, data, offset, h, w, lo, hi) {
  const img = buffer(canvas, w, h);
  const px = img.data;
  const plane = h * w;
  const k = 255 / (hi - lo || 1);
  for (let i = 0; i < plane; i++) {
    const o = i * 4;
    px[o] = (data[offset + i] - lo) * k;
    px[o + 1] = (data[offset + plane + i] - lo) * k;
    px[o + 2] = (data[offset + 2 * plane + i] - lo) * k;
    px[o + 3] = 255;
  }
  ctx2d(canvas).putImageData(img, 0, 0);
}

/**
 * Draw a (C, h, w) input as it is meant to be seen: colour for 3 channels, grey for 1.
 * Pixel values are shown over their natural [0, 1] range when they lie in it.
 * @param {HTMLCanvasElement} canvas
 * @param {import('./tensor.js').Tensor} input shape [1, C, H, W]
 */
export function drawInput(canvas, input) {
  const [, c, h, w] = input.shape;
  let lo = 0;
  let hi = 1;
  for (const v of input.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (c === 3) drawRGB(canvas, input.data, 0, h, w, lo, hi);
  else drawMap(canvas, input.data, 0, h, w, lo, hi, 'gray');
}

/**
 * Draw one RGB filter (3, kh, kw) in colour, scaled symmetrically so 0 is mid-grey.
 * @param {HTMLCanvasElement} canvas
 * @param {Float32Array} data
 * @param {number} offset
 * @param {number} kh
 * @param {number} kw
 * @param {number} m the largest magnitude to show (shared across a layer)
 */
export function drawRGBFilter(canvas, data, offset, kh, kw, m) {
  drawRGB(canvas, data, offset, kh, kw, -m, m);
}

/**
 * Map a pointer event on a canvas to the unit (row, col) under it.
 * @param {HTMLCanvasElement} canvas
 * @param {MouseEvent} ev
 * @returns {{row: number, col: number}}
 */
export function unitAt(canvas, ev) {
  const r = canvas.getBoundingClientRect();
  const col = Math.floor(((ev.clientX - r.left) / Math.max(1, r.width)) * canvas.width);
  const row = Math.floor(((ev.clientY - r.top) / Math.max(1, r.height)) * canvas.height);
  return { row: Math.max(0, Math.min(canvas.height - 1, row)), col: Math.max(0, Math.min(canvas.width - 1, col)) };
}
