// @ts-check
/**
 * Colour scales for activation maps: per-channel, per-layer or global ranges, with a lock that
 * freezes the ranges across training steps and images. Pure functions over decoded forward results.
 */
import { displayRange, resolveMap } from './colormap.js';

/**
 * @typedef {{min: Float32Array, max: Float32Array, lo: number, hi: number}} LayerStats
 * per-channel min/max (one "channel" for vectors) and the layer's overall range
 * @typedef {{layers: Map<number, LayerStats>, lo: number, hi: number}} Stats  key -1 is the input
 * @typedef {{mode: 'channel'|'layer'|'global', cmap: string, diverging: string, locked: boolean}} ColourSettings
 * @typedef {{lo: number, hi: number, cmap: string}} Scale
 */

/**
 * Per-channel statistics of one tensor [1, C, H, W] or [1, D].
 * @param {import('./tensor.js').Tensor} t
 * @returns {LayerStats}
 */
export function tensorStats(t) {
  const maps = t.shape.length === 4;
  const channels = maps ? t.shape[1] : 1;
  const size = maps ? t.shape[2] * t.shape[3] : t.data.length;
  const min = new Float32Array(channels);
  const max = new Float32Array(channels);
  let lo = Infinity;
  let hi = -Infinity;
  for (let c = 0; c < channels; c++) {
    let a = Infinity;
    let b = -Infinity;
    for (let i = c * size, end = i + size; i < end; i++) {
      const v = t.data[i];
      if (v < a) a = v;
      if (v > b) b = v;
    }
    if (!(a <= b)) a = b = 0;
    min[c] = a;
    max[c] = b;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
  }
  return { min, max, lo: lo <= hi ? lo : 0, hi: lo <= hi ? hi : 0 };
}

/**
 * Statistics of a whole forward result. The global range spans every layer except the input and
 * layers of kind "output" (probabilities would squash everything else).
 * @param {{input: import('./tensor.js').Tensor, layers: Array<{index: number, type: string, output: import('./tensor.js').Tensor}>}} forward
 * @param {{layers: Array<{kind: string}>} | null} model the model that ran it (for its layers' kinds)
 * @returns {Stats}
 */
export function forwardStats(forward, model) {
  /** @type {Map<number, LayerStats>} */
  const layers = new Map();
  layers.set(-1, tensorStats(forward.input));
  let lo = Infinity;
  let hi = -Infinity;
  for (const layer of forward.layers) {
    const st = tensorStats(layer.output);
    layers.set(layer.index, st);
    if (model?.layers[layer.index]?.kind === 'output') continue;
    lo = Math.min(lo, st.lo);
    hi = Math.max(hi, st.hi);
  }
  return { layers, lo: lo <= hi ? lo : 0, hi: lo <= hi ? hi : 0 };
}

/**
 * The scale of one map under the current settings; `locked` stats win where they cover the map.
 * @param {Stats} stats
 * @param {Stats | null} locked
 * @param {ColourSettings} settings
 * @param {number} layer layer index (-1: input)
 * @param {number} channel
 * @returns {Scale}
 */
export function scaleFor(stats, locked, settings, layer, channel) {
  const src = locked && locked.layers.has(layer) && locked.layers.get(layer)?.min.length === stats.layers.get(layer)?.min.length ? locked : stats;
  const st = src.layers.get(layer);
  if (!st) return { lo: 0, hi: 1, cmap: resolveMap(settings.cmap, 0, settings.diverging) };
  const cmap = resolveMap(settings.cmap, st.lo, settings.diverging);
  /** @type {[number, number]} */
  let raw;
  if (settings.mode === 'channel') raw = [st.min[channel] ?? st.lo, st.max[channel] ?? st.hi];
  else if (settings.mode === 'global' && layer >= 0) raw = [st.lo >= 0 ? 0 : Math.min(src.lo, st.lo), Math.max(src.hi, st.hi)];
  else raw = [st.lo, st.hi];
  const [lo, hi] = displayRange(cmap, raw[0], raw[1]);
  return { lo, hi, cmap };
}
