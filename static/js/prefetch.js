// @ts-check
/**
 * The requests a model load can send before the model's own answer arrives, so that on the page's
 * first load the model, its dataset and the first forward pass travel together instead of one after
 * another (actions.js `loadModel` uses each answer only where it would have sent the same request).
 */

/**
 * Do two references name the same input (ignoring a label or name)?
 * @param {import('./state.js').InputRef} a
 * @param {import('./state.js').InputRef} b
 */
export function sameInput(a, b) {
  if (a.kind === 'sample' && b.kind === 'sample') return a.split === b.split && a.index === b.index;
  return a.kind === 'image' && b.kind === 'image' && a.id === b.id && /** @type {any} */ (a).fit === /** @type {any} */ (b).fit;
}

/**
 * For the default model (the bootstrap names it and its dataset): ask for the dataset, and for the
 * forward pass of `input`, else of the dataset's first sample when the bootstrap's listing shows a
 * test split (so that request cannot fail on an empty one). Nothing for another model, or when the
 * page already shows that dataset (the load then keeps the current input).
 * @param {import('./api.js').Api} api
 * @param {string} id the model to load
 * @param {import('./state.js').InputRef | undefined} input the input asked for, if any
 * @param {import('./state.js').State} prev the state before the load
 * @returns {{dataset: {name: string, answer: Promise<any>} | null,
 *   forward: {ref: import('./state.js').InputRef, answer: Promise<import('./state.js').Forward>} | null}}
 */
export function sendEarly(api, id, input, prev) {
  const boot = prev.boot || {};
  if (id !== boot.default_model_id || !boot.default_model_dataset || prev.dataset?.name === boot.default_model_dataset) {
    return { dataset: null, forward: null };
  }
  const name = boot.default_model_dataset;
  const dataset = { name, answer: api.getDataset(name).catch(() => null) };
  const listed = prev.datasets.find((/** @type {any} */ d) => d.name === name);
  /** @type {import('./state.js').InputRef | null} */
  const ref = input ?? (listed?.sizes?.test > 0 ? { kind: 'sample', split: 'test', index: 0 } : null);
  const forward = ref ? { ref, answer: api.forward(id, ref) } : null;
  forward?.answer.catch(() => undefined); // a failure counts where the answer is used, if it is
  return { dataset, forward };
}
