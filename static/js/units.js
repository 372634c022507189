// @ts-check
/**
 * Units of a layer: their values, receptive fields on the input, and how a flattened vector maps
 * back to the (C, H, W) map it came from. Pure functions over the model and forward result.
 */

/**
 * @typedef {{index: number, type: string, title: string, kind: string, name: string, input_shape: number[],
 *   output_shape: number[], parameters: number, receptive_field: {size: number, jump: number, start: number},
 *   trainable: boolean}} LayerInfo  `kind`: the registry's word on how the page treats its units
 * @typedef {{top: number, left: number, height: number, width: number}} Rect  in input pixels
 */

/** Kinds of layer that keep each unit where it was (a value changes, its position does not). */
const IN_PLACE = new Set(['elementwise', 'normalize']);
/** Kinds a map passes through between the weighted layer that made it and a later layer. */
const MAP_PATH = new Set([...IN_PLACE, 'window']);
/** Kinds a vector passes through between the weighted layer that made it and a later layer. */
const VECTOR_PATH = new Set([...IN_PLACE, 'output']);

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
 * When the vector output of layer `index` is a flattened (C, H, W) map (a reshape that keeps every
 * value, then any element-wise or normalizing layers), the index of the layer whose output was
 * flattened (-1: the input); else null.
 * @param {Record<string, any>} model
 * @param {number} index
 * @returns {number | null}
 */
export function flattenSource(model, index) {
  let i = index;
  while (i >= 0 && IN_PLACE.has(model.layers[i].kind)) i -= 1;
  if (i < 0 || model.layers[i].kind !== 'reshape') return null;
  const from = shapeOf(model, i - 1);
  const size = (/** @type {number[]} */ s) => s.reduce((a, b) => a * b, 1);
  return from.length === 3 && size(shapeOf(model, i)) === size(from) ? i - 1 : null;
}

/**
 * Walk back from layer `index` through layers of the kinds in `path` to the nearest weighted layer
 * whose output has `rank` axes: that layer (`source`, null if none) and the layers passed (`through`,
 * from `index` down, `source` excluded).
 * @param {Record<string, any>} model
 * @param {number} index
 * @param {number} rank
 * @param {Set<string>} path
 */
function walkBack(model, index, rank, path) {
  /** @type {number[]} */
  const through = [];
  for (let i = index; i >= 0; i--) {
    const l = model.layers[i];
    if (l.kind === 'weighted' && l.output_shape.length === rank) return { source: i, through };
    if (!path.has(l.kind)) return { source: null, through };
    through.push(i);
  }
  return { source: null, through };
}

/**
 * The layers whose learned numbers act on a unit of layer `index` after the layer that made it:
 * those passed on the way back from `index` (itself included) that hold parameters of their own,
 * e.g. a normalizing layer's per-channel scale and shift. Their weights' shapes tell how to read them.
 * @param {Record<string, any>} model
 * @param {number} index
 * @returns {number[]} in network order
 */
export function adjustingLayers(model, index) {
  const maps = model.layers[index].output_shape.length === 3;
  const { through } = maps ? walkBack(model, index, 3, MAP_PATH) : walkBack(model, index, 1, VECTOR_PATH);
  return through.filter((i) => model.layers[i].parameters > 0).reverse();
}

const PIXEL = { size: 1, jump: 1, start: 0 };

/**
 * Where a unit's receptive field comes from, the one source of every receptive-field label, tooltip
 * and outline: a map unit, its own layer's field; a vector unit of a flattened map (`row < 0`), the
 * field of its position in that map; any other vector unit (dense layers), the whole input (`rf` null).
 * @param {Record<string, any>} model
 * @param {number} layer -1: the input
 * @param {number} channel channel, or the unit index of a vector
 * @param {number} row -1 for a vector unit
 * @param {number} col
 * @returns {{rf: {size: number, jump: number, start: number} | null, row: number, col: number}}
 */
function fieldSource(model, layer, channel, row, col) {
  if (layer < 0) return { rf: PIXEL, row, col };
  if (row >= 0) return { rf: model.layers[layer].receptive_field, row, col };
  const src = flattenSource(model, layer);
  if (src === null) return { rf: null, row: 0, col: 0 };
  const [, h, w] = shapeOf(model, src);
  const pos = channel % (h * w);
  return { rf: src < 0 ? PIXEL : model.layers[src].receptive_field, row: Math.floor(pos / w), col: pos % w };
}

/**
 * The size of the receptive field of layer `layer`'s units, before clipping to the image: what its
 * column's "RF" label and every unit's tooltip say (a dense unit's is the whole input).
 * @param {Record<string, any>} model
 * @param {number} layer
 * @returns {{height: number, width: number}}
 */
export function receptiveSize(model, layer) {
  const [, H, W] = inputShape(model);
  const { rf } = fieldSource(model, layer, 0, layer >= 0 && shapeOf(model, layer).length === 3 ? 0 : -1, 0);
  return rf ? { height: rf.size, width: rf.size } : { height: H, width: W };
}

/**
 * A layer's receptive-field label and its longer title (from `receptiveSize`).
 * @param {Record<string, any>} model
 * @param {number} layer
 */
export function receptiveLabel(model, layer) {
  const { height, width } = receptiveSize(model, layer);
  const [, H, W] = inputShape(model);
  const whole = height === H && width === W && flattenSource(model, layer) === null && shapeOf(model, layer).length !== 3;
  return {
    text: `RF ${height === width ? height : `${height}×${width}`}`,
    title: `receptive field: ${height}×${width} input pixels${whole ? ' (each unit sees the whole input)' : ''}`,
  };
}

/**
 * A unit's tooltip line: its layer's field size (as the column's label says), and the part inside
 * the image when the unit sits at a border.
 * @param {Record<string, any>} model
 * @param {number} layer
 * @param {Rect} rect the unit's `receptiveRect`
 */
export function receptiveLine(model, layer, rect) {
  const { height, width } = receptiveSize(model, layer);
  const clip = rect.height !== height || rect.width !== width ? `, ${+rect.height.toFixed(1)}×${+rect.width.toFixed(1)} inside the image` : '';
  return `receptive field ${height}×${width} px${clip}`;
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
  const f = fieldSource(model, layer, channel, row, col);
  if (!f.rf) return { top: 0, left: 0, height: H, width: W };
  const { rf } = f;
  const cy = rf.start + f.row * rf.jump;
  const cx = rf.start + f.col * rf.jump;
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
 * The layers with filters: weighted layers whose output is maps (C, H, W), in order. The first of
 * them reads the image, so its filters on an RGB input can be drawn in colour.
 * @param {Record<string, any>} model
 * @returns {number[]}
 */
export function filterLayers(model) {
  return model.layers.filter((/** @type {LayerInfo} */ l) => l.kind === 'weighted' && l.output_shape.length === 3).map((/** @type {LayerInfo} */ l) => l.index);
}

/**
 * The layer whose filters produced the maps of layer `index`: itself if it is a weighted layer with
 * maps, or the nearest one before it through element-wise, normalizing and window layers; else null.
 * @param {Record<string, any>} model
 * @param {number} index
 */
export function producingConv(model, index) {
  return walkBack(model, index, 3, MAP_PATH).source;
}

/**
 * The weighted layer behind a vector layer: itself, or the nearest weighted layer with a vector
 * output before it through element-wise, normalizing and output layers; else null.
 * @param {Record<string, any>} model
 * @param {number} index
 */
export function producingDense(model, index) {
  return walkBack(model, index, 1, VECTOR_PATH).source;
}

/**
 * The score that went into unit `k` of an output layer (a softmax): the previous layer's output.
 * Null when layer `layer` is not of kind "output" or the forward result lacks its input.
 * @param {Record<string, any>} model
 * @param {import('./state.js').Forward} forward
 * @param {number} layer
 * @param {number} k
 * @returns {number | null}
 */
export function scoreBefore(model, forward, layer, k) {
  if (model.layers[layer]?.kind !== 'output' || layer < 1) return null;
  const out = forward.layers.find((l) => l.index === layer - 1)?.output;
  return out && k < out.data.length ? out.data[k] : null;
}
