// @ts-check
/**
 * The only mutable store. `set(patch)` replaces top-level keys (values are treated as immutable);
 * subscribers are told which keys changed, batched into one call per animation frame, so a burst of
 * live messages costs one render.
 */

/**
 * @typedef {import('./scale.js').Stats} Stats
 * @typedef {import('./scale.js').ColourSettings} ColourSettings
 * @typedef {{kind: 'sample', split: string, index: number, label?: number} | {kind: 'image', id: string, name: string}} InputRef
 * @typedef {{index: number, type: string, output: import('./tensor.js').Tensor, min: number, max: number, mean: number}} ForwardLayer
 * @typedef {{step: number, input: import('./tensor.js').Tensor, layers: ForwardLayer[], probabilities: number[],
 *   classes: string[], prediction: {index: number, class: string, probability: number}, label: number | null}} Forward
 * @typedef {{layer: number, channel: number, row: number, col: number, value: number, rect: import('./units.js').Rect | null}} Hover
 * @typedef {{step: number, loss: number, accuracy: number, learning_rate?: number, epoch?: number, time?: number}} StepPoint
 * @typedef {{steps: StepPoint[], evaluations: Array<Record<string, any>>, events: Array<{step: number, changes: Record<string, any>}>}} History
 * @typedef {{kind: 'error'|'info', text: string, id: number}} Message
 * @typedef {{shape: number[], data: Float32Array, bias: Float32Array | null, error?: string}} Filters  weights of one layer
 * @typedef {{
 *   boot: Record<string, any>,
 *   models: Array<Record<string, any>>,
 *   datasets: Array<Record<string, any>>,
 *   model: Record<string, any> | null,
 *   dataset: Record<string, any> | null,
 *   input: InputRef | null,
 *   forward: Forward | null,
 *   stats: Stats | null,
 *   colour: ColourSettings,
 *   locked: Stats | null,
 *   selection: {layer: number, channel: number} | null,
 *   hover: Hover | null,
 *   filters: Map<number, Filters>,
 *   filtersStep: number,
 *   training: {playing: boolean, live: boolean, stepsPerSecond: number, busy: boolean},
 *   history: History,
 *   batch: {step: number, images: import('./tensor.js').Tensor, labels: number[], classes: string[]} | null,
 *   evaluation: Record<string, any> | null,
 *   explanation: {method: string, map: import('./tensor.js').Tensor, target: number} | null,
 *   message: Message | null,
 *   draft: import('./editor.js').Draft | null,
 *   validation: import('./editor.js').Validation,
 *   loading: boolean,
 *   tab: string,
 *   ask: {text: string, yes: string, no: string} | null,
 * }} State
 */

/**
 * The state the page starts from.
 * @param {Record<string, any>} boot the bootstrap JSON from the template
 * @returns {State}
 */
export function initialState(boot) {
  return {
    boot,
    models: [],
    datasets: boot.datasets || [],
    model: null,
    dataset: null,
    input: null,
    forward: null,
    stats: null,
    colour: { mode: 'layer', cmap: 'auto', diverging: 'rdbu', locked: false },
    locked: null,
    selection: null,
    hover: null,
    filters: new Map(),
    filtersStep: -1,
    training: { playing: false, live: false, stepsPerSecond: 0, busy: false },
    history: { steps: [], evaluations: [], events: [] },
    batch: null,
    evaluation: null,
    explanation: null,
    message: null,
    draft: null,
    validation: { pending: false, result: null, error: null, layer: null },
    loading: true,
    tab: 'detail',
    ask: null,
  };
}

/**
 * @param {() => void} fn
 */
function schedule(fn) {
  if (typeof document !== 'undefined' && document.hidden) setTimeout(fn, 0);
  else requestAnimationFrame(fn);
}

/**
 * Create the store.
 * @param {State} initial
 */
export function createStore(initial) {
  let state = initial;
  /** @type {Set<(state: State, changed: Set<string>) => void>} */
  const listeners = new Set();
  /** @type {Set<string>} */
  let pending = new Set();
  let scheduled = false;

  function flush() {
    scheduled = false;
    const changed = pending;
    pending = new Set();
    for (const fn of listeners) fn(state, changed);
  }

  return {
    /** @returns {State} */
    get: () => state,
    /**
     * Replace some top-level keys; unchanged values (by identity) are ignored.
     * @param {Partial<State>} patch
     */
    set(patch) {
      /** @type {any} */
      const next = { ...state };
      for (const [key, value] of Object.entries(patch)) {
        if (next[key] !== value) {
          next[key] = value;
          pending.add(key);
        }
      }
      state = next;
      if (pending.size && !scheduled) {
        scheduled = true;
        schedule(flush);
      }
    },
    /**
     * Subscribe to batched changes.
     * @param {(state: State, changed: Set<string>) => void} fn
     */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}

/** @typedef {ReturnType<typeof createStore>} Store */
