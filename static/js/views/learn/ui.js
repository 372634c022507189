// @ts-check
/**
 * Small drawing and text helpers shared by the Learn steps: numbers with fixed decimals, a map on a
 * canvas with a box drawn over it, a short paragraph. Values always come from the engine; these
 * only show them.
 */
import { drawInput, drawMap } from '../../canvas.js';
import { displayRange, resolveMap } from '../../colormap.js';
import { h } from '../../dom.js';

/**
 * A number with `d` decimals and a real minus sign.
 * @param {number} v
 * @param {number} [d]
 */
export function num(v, d = 3) {
  if (!Number.isFinite(v)) return String(v);
  const t = v.toFixed(d);
  return (Number(t) === 0 ? (0).toFixed(d) : t).replace('-', '−');
}

/**
 * A number that may be tiny (a gradient, a loss near 0): `d` decimals as `num` does when that shows
 * it (at least 3 significant digits), else `digits` significant digits in e-notation ("2.71e−7"), so
 * a small value never reads as 0.
 * @param {number} v
 * @param {number} [d]
 * @param {number} [digits]
 */
export function sig(v, d = 4, digits = 3) {
  if (!Number.isFinite(v) || v === 0 || Math.abs(v) >= 10 ** (2 - d)) return num(v, d);
  return v.toExponential(digits - 1).replace(/-/g, '−').replace('e+', 'e');
}

/**
 * A short paragraph of the step's own words.
 * @param {...(string|Node)} parts
 */
export function say(...parts) {
  return h('p', { class: 'lm-text' }, ...parts);
}

/**
 * The smallest and largest of `n` values from `offset`.
 * @param {Float32Array | number[]} data
 * @param {number} [offset]
 * @param {number} [n]
 */
export function range(data, offset = 0, n = data.length - offset) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = offset; i < offset + n; i++) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return Number.isFinite(lo) ? [lo, hi] : [0, 1];
}

/**
 * A canvas in a positioned frame (so boxes can be laid over it), shown `px` CSS pixels wide.
 * @param {string} label accessible name
 * @param {number} [px]
 */
export function framedCanvas(label, px = 180) {
  const canvas = h('canvas', { class: 'lm-canvas', role: 'img', 'aria-label': label });
  const frame = h('div', { class: 'lm-frame' }, canvas);
  frame.style.width = `${px}px`;
  return { frame, canvas, px };
}

/**
 * Draw channel `c` of a [1, C, H, W] (or (C, H, W) with `shape`) map, on a symmetric scale when it
 * has negative values; the input image itself (`asImage`) is drawn in colour.
 * @param {{frame: HTMLElement, canvas: HTMLCanvasElement, px: number}} fc
 * @param {Float32Array} data
 * @param {number[]} shape (C, H, W)
 * @param {number} c
 * @param {{asImage?: boolean, lo?: number, hi?: number, cmap?: string}} [opts]
 */
export function showMap(fc, data, shape, c, opts = {}) {
  const [C, H, W] = shape;
  if (opts.asImage) drawInput(fc.canvas, { shape: [1, C, H, W], data });
  else {
    const [lo0, hi0] = range(data, c * H * W, H * W);
    const lo = opts.lo ?? lo0;
    const hi = opts.hi ?? hi0;
    const cmap = opts.cmap || resolveMap('auto', lo);
    const [a, b] = displayRange(cmap, lo, hi);
    drawMap(fc.canvas, data, c * H * W, H, W, a, b, cmap);
  }
  fc.canvas.style.width = `${fc.px}px`;
  fc.canvas.style.height = `${Math.round((fc.px * H) / W)}px`;
}

/**
 * Lay a box over a framed canvas, in the map's own cells (rows and columns of a `H` x `W` map).
 * @param {{frame: HTMLElement}} fc
 * @param {string} key one box per key, reused
 * @param {{top: number, left: number, height: number, width: number} | null} rect
 * @param {number} H
 * @param {number} W
 */
export function box(fc, key, rect, H, W) {
  let el = /** @type {HTMLElement | null} */ (fc.frame.querySelector(`[data-box="${key}"]`));
  if (!rect) {
    el?.remove();
    return;
  }
  if (!el) {
    el = h('div', { class: `lm-box lm-box-${key}`, dataset: { box: key } });
    fc.frame.append(el);
  }
  el.style.top = `${(100 * rect.top) / H}%`;
  el.style.left = `${(100 * rect.left) / W}%`;
  el.style.height = `${(100 * rect.height) / H}%`;
  el.style.width = `${(100 * rect.width) / W}%`;
}

/**
 * A <select> of numbered options.
 * @param {string} name data-learn hook
 * @param {Array<[string | number, string]>} options value, label
 * @param {(value: string) => void} onChange
 * @param {string} [label] its accessible name, when no visible label wraps it
 */
export function choice(name, options, onChange, label) {
  const el = h('select', { dataset: { learn: name }, ...(label ? { 'aria-label': label } : {}), on: { change: () => onChange(el.value) } },
    options.map(([v, label]) => h('option', { value: String(v), text: label })));
  return el;
}

/**
 * The index of a layer's output in a forward result (its layers may be a subset), or -1.
 * @param {import('../../state.js').Forward} forward
 * @param {number} layer
 */
export function outputOf(forward, layer) {
  return forward.layers.find((l) => l.index === layer)?.output ?? null;
}

/**
 * A layer's weights and bias (GET .../layers/{i}/filters), or null once the server's message is shown.
 * @param {any} ctx the page's ctx (api, actions)
 * @param {string} modelId
 * @param {number} index
 * @returns {Promise<import('../../state.js').Filters | null>}
 */
export async function weights(ctx, modelId, index) {
  try {
    return await ctx.api.filters(modelId, index);
  } catch (err) {
    ctx.actions.fail(err);
    return null;
  }
}
