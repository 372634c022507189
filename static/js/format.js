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

/**
 * An integer with thousands separators ("12,345"), as `toLocaleString('en-US')` writes it; that
 * call's first use loaded the locale data, ~30 ms of the page's first drawing, so safe integers
 * are grouped here and anything else is left to it.
 * @param {number} n
 */
export function fmtInt(n) {
  const v = Number(n);
  if (!Number.isSafeInteger(v) || Object.is(v, -0)) return v.toLocaleString('en-US');
  const digits = String(Math.abs(v)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return v < 0 ? `-${digits}` : digits;
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
