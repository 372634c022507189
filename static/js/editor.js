// @ts-check
/**
 * The architecture editor's draft: an editable copy of the model's layer list, validated by the
 * server (`/specs/validate`, debounced) as it changes, and turned into a new model on request.
 */
import { ApiError } from './api.js';
import { debounce } from './dom.js';

/**
 * @typedef {{key: number, type: string, values: Record<string, any>}} DraftLayer  `key`: unique for the page's life
 * @typedef {{modelId: string, input_shape: number[], layers: DraftLayer[]}} Draft
 * @typedef {{pending: boolean, result: any, error: string | null, layer: number | null}} Validation
 */

/** Starting values for required fields that have no default. */
const STARTERS = /** @type {Record<string, number>} */ ({ filters: 8, kernel_size: 3, pool_size: 2, units: 32 });

/** Layer keys: never reused, so a reloaded or reverted draft never matches an old row. */
let lastKey = 0;
const newKey = () => ++lastKey;

/**
 * What a validation answer means: `{valid: true, layers, ...}` or `{valid: false, detail,
 * layer_index}` (200), or a spec error raised as 422 with `layer_index` (older servers).
 * @param {any} result the 200 body, or null
 * @param {unknown} [err] the request's error, if it failed
 * @returns {Validation}
 */
export function validationOf(result, err) {
  const index = (/** @type {any} */ v) => (typeof v === 'number' ? v : null);
  if (err !== undefined) {
    const detail = err instanceof ApiError ? err.detail : err instanceof Error ? err.message : String(err);
    return { pending: false, result: null, error: detail, layer: err instanceof ApiError ? index(err.body?.layer_index) : null };
  }
  if (result && result.valid === false) {
    return { pending: false, result: null, error: String(result.detail || 'this network cannot be built'), layer: index(result.layer_index) };
  }
  return { pending: false, result, error: null, layer: null };
}

/**
 * The spec JSON of a draft.
 * @param {Draft} draft
 */
export function draftSpec(draft) {
  return { version: 1, input_shape: draft.input_shape, layers: draft.layers.map((l) => ({ type: l.type, ...l.values })) };
}

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 * @param {import('./actions.js').Actions} actions
 */
export function createEditor(store, api, actions) {
  let seq = 0;
  const types = () => /** @type {any[]} */ (store.get().boot.layer_types || []);

  const validate = debounce(async () => {
    const draft = /** @type {Draft | null} */ (store.get().draft);
    if (!draft) return;
    const id = ++seq;
    /** @type {Validation} */
    let validation;
    try {
      validation = validationOf(await api.validateSpec(draftSpec(draft)));
    } catch (err) {
      validation = validationOf(null, err);
    }
    // An error keeps the last good shapes (rows before the bad layer still show theirs).
    if (id === seq) store.set({ validation: validation.error ? { ...validation, result: store.get().validation.result } : validation });
  }, 250);

  /** @param {Draft} draft */
  function commit(draft) {
    store.set({ draft, validation: { ...store.get().validation, pending: true } });
    validate();
  }

  /**
   * Values of a new layer of `type`: its required fields (those without a default), from the
   * registry's declarations: a starter, else true for a switch, else the least value allowed (or 1).
   * @param {string} type
   */
  function defaults(type) {
    const t = types().find((x) => x.type === type);
    /** @type {Record<string, any>} */
    const values = {};
    for (const f of t?.fields || []) {
      if (f.required) values[f.name] = STARTERS[f.name] ?? (f.kind === 'bool' ? true : f.min ?? 1);
    }
    return values;
  }

  return {
    /**
     * Start editing the current model's spec (or keep the draft if it already belongs to it).
     * @param {boolean} [force]
     */
    load(force = false) {
      const { model, draft } = store.get();
      if (!model || (!force && draft?.modelId === model.id)) return;
      const layers = model.spec.layers.map((/** @type {any} */ l) => {
        const { type, ...values } = l;
        return { key: newKey(), type, values };
      });
      commit({ modelId: model.id, input_shape: [...model.spec.input_shape], layers });
    },
    /** @param {number} index @param {string} name @param {any} value (undefined removes the field) */
    setField(index, name, value) {
      const d = /** @type {Draft} */ (store.get().draft);
      const layers = d.layers.map((l, i) => {
        if (i !== index) return l;
        const values = { ...l.values };
        if (value === undefined) delete values[name];
        else values[name] = value;
        return { ...l, values };
      });
      commit({ ...d, layers });
    },
    /** @param {number} index @param {string} type */
    setType(index, type) {
      const d = /** @type {Draft} */ (store.get().draft);
      commit({ ...d, layers: d.layers.map((l, i) => (i === index ? { ...l, type, values: defaults(type) } : l)) });
    },
    /** @param {number} index insert position @param {string} type */
    add(index, type) {
      const d = /** @type {Draft} */ (store.get().draft);
      const layers = d.layers.slice();
      layers.splice(index, 0, { key: newKey(), type, values: defaults(type) });
      commit({ ...d, layers });
    },
    /** @param {number} index */
    remove(index) {
      const d = /** @type {Draft} */ (store.get().draft);
      commit({ ...d, layers: d.layers.filter((_, i) => i !== index) });
    },
    /** @param {number} index @param {number} delta -1 up, +1 down */
    move(index, delta) {
      const d = /** @type {Draft} */ (store.get().draft);
      const j = index + delta;
      if (j < 0 || j >= d.layers.length) return;
      const layers = d.layers.slice();
      [layers[index], layers[j]] = [layers[j], layers[index]];
      commit({ ...d, layers });
    },
    /** @param {number} axis 0..2 @param {number} value */
    setInput(axis, value) {
      const d = /** @type {Draft} */ (store.get().draft);
      const input_shape = d.input_shape.slice();
      input_shape[axis] = value;
      commit({ ...d, input_shape });
    },
    /** Build a new model from the draft on `dataset`. @param {string} dataset */
    async create(dataset) {
      const d = /** @type {Draft} */ (store.get().draft);
      const ok = await actions.createModel({ spec: draftSpec(d), dataset, name: `My network on ${dataset}` });
      if (ok) this.load(true);
    },
  };
}

/** @typedef {ReturnType<typeof createEditor>} Editor */
