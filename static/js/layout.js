// @ts-check
/**
 * Sizes for the overview: one thumbnail size for the whole network, the largest that lets every
 * column fit the stage's width, each column wrapping its channels into sub-columns to fit its height.
 */

export const GAP = 4; // between thumbnails
export const COL_GAP = 8; // between columns
export const MIN_COL = 50; // narrowest column (room for its labels)
export const PROBS_W = 176; // the class-probability column

/**
 * @typedef {{kind: 'input', c: number, h: number, w: number} | {kind: 'maps', c: number, h: number, w: number}
 *   | {kind: 'vector', d: number} | {kind: 'probs', k: number}} ColumnSpec
 * @typedef {{width: number, tileW: number, tileH: number, perCol: number, cols: number, cell: number,
 *   gridCols: number, gridRows: number}} ColumnPlan
 */

/**
 * A (tw, th) tile that fits an s x s box and keeps the map's aspect ratio.
 * @param {number} s
 * @param {number} h
 * @param {number} w
 */
function tile(s, h, w) {
  return w >= h ? [s, Math.max(4, Math.round((s * h) / w))] : [Math.max(4, Math.round((s * w) / h)), s];
}

/**
 * Plan one column for thumbnail size `s` and a maps area `availH` pixels tall.
 * @param {ColumnSpec} spec
 * @param {number} s
 * @param {number} availH
 * @returns {ColumnPlan}
 */
export function planColumn(spec, s, availH) {
  const base = { width: MIN_COL, tileW: 0, tileH: 0, perCol: 1, cols: 1, cell: 1, gridCols: 1, gridRows: 1 };
  if (spec.kind === 'probs') return { ...base, width: PROBS_W };
  if (spec.kind === 'input') {
    const [tw, th] = tile(s, spec.h, spec.w);
    return { ...base, width: Math.max(MIN_COL, tw), tileW: tw, tileH: th };
  }
  if (spec.kind === 'maps') {
    const [tw, th] = tile(s, spec.h, spec.w);
    const perCol = Math.max(1, Math.floor((availH + GAP) / (th + GAP)));
    const cols = Math.ceil(spec.c / perCol);
    const rows = Math.ceil(spec.c / cols);
    return { ...base, width: Math.max(MIN_COL, cols * (tw + GAP) - GAP), tileW: tw, tileH: th, perCol: rows, cols };
  }
  const d = spec.d;
  if (d <= 32) {
    const cell = Math.max(3, Math.min(22, Math.floor(availH / d)));
    return { ...base, cell, gridCols: 1, gridRows: d, tileW: 22, tileH: cell * d };
  }
  const gridCols = Math.ceil(Math.sqrt(d));
  const gridRows = Math.ceil(d / gridCols);
  const cell = Math.max(1, Math.floor(Math.min(1.8 * s, availH) / gridCols));
  return { ...base, width: Math.max(MIN_COL, cell * gridCols), cell, gridCols, gridRows, tileW: cell * gridCols, tileH: cell * gridRows };
}

/**
 * The largest thumbnail size (from 72 down to 24 px) whose columns fit `availW`. When nothing
 * fits (a narrow screen, a deep network) the overview scrolls sideways, so the maps may as well
 * be comfortably large: 44 px.
 * @param {ColumnSpec[]} specs
 * @param {number} availW
 * @param {number} availH
 */
export function chooseSize(specs, availW, availH) {
  for (let s = 72; s >= 24; s -= 1) {
    const total = specs.reduce((sum, spec) => sum + planColumn(spec, s, availH).width + COL_GAP, -COL_GAP);
    if (total <= availW) return s;
  }
  return 44;
}
