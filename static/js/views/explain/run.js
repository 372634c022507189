// @ts-check
/**
 * Running explanations: what to explain (`explainRequest`: method, class, layer, occlusion patch and
 * stride), the answer (`explanation`), occlusion's progress (`explainProgress`) and the deletion
 * curves kept for comparison on one image and class (`explainCurves`). Occlusion goes through the
 * streamed route so its progress is the server's own count of forward passes.
 */
import { createNotices } from '../../notices.js';
import { methodLabel } from './methods.js';

/**
 * @typedef {{method: string | null, target: number | null, layer: number | null, patch: number, stride: number}} ExplainRequest
 * @typedef {{method: string, label: string, fractions: number[], scores: number[], auc: number}} Curve
 */

/** @type {ExplainRequest} */
export const NO_REQUEST = { method: null, target: null, layer: null, patch: 8, stride: 4 };

/**
 * The input's identity, so answers for an earlier image are dropped and curves start over.
 * @param {any} state
 */
export function inputKey(state) {
  const i = state.input;
  if (!i || !state.model) return '';
  return `${state.model.id}|${i.kind === 'sample' ? `${i.split}#${i.index}` : i.id}`;
}

/** @param {ExplainRequest} req */
function params(req) {
  const p = { method: req.method, target: req.target };
  if (req.method === 'grad_cam' || req.method === 'guided_grad_cam') return { ...p, layer: req.layer };
  if (req.method === 'occlusion') return { ...p, patch: req.patch, stride: req.stride };
  return p;
}

/**
 * @param {import('../../state.js').Store} store
 * @param {import('../../api.js').Api} api
 */
export function createExplainer(store, api) {
  const { succeeded, fail } = createNotices(store);
  let seq = 0;

  /**
   * One request for the current input; the answer, or null when it is stale or failed.
   * @param {ExplainRequest} req
   * @param {string[]} checks
   */
  async function ask(req, checks) {
    /** @type {any} */
    const state = store.get();
    const { model, input } = state;
    if (!req.method || !model || !input) return null;
    const mine = ++seq;
    const key = inputKey(state);
    const body = { ...params(req), checks };
    store.set({ explainProgress: req.method === 'occlusion' ? { done: 0, total: 0, pass: 1, passes: checks.includes('randomization') ? 2 : 1 } : null });
    try {
      const r = req.method === 'occlusion'
        ? await api.explainStream(model.id, input, body, (p) => mine === seq && store.set({ explainProgress: { ...p, passes: checks.includes('randomization') ? 2 : 1 } }))
        : await api.explain(model.id, input, body);
      if (mine !== seq || key !== inputKey(store.get())) return null;
      /** @type {any} */
      const last = store.get().explainProgress;
      store.set({ explainProgress: last && last.total ? { ...last, finished: true } : null });
      succeeded();
      return { ...r, request: req, key };
    } catch (err) {
      if (mine === seq) {
        store.set({ explainProgress: null });
        fail(err);
      }
      return null;
    }
  }

  /**
   * Explain with `changes` applied to the current request (method null: hide the explanation).
   * @param {Partial<ExplainRequest>} [changes]
   */
  async function explain(changes = {}) {
    /** @type {any} */
    const state = store.get();
    const req = { ...(state.explainRequest || NO_REQUEST), ...changes };
    store.set({ explainRequest: req });
    if (!req.method) {
      seq++;
      store.set({ explanation: null, explainProgress: null });
      return;
    }
    const r = await ask(req, []);
    if (r) store.set({ explanation: r });
  }

  /** The model-randomization check for the explanation shown (the map is sent again with it). */
  async function sanityCheck() {
    /** @type {any} */
    const ex = store.get().explanation;
    if (!ex) return;
    const r = await ask({ ...ex.request, target: ex.target }, ['randomization']);
    if (r) store.set({ explanation: { ...r, request: ex.request } });
  }

  /** The deletion curve of the explanation shown, added to the curves of this image and class. */
  async function deletionCurve() {
    /** @type {any} */
    const ex = store.get().explanation;
    if (!ex) return;
    const r = await ask({ ...ex.request, target: ex.target }, ['deletion']);
    if (!r) return;
    const d = r.checks.deletion;
    const key = `${r.key}|${r.target}`;
    /** @type {any} */
    const old = store.get().explainCurves;
    const label = r.layer === null ? methodLabel(r.method) : `${methodLabel(r.method)} (layer ${r.layer})`;
    /** @type {Curve} */
    const curve = { method: r.method, label, fractions: d.fractions, scores: d.scores, auc: d.auc };
    const kept = old && old.key === key ? old.curves.filter((/** @type {Curve} */ c) => c.label !== label) : [];
    store.set({ explainCurves: { key, className: r.class, curves: [...kept, curve] } });
  }

  return { explain, sanityCheck, deletionCurve };
}
