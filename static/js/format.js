// @ts-check
/** Number and shape formatting shared by every view. */

/**
 * A compact number: 3 significant digits, exponent for very small or large magnitudes.
 * @param {number | null | undefined} v
 * @param {number} [digits]
 */
export function fmt(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  const a = Math.abs(v);
  if (a === 0) return '0';
  const text = a >= 1e4 || a < 1e-3 ? v.toExponential(digits - 1).replace('e+', 'e') : String(Number(v.toPrecision(digits)));
  return text.replace('-', '−');
}

/** @param {number} n */
export function fmtInt(n) {
  return Number(n).toLocaleString('en-US');
}

/** @param {number[]} shape */
export function fmtShape(shape) {
  return shape.join('×');
}

/** @param {number} p probability in [0, 1] */
export function fmtPct(p) {
  return `${(p * 100).toFixed(1)}%`;
}

/**
 * A class name made readable: "horizontal_stripes" -> "horizontal stripes".
 * @param {string} name
 */
export function prettyClass(name) {
  return String(name).replace(/_/g, ' ');
}

/**
 * A layer's short title from the registry, e.g. "Conv" (the server sends it with every layer).
 * @param {{type: string, title?: string}} layer
 */
export function layerTitle(layer) {
  return layer.title || layer.type;
}
