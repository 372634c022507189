// @ts-check
/**
 * What the page can do: load models, run inputs through them, select and hover units, change the
 * colour scale, evaluate (explanations run in views/explain/run.js). Views call these; they talk to
 * the server through the API and write results to the store. A failed request shows the server's message and keeps the state.
 */
import { ApiError } from './api.js';
import { createCopies } from './copies.js';
import { createNotices } from './notices.js';
import { sameInput, sendEarly } from './prefetch.js';
import { forwardStats } from './scale.js';

/**
 * The first sample of a dataset: test #0, or train #0 when its test split is empty.
 * @param {Record<string, any> | null} dataset `GET /datasets/{name}` (null when unknown)
 * @returns {import('./state.js').InputRef}
 */
export function firstSample(dataset) {
  return { kind: 'sample', split: dataset?.sizes?.test === 0 ? 'train' : 'test', index: 0 };
}

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 */
export function createActions(store, api) {
  let forwardSeq = 0;

  const { notify, succeeded, fail } = createNotices(store);
  const copies = createCopies(store, api, { loadModel, refreshModels, notify, fail });

  /**
   * Refresh the list of models (for the model picker).
   */
  async function refreshModels() {
    try {
      const r = await api.listModels();
      store.set({ models: Array.isArray(r) ? r : r.models || [] });
    } catch (err) {
      fail(err);
    }
  }

  /**
   * Make `id` the current model and run an input through it (the current input when the dataset
   * is the same, else the dataset's first sample).
   * @param {string} id
   * @param {{input?: import('./state.js').InputRef, keepHistory?: boolean}} [opts]
   */
  async function loadModel(id, opts = {}) {
    const prev = store.get();
    const early = sendEarly(api, id, opts.input, prev);
    const model = await api.getModel(id);
    const sameData = prev.dataset?.name === model.dataset;
    // The dataset first: its sizes say which split has a first sample (a split may be empty).
    const dataset = sameData ? prev.dataset
      : await (early.dataset?.name === model.dataset ? early.dataset.answer : api.getDataset(model.dataset).catch(() => null));
    const refs = /** @type {import('./state.js').InputRef[]} */ ([opts.input, sameData ? prev.input : null, firstSample(dataset),
      !dataset && { kind: 'sample', split: 'train', index: 0 }].filter(Boolean));
    let forward = null;
    let ref = refs[0];
    for (const [k, r] of refs.entries()) {
      try {
        const sent = early.forward && sameInput(early.forward.ref, r) ? early.forward.answer : null;
        [forward, ref] = [await (sent ?? api.forward(id, r)), r];
        break;
      } catch (err) {
        if (k === refs.length - 1) throw err;
      }
    }
    if (!forward) throw new Error('no input to run');
    if (ref.kind === 'sample' && forward.label !== null) ref = { ...ref, label: forward.label };
    const firstConv = model.layers.findIndex((/** @type {any} */ l) => l.output_shape.length === 3);
    const keepSel = prev.model?.id === id && prev.selection;
    store.set({
      model,
      dataset,
      input: ref,
      forward,
      stats: forwardStats(forward, model),
      selection: keepSel || (firstConv >= 0 ? { layer: firstConv, channel: 0 } : null),
      hover: null,
      filters: new Map(),
      filtersStep: -1,
      evaluation: prev.model?.id === id ? prev.evaluation : null,
      explanation: null,
      locked: prev.model?.id === id ? prev.locked : null,
      colour: prev.model?.id === id ? prev.colour : { ...prev.colour, locked: false },
      history: opts.keepHistory ? prev.history : { steps: [], evaluations: [], events: [] },
      batch: prev.model?.id === id ? prev.batch : null,
      loading: false,
    });
    succeeded();
    loadHistory(id);
  }

  /** @param {string} id */
  async function loadHistory(id) {
    try {
      const h = await api.history(id);
      if (store.get().model?.id !== id) return;
      store.set({ history: { steps: h.steps || [], evaluations: h.evaluations || [], events: h.events || [] } });
    } catch (err) {
      fail(err);
    }
  }

  return {
    notify,
    fail,
    succeeded,
    refreshModels,
    loadHistory,
    /** Training a read-only model: make the person's copy current (copies.js). */
    copyToTrain: copies.copyToTrain,
    answerCopy: copies.answer,

    /**
     * First load: the model (and input) a link names (route.js says when it is gone), else the ready
     * model (or any model, or a fresh TinyVGG), with a sample run through it.
     * @param {{model?: string, input?: import('./state.js').InputRef}} [want]
     */
    async start(want = {}) {
      const boot = store.get().boot;
      try {
        if (want.model && (await loadModel(want.model, { input: want.input }).then(() => true, () => false))) return void refreshModels();
        let id = boot.default_model_id;
        if (!id) {
          const r = await api.listModels();
          const models = Array.isArray(r) ? r : r.models || [];
          id = models[0]?.id;
          if (!id) id = (await api.createModel({ preset: 'tiny-vgg', dataset: 'shapes', name: 'TinyVGG on shapes' })).id;
        }
        await loadModel(id);
      } catch (err) {
        store.set({ loading: false });
        fail(err);
      }
      refreshModels();
    },

    /**
     * The current model was deleted (here or elsewhere): the list again, then the shipped default
     * model, or the first one left, or none.
     * @returns {Promise<boolean>} false when that failed (the error is shown)
     */
    async showAnotherModel() {
      try {
        const r = await api.listModels();
        const models = Array.isArray(r) ? r : r.models || [];
        store.set({ models });
        const boot = store.get().boot;
        const next = models.find((/** @type {any} */ m) => m.id === boot.default_model_id) || models[0];
        if (next) await loadModel(next.id);
        else store.set({ model: null, forward: null, stats: null, selection: null });
        return true;
      } catch (err) {
        fail(err);
        return false;
      }
    },

    /**
     * Switch to another model.
     * @param {string} id
     */
    async switchModel(id) {
      try {
        await loadModel(id);
      } catch (err) {
        fail(err);
        store.set({ models: store.get().models.slice() }); // the picker shows the model still loaded
      }
    },

    /**
     * Create a model (`{"preset"|"spec"|"from", "dataset"?, "name"?}`) and switch to it.
     * @param {Record<string, any>} body
     * @param {string} [okText]
     * @returns {Promise<boolean>}
     */
    async createModel(body, okText) {
      try {
        const m = await api.createModel(body);
        await loadModel(m.id, { input: store.get().dataset?.name === m.dataset ? store.get().input ?? undefined : undefined });
        refreshModels();
        notify('info', okText || `Created “${m.name}”.`);
        return true;
      } catch (err) {
        fail(err);
        return false;
      }
    },

    /**
     * Run an input through the current model. On error the previous maps stay.
     * @param {import('./state.js').InputRef} ref
     * @param {boolean} [clearsError] false for a refresh nobody asked for (an error stays up)
     * @returns {Promise<boolean>}
     */
    async runInput(ref, clearsError = true) {
      const model = store.get().model;
      if (!model) return false;
      const seq = ++forwardSeq;
      try {
        const forward = await api.forward(model.id, ref);
        if (seq !== forwardSeq) return false;
        const input = ref.kind === 'sample' && forward.label !== null ? { ...ref, label: forward.label } : ref;
        store.set({ input, forward, stats: forwardStats(forward, model), explanation: null });
        if (clearsError) succeeded();
        return true;
      } catch (err) {
        if (seq === forwardSeq) fail(err);
        return false;
      }
    },

    /**
     * Upload an image file (or a drawing) and run it through the network.
     * @param {Blob} file
     * @param {string} name shown in the page
     */
    async upload(file, name) {
      const model = store.get().model;
      if (!model) return false;
      try {
        const img = await api.uploadImage(file);
        return await this.runInput({ kind: 'image', id: img.id, name });
      } catch (err) {
        fail(err);
        return false;
      }
    },

    /** Re-run the current input (after the weights changed). */
    async refresh() {
      const { input } = store.get();
      if (input) await this.runInput(input, false);
    },

    /**
     * Show a forward result that arrived by other means (live training).
     * @param {import('./state.js').Forward} forward
     */
    showForward(forward) {
      store.set({ forward, stats: forwardStats(forward, store.get().model) });
    },

    /**
     * @param {number} layer
     * @param {number} channel
     * @param {boolean} [reveal] also bring the detail panel forward
     */
    select(layer, channel, reveal = false) {
      store.set({ selection: { layer, channel }, ...(reveal ? { tab: 'detail' } : {}) });
    },

    /** @param {any} hover */
    hover(hover) {
      store.set({ hover });
    },

    /** @param {string} tab */
    setTab(tab) {
      store.set({ tab });
    },

    /** @param {Partial<import('./scale.js').ColourSettings>} patch */
    setColour(patch) {
      const { colour, stats } = store.get();
      const next = { ...colour, ...patch };
      store.set({ colour: next, ...(patch.locked !== undefined ? { locked: patch.locked ? stats : null } : {}) });
    },

    /**
     * Fetch the filters (weights) of some layers for the current model's step, caching them.
     * @param {number[]} layers
     */
    async loadFilters(layers) {
      const { model, filters, filtersStep } = store.get();
      if (!model) return;
      const fresh = filtersStep === model.step ? filters : new Map();
      const missing = layers.filter((i) => !fresh.has(i));
      if (!missing.length && fresh === filters) return;
      const got = await Promise.all(missing.map((i) => api.filters(model.id, i).catch((err) => ({
        shape: [], data: new Float32Array(0), bias: null, error: err instanceof ApiError ? err.detail : String(err),
      }))));
      const now = store.get();
      if (now.model?.id !== model.id || now.model?.step !== model.step) return;
      const next = new Map(now.filtersStep === model.step ? now.filters : []);
      missing.forEach((i, k) => next.set(i, got[k]));
      store.set({ filters: next, filtersStep: model.step });
    },

    /** Evaluate the current model on its test split. */
    async evaluate() {
      const model = store.get().model;
      if (!model) return;
      try {
        const ev = await api.evaluate(model.id, 'test');
        store.set({ evaluation: { ...ev, step: model.step } });
        succeeded();
      } catch (err) {
        fail(err);
      }
    },

    /** @param {string} id @param {import('./state.js').InputRef} [input] */
    loadModel: (id, input) => loadModel(id, { input }),
    /** @param {string} id */
    reloadModel: (id) => loadModel(id, { keepHistory: true }),
  };
}

/** @typedef {ReturnType<typeof createActions>} Actions */
