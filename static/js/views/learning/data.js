// @ts-check
/**
 * Inside the learning step: the gradients answer for the current image and label, fetched once per
 * (model, step, image, label) and decoded. Each view that shows it owns one `createSource`.
 */
import { decodeTensor } from '../../tensor.js';

/**
 * @typedef {{name: string, value: import('../../tensor.js').Tensor, grad: import('../../tensor.js').Tensor,
 *   update: import('../../tensor.js').Tensor | null}} Param
 * @typedef {{index: number, type: string, gradient: import('../../tensor.js').Tensor, norm: number | null,
 *   max_abs: number | null, trainable?: boolean, parameters?: Param[], dead_relu?: {share: number, per_filter: number[]},
 *   dropout_mask?: import('../../tensor.js').Tensor}} GradLayer
 * @typedef {{step: number, label: number, classes: string[], loss: number | null, loss_name: string,
 *   probabilities: Array<number | null>, layers: GradLayer[], update_step: number | null, update_note: string | null,
 *   dead_relu_batch: {split: string, count: number} | null, dropout_note: string | null, healthy_update_ratio: number}} Gradients
 */

/**
 * Decode every tensor of a gradients answer.
 * @param {any} r
 * @returns {Gradients}
 */
export function decodeGradients(r) {
  const t = (/** @type {any} */ x) => (x ? decodeTensor(x) : null);
  return {
    ...r,
    layers: r.layers.map((/** @type {any} */ l) => ({
      ...l,
      gradient: decodeTensor(l.gradient),
      dropout_mask: t(l.dropout_mask) || undefined,
      parameters: l.parameters?.map((/** @type {any} */ p) => ({ ...p, value: decodeTensor(p.value), grad: decodeTensor(p.grad), update: t(p.update) })),
    })),
  };
}

/**
 * The label the loss is taken against: the one chosen, else the image's true class, else the prediction.
 * @param {import('../../state.js').State} state
 * @param {number | null} chosen
 */
export function labelFor(state, chosen) {
  if (chosen !== null) return chosen;
  const truth = state.forward?.label ?? /** @type {any} */ (state.input)?.label;
  if (typeof truth === 'number') return truth;
  return state.forward?.prediction.index ?? 0;
}

/**
 * A cached fetch of the gradients answer; `get` returns what is there and starts a fetch when the
 * key changed, calling `onLoad` when it arrives (errors go to `onError`).
 * @param {any} api
 * @param {() => void} onLoad
 * @param {(e: any) => void} onError
 */
export function createSource(api, onLoad, onError) {
  const src = { key: '', pending: '', /** @type {Gradients | null} */ data: null, label: /** @type {number | null} */ (null) };
  /**
   * @param {import('../../state.js').State} state
   * @returns {Gradients | null}
   */
  function get(state) {
    const { model, input } = state;
    if (!model || !input) return null;
    if (state.training?.busy) return src.data; // a model is being switched (or was deleted): ask nothing now
    const label = labelFor(state, src.label);
    const key = `${model.id}|${state.forward?.step ?? model.step}|${JSON.stringify(input)}|${label}`;
    if (key !== src.key && !src.pending) { // one request at a time: the answer's redraw asks again
      src.pending = key;
      api.gradients(model.id, input, label).then((/** @type {any} */ r) => {
        if (src.pending !== key) return;
        src.data = decodeGradients(r);
        src.key = key;
        src.pending = '';
        onLoad();
      }, (/** @type {any} */ e) => {
        if (src.pending === key) src.pending = '';
        src.key = key; // do not retry the same request in a loop
        onError(e);
      });
    }
    return src.data;
  }
  return {
    get,
    /** @param {number | null} label */
    setLabel(label) { src.label = label; },
    get label() { return src.label; },
  };
}

/**
 * A sentence for a loss near zero (the network is already sure), else ''.
 * @param {Gradients} data
 */
export function sure(data) {
  return data.loss !== null && data.loss < 1e-4
    ? ' The network is already sure of this class, so the gradients are almost zero: pick another class to see what it would change.'
    : '';
}
