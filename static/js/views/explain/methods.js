// @ts-check
/**
 * The attribution methods the page offers (the server's names, our labels) and the one colour rule
 * for a map: diverging rdbu around zero when the method is signed, sequential viridis otherwise,
 * the same tables the API's overlay PNG uses.
 */
import { displayRange } from '../../colormap.js';

/** @type {Array<[string, string]>} value, label */
export const METHODS = [
  ['gradient', 'Gradient'],
  ['saliency', 'Saliency (|gradient|)'],
  ['smoothgrad', 'SmoothGrad'],
  ['gradient_x_input', 'Gradient × input'],
  ['integrated_gradients', 'Integrated gradients'],
  ['guided_backprop', 'Guided backprop'],
  ['deconvnet', 'Deconvnet'],
  ['grad_cam', 'Grad-CAM'],
  ['guided_grad_cam', 'Guided Grad-CAM'],
  ['occlusion', 'Occlusion'],
];

/** @param {string} method */
export const methodLabel = (method) => METHODS.find(([m]) => m === method)?.[1] ?? method;

/** @param {string | null} method */
export const usesLayer = (method) => method === 'grad_cam' || method === 'guided_grad_cam';

/**
 * The colour scale of a map `(H, W)`.
 * @param {Float32Array} data
 * @param {boolean} signed
 * @returns {{lo: number, hi: number, cmap: string}}
 */
export function mapScale(data, signed) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) lo = hi = 0;
  const cmap = signed ? 'rdbu' : 'viridis';
  const [a, b] = displayRange(cmap, lo, hi);
  return { lo: a, hi: b, cmap };
}

/**
 * Layers Grad-CAM can use: those whose output still has feature maps `(C, H, W)`.
 * @param {any} model GET /models/{id}
 * @returns {Array<{index: number, title: string}>}
 */
export function spatialLayers(model) {
  const layers = model?.layers || [];
  return layers.filter((/** @type {any} */ l) => l.output_shape?.length === 3)
    .map((/** @type {any} */ l) => ({ index: l.index, title: `${l.index}: ${l.title || l.type} ${l.output_shape.join('×')}` }));
}
