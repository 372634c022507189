// @ts-check
/**
 * Units of a layer: their values, receptive fields on the input, and how a flattened vector maps
 * back to the (C, H, W) map it came from. Pure functions over the model and forward result.
 */

/**
 * @typedef {{index: number, type: string, name: string, output_shape: number[], parameters: number,
 *   receptive_field: {size: number, jump: number, start: number}, trainable: boolean}} LayerInfo
 * @typedef {{top: number, left: number, height: number, width: number}} Rect  in input pixels
 */

/** Layers that pass a vector through unchanged in shape. */
const ELEMENTWISE = new Set(['relu', 'leaky_relu', 'sigmoid', 'tanh', 'dropout']);

/**
 * The input shape (C, H, W) of a model.
 * @param {Record<string, any>} model
 * @returns {number[]}
 */
export function inputShape(model) {
  return model.spec.input_shape;
}

/**
 * The output shape of layer `index` (-1: the input).
 * @param {Record<string, any>} model
 * @param {number} index
 * @returns {number[]}
 */
export function shapeOf(model, index) {
  return index < 0 ? inputShape(model) : model.layers[index].output_shape;
}

/**
 * When the vector output of layer `index` is a flattened (C, H, W) map (through a flatten and any
 * element-wise layers), the index of the layer whose output was flattened; else null.
 * @param {Record<string, any>} model
 * @param {number} index
 * @returns {number | null}
 */
export function flattenSource(model, index) {
  let i = index;
  while (i >= 0 && ELEMENTWISE.has(model.layers[i].type)) i -= 1;
  if (i < 0 || model.layers[i].type !== 'flatten') return null;
  return shapeOf(model, i - 1).length === 3 ? i - 1 : null;
}

/**
 * The receptive field of one unit as a rectangle on the input, clipped to the image.
 * For a vector unit (`row < 0`) of a flattened map, the unit's position in that map; for other
 * vector units (dense layers), the whole input.
 * @param {Record<string, any>} model
 * @param {number} layer
 * @param {number} channel channel, or the unit index of a vector
 * @param {number} row -1 for a vector unit
 * @param {number} col
 * @returns {Rect | null}
 */
export function receptiveRect(model, layer, channel, row, col) {
  const [, H, W] = inputShape(model);
  if (layer < 0) return { top: row, left: col, height: 1, width: 1 };
  let rf = model.layers[layer].receptive_field;
  if (row < 0) {
    const src = flattenSource(model, layer);
    if (src === null) return { top: 0, left: 0, height: H, width: W };
    const [, h, w] = shapeOf(model, src);
    const pos = channel % (h * w);
    row = Math.floor(pos / w);
    col = pos % w;
    if (src < 0) return { top: row, left: col, height: 1, width: 1 };
    rf = model.layers[src].receptive_field;
  }
  const cy = rf.start + row * rf.jump;
  const cx = rf.start + col * rf.jump;
  const half = (rf.size - 1) / 2;
  const top = Math.max(0, cy - half);
  const left = Math.max(0, cx - half);
  const bottom = Math.min(H, cy + half + 1);
  const right = Math.min(W, cx + half + 1);
  if (bottom <= top || right <= left) return null;
  return { top, left, height: bottom - top, width: right - left };
}

/**
 * The value of one unit in a decoded output tensor ([1, C, H, W] or [1, D]).
 * @param {import('./tensor.js').Tensor} t
 * @param {number} channel
 * @param {number} row -1 for vectors
 * @param {number} col
 */
export function unitValue(t, channel, row, col) {
  if (t.shape.length === 2 || row < 0) return t.data[channel];
  const [, , h, w] = t.shape;
  return t.data[channel * h * w + row * w + col];
}

/**
 * The conv layer whose filters produced the maps of layer `index` (itself, or the nearest conv
 * before it through element-wise and pooling layers), or null.
 * @param {Record<string, any>} model
 * @param {number} index
 */
export function producingConv(model, index) {
  for (let i = index; i >= 0; i--) {
    const t = model.layers[i].type;
    if (t === 'conv2d') return i;
    if (!ELEMENTWISE.has(t) && !['maxpool2d', 'avgpool2d'].includes(t)) return null;
  }
  return null;
}

/**
 * The dense layer behind a vector layer (itself or the nearest dense before element-wise layers).
 * @param {Record<string, any>} model
 * @param {number} index
 */
export function producingDense(model, index) {
  for (let i = index; i >= 0; i--) {
    const t = model.layers[i].type;
    if (t === 'dense') return i;
    if (!ELEMENTWISE.has(t) && t !== 'softmax') return null;
  }
  return null;
}

/**
 * The score that went into softmax unit `k`: the previous layer's output. Null when layer
 * `layer` is not a softmax or the forward result lacks its input.
 * @param {Record<string, any>} model
 * @param {import('./state.js').Forward} forward
 * @param {number} layer
 * @param {number} k
 * @returns {number | null}
 */
export function preSoftmax(model, forward, layer, k) {
  if (model.layers[layer]?.type !== 'softmax' || layer < 1) return null;
  const out = forward.layers.find((l) => l.index === layer - 1)?.output;
  return out && k < out.data.length ? out.data[k] : null;
}
