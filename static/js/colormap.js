// @ts-check
/**
 * Colour maps. Diverging maps (ColorBrewer RdBu reversed, PuOr: both colour-blind safe) for signed
 * values, centred on zero; sequential maps (viridis, magma, grey) for non-negative values.
 * Each map is a 256-entry RGBA lookup table built by linear interpolation between its stops.
 */

/** @typedef {'diverging' | 'sequential'} MapKind */
/** @typedef {{label: string, kind: MapKind, stops: string[]}} ColorMap */

/** @type {Record<string, ColorMap>} */
export const COLORMAPS = {
  rdbu: {
    label: 'Blue–red',
    kind: 'diverging',
    stops: ['#053061', '#2166ac', '#4393c3', '#92c5de', '#d1e5f0', '#f7f7f7', '#fddbc7', '#f4a582', '#d6604d', '#b2182b', '#67001f'],
  },
  puor: {
    label: 'Purple–orange',
    kind: 'diverging',
    stops: ['#2d004b', '#542788', '#8073ac', '#b2abd2', '#d8daeb', '#f7f7f7', '#fee0b6', '#fdb863', '#e08214', '#b35806', '#7f3b08'],
  },
  viridis: {
    label: 'Viridis',
    kind: 'sequential',
    stops: ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'],
  },
  magma: {
    label: 'Magma',
    kind: 'sequential',
    stops: ['#000004', '#1c1044', '#4f127b', '#812581', '#b5367a', '#e55064', '#fb8761', '#fec287', '#fcfdbf'],
  },
  gray: { label: 'Grey', kind: 'sequential', stops: ['#000000', '#ffffff'] },
};

/** The choices offered in the page: "auto" picks by sign. */
export const MAP_CHOICES = [['auto', 'Auto colours'], ...Object.entries(COLORMAPS).map(([k, m]) => [k, m.label])];

/** @param {string} hex */
function parseHex(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const LUTS = new Map();

/**
 * The 256x4 RGBA lookup table of a map.
 * @param {string} name
 * @returns {Uint8ClampedArray}
 */
export function lut(name) {
  const cached = LUTS.get(name);
  if (cached) return cached;
  const stops = (COLORMAPS[name] || COLORMAPS.viridis).stops.map(parseHex);
  const table = new Uint8ClampedArray(256 * 4);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    for (let c = 0; c < 3; c++) table[i * 4 + c] = Math.round(stops[k][c] * (1 - f) + stops[k + 1][c] * f);
    table[i * 4 + 3] = 255;
  }
  LUTS.set(name, table);
  return table;
}

/**
 * Resolve the page's choice to a concrete map for data whose smallest value is `lo`.
 * @param {string} choice "auto" or a key of COLORMAPS
 * @param {number} lo
 * @param {string} [diverging] the diverging map "auto" uses
 */
export function resolveMap(choice, lo, diverging = 'rdbu') {
  if (choice !== 'auto' && COLORMAPS[choice]) return choice;
  return lo < 0 ? diverging : 'viridis';
}

/**
 * The range a map spans for data in [lo, hi]: symmetric about 0 for diverging maps,
 * from 0 for non-negative data on a sequential map. Never empty.
 * @param {string} name
 * @param {number} lo
 * @param {number} hi
 * @returns {[number, number]}
 */
export function displayRange(name, lo, hi) {
  const kind = (COLORMAPS[name] || COLORMAPS.viridis).kind;
  const eps = 1e-6;
  if (kind === 'diverging') {
    const m = Math.max(Math.abs(lo), Math.abs(hi), eps);
    return [-m, m];
  }
  const a = lo >= 0 ? 0 : lo;
  return [a, Math.max(hi, a + eps)];
}

/**
 * A CSS linear-gradient for a legend bar.
 * @param {string} name
 */
export function cssGradient(name) {
  const stops = (COLORMAPS[name] || COLORMAPS.viridis).stops;
  return `linear-gradient(to right, ${stops.map((c, i) => `${c} ${((i / (stops.length - 1)) * 100).toFixed(1)}%`).join(', ')})`;
}
