// @ts-check
/**
 * Colour maps, as the server defines them (engine/colormaps.py): each map's name, label, kind and
 * 256-entry RGB table arrive in the bootstrap JSON (or, on a page without one, from
 * GET /api/v1/colormaps). This module holds no colours of its own; it mirrors the engine's one
 * rule from a value to a table entry (`displayRange`, then `colorIndex`) in the same float64
 * arithmetic, so the page's canvas and the API's PNGs give the same RGB for the same value.
 */
import { createApi } from './api.js';

/** @typedef {'diverging' | 'sequential'} MapKind */
/** @typedef {{label: string, kind: MapKind}} ColorMap */
/** @typedef {{name: string, label: string, kind: MapKind, lut: string}} WireMap lut: base64 of 256 x RGB */

/** The smallest span a range may have (engine/colormaps.py EPS). */
const EPS = 1e-6;

/** @returns {Promise<WireMap[]>} */
async function loadTables() {
  const boot = JSON.parse(document.getElementById('bootstrap')?.textContent || '{}');
  if (Array.isArray(boot.colormaps)) return boot.colormaps;
  return createApi(boot.api_base || '/api/v1').colormaps();
}

const TABLES = await loadTables();

/** @type {Record<string, ColorMap>} */
export const COLORMAPS = Object.fromEntries(TABLES.map((m) => [m.name, { label: m.label, kind: m.kind }]));

/** The choices offered in the page: "auto" picks by sign. */
export const MAP_CHOICES = [['auto', 'Auto colours'], ...TABLES.map((m) => [m.name, m.label])];

/** @type {Map<string, Uint8ClampedArray>} 256x4 RGBA, opaque */
const LUTS = new Map(
  TABLES.map((m) => {
    const rgb = Uint8Array.from(atob(m.lut), (c) => c.charCodeAt(0));
    if (rgb.length !== 768) throw new Error(`colour map ${m.name}: ${rgb.length} bytes, 768 expected`);
    const table = new Uint8ClampedArray(256 * 4);
    for (let i = 0; i < 256; i++) table.set([rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 255], 4 * i);
    return [m.name, table];
  }),
);

/** @param {string} name */
function known(name) {
  return COLORMAPS[name] ? name : 'viridis';
}

/**
 * The 256x4 RGBA lookup table of a map (viridis for an unknown name).
 * @param {string} name
 * @returns {Uint8ClampedArray}
 */
export function lut(name) {
  return /** @type {Uint8ClampedArray} */ (LUTS.get(known(name)));
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
 * from 0 for non-negative data on a sequential map. Never empty. (engine: display_range)
 * @param {string} name
 * @param {number} lo
 * @param {number} hi
 * @returns {[number, number]}
 */
export function displayRange(name, lo, hi) {
  if (COLORMAPS[known(name)].kind === 'diverging') {
    const m = Math.max(Math.abs(lo), Math.abs(hi), EPS);
    return [-m, m];
  }
  const a = lo >= 0 ? 0 : lo;
  return [a, Math.max(hi, a + EPS)];
}

/**
 * The table entry 0..255 of value `v` on the range [lo, hi]: floor((v - lo) / (hi - lo) * 255 + 0.5),
 * clamped; NaN gives 0. (engine: lut_index)
 * @param {number} v
 * @param {number} lo
 * @param {number} hi
 */
export function colorIndex(v, lo, hi) {
  const i = Math.floor(((v - lo) / (hi - lo)) * 255 + 0.5);
  return i > 0 ? (i < 255 ? i : 255) : 0;
}

/** @type {Map<string, string>} */
const GRADIENTS = new Map();

/**
 * A CSS linear-gradient for a legend bar, sampled from the map's table (every 16th entry, so a
 * diverging map's zero, entry 128, is one of the samples).
 * @param {string} name
 */
export function cssGradient(name) {
  const key = known(name);
  let css = GRADIENTS.get(key);
  if (!css) {
    const table = lut(key);
    const at = (/** @type {number} */ i) => `rgb(${table[4 * i]} ${table[4 * i + 1]} ${table[4 * i + 2]}) ${((i / 255) * 100).toFixed(1)}%`;
    const stops = [];
    for (let i = 0; i < 256; i += 16) stops.push(at(i));
    css = `linear-gradient(to right, ${[...stops, at(255)].join(', ')})`;
    GRADIENTS.set(key, css);
  }
  return css;
}
