// @ts-check
/**
 * The shapes on the wire that more than one module needs: the JSON body naming an input, and the
 * forward and explanation answers decoded into tensors (binary answers arrive already decoded).
 */
import { decodeTensor } from './tensor.js';

/**
 * @typedef {import('./state.js').InputRef} InputRef
 * @typedef {import('./state.js').Forward} Forward
 */

/**
 * The JSON body that names an input.
 * @param {InputRef} ref
 */
export function inputBody(ref) {
  if (ref.kind === 'sample') return { sample: { split: ref.split, index: ref.index } };
  const fit = /** @type {{fit?: string}} */ (ref).fit; // 'pad': letterbox instead of the centre crop
  return fit === 'pad' ? { image_id: ref.id, fit } : { image_id: ref.id };
}

/**
 * Decode a forward response (also the shape of a live "activations" message).
 * @param {any} r
 * @returns {Forward}
 */
export function decodeForward(r) {
  return {
    step: r.step,
    input: batched(decodeTensor(r.input)),
    layers: r.layers.map((/** @type {any} */ l) => ({ ...l, output: batched(decodeTensor(l.output)) })),
    probabilities: r.probabilities,
    classes: r.classes,
    prediction: r.prediction,
    label: typeof r.label === 'number' ? r.label : null,
  };
}

/**
 * Decode an explain response: its map, and the randomized map of a sanity check, as tensors.
 * @param {any} r
 */
export function decodeExplanation(r) {
  const rnd = r.checks?.randomization;
  const checks = r.checks && { ...r.checks, randomization: rnd && { ...rnd, map: decodeTensor(rnd.map) } };
  return { ...r, map: decodeTensor(r.map), checks };
}

/**
 * One example as a batch of one: (C, H, W) -> (1, C, H, W), (D,) -> (1, D); batched shapes pass.
 * @param {import('./tensor.js').Tensor} t
 */
function batched(t) {
  return t.shape.length === 3 || t.shape.length === 1 ? { ...t, shape: [1, ...t.shape] } : t;
}
