// @ts-check
/**
 * The explanation panel under the input: method, class (the predicted one unless chosen; clicking a
 * class row in the probabilities explains that class), Grad-CAM's layer, occlusion's patch and
 * stride with its progress, the overlay's opacity, a legend, one sentence on how to read the map,
 * and the two checks: the sanity check and the deletion curve.
 */
import { h, replaceChildren, setText } from '../../dom.js';
import { prettyClass } from '../../format.js';
import { createLegend, updateLegend } from '../../legend.js';
import { createCurves, renderCurves } from './deletion.js';
import { METHODS, mapScale, methodLabel, spatialLayers, usesLayer } from './methods.js';
import { NO_REQUEST, createExplainer, inputKey } from './run.js';
import { createSanity, renderSanity } from './sanity.js';

/**
 * @param {any} ctx the page context (store, api)
 * @param {{onOpacity: (value: number) => void}} hooks
 */
export function createExplainPanel(ctx, hooks) {
  const runner = createExplainer(ctx.store, ctx.api);
  const method = h('select', { 'aria-label': 'Explain the prediction', dataset: { explain: 'method' } },
    h('option', { value: '' }, 'No explanation'), METHODS.map(([v, label]) => h('option', { value: v }, label)));
  const cls = h('select', { 'aria-label': 'Class to explain', dataset: { explain: 'class' } });
  const layer = h('select', { 'aria-label': 'Grad-CAM layer', dataset: { explain: 'layer' } });
  const num = (/** @type {string} */ name, /** @type {number} */ value) =>
    h('input', { type: 'number', min: '1', max: '64', step: '1', value: String(value), dataset: { explain: name }, 'aria-label': `Occlusion ${name}` });
  const patch = num('patch', NO_REQUEST.patch);
  const stride = num('stride', NO_REQUEST.stride);
  const opacity = h('input', { type: 'range', min: '0', max: '1', step: '0.05', value: '0.62', dataset: { explain: 'opacity' }, 'aria-label': 'Overlay opacity' });
  const progress = h('progress', { max: '1', value: '0', hidden: true, dataset: { explain: 'progress' }, 'aria-label': 'Occlusion progress' });
  const progressText = h('span', { class: 'hint', dataset: { explain: 'progress-text' }, 'aria-live': 'polite' });
  const legend = createLegend('Colour scale of the explanation');
  const how = h('p', { class: 'hint', dataset: { explain: 'how' } });
  const sanityBtn = h('button', { type: 'button', class: 'btn btn-small', dataset: { explain: 'sanity' } }, 'Sanity check');
  const deletionBtn = h('button', { type: 'button', class: 'btn btn-small', dataset: { explain: 'deletion' } }, 'Deletion curve');
  const sanity = createSanity();
  const curves = createCurves();
  const camField = h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Layer'), layer);
  const occField = h('div', { class: 'explain-occ' },
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Patch'), patch),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Stride'), stride));
  const shown = h('div', { class: 'explain-shown', hidden: true },
    h('label', { class: 'field-inline' }, 'Opacity', opacity), legend, how,
    h('div', { class: 'explain-buttons' }, sanityBtn, deletionBtn));
  const el = h('section', { class: 'explain', 'aria-label': 'Explanation', dataset: { view: 'explain' } },
    h('div', { class: 'explain-controls' },
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Explain'), method),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Class'), cls),
      camField, occField),
    h('div', { class: 'explain-progress' }, progress, progressText),
    shown, sanity.el, curves.el);

  const bounded = (/** @type {HTMLInputElement} */ i) => Math.max(1, Math.min(64, Math.round(Number(i.value)) || 1));
  method.addEventListener('change', () => runner.explain({ method: method.value || null }));
  cls.addEventListener('change', () => runner.explain({ target: cls.value === '' ? null : Number(cls.value) }));
  layer.addEventListener('change', () => runner.explain({ layer: Number(layer.value) }));
  patch.addEventListener('change', () => runner.explain({ patch: bounded(patch) }));
  stride.addEventListener('change', () => runner.explain({ stride: bounded(stride) }));
  opacity.addEventListener('input', () => hooks.onOpacity(Number(opacity.value)));
  sanityBtn.addEventListener('click', () => runner.sanityCheck());
  deletionBtn.addEventListener('click', () => runner.deletionCurve());
  // A class row of the probabilities (drawn by the overview) explains that class.
  document.addEventListener('click', (ev) => {
    const row = ev.target instanceof Element ? ev.target.closest('[data-view="overview"] .prob-btn[data-unit]') : null;
    if (!(row instanceof HTMLElement)) return;
    const target = Number(row.dataset.unit);
    /** @type {any} */
    const state = ctx.store.get();
    if (state.explainRequest?.method) runner.explain({ target });
    else ctx.store.set({ explainRequest: { ...(state.explainRequest || NO_REQUEST), target } });
  });

  const panel = { el, method, cls, layer, patch, stride, progress, progressText, legend, how, shown, sanity, curves, camField, occField,
    modelId: '', input: '' };

  /**
   * @param {any} state
   * @param {Set<string>} changed
   */
  function render(state, changed) {
    if (changed.has('model') && (state.model?.id ?? '') !== panel.modelId) {
      fillModel(panel, state);
      panel.input = inputKey(state);
      if (state.explainRequest) ctx.store.set({ explainRequest: null, explanation: null });
    }
    const req = state.explainRequest || NO_REQUEST;
    if (changed.has('explainRequest') || changed.has('model')) showRequest(panel, req);
    const key = inputKey(state);
    if (changed.has('input') && key !== panel.input) {
      panel.input = key;
      if (req.method) runner.explain({ target: null });
      else if (req.target !== null) ctx.store.set({ explainRequest: { ...req, target: null } });
    }
    if (changed.has('explainProgress')) showProgress(panel, state.explainProgress);
    if (changed.has('explanation') || changed.has('model')) showExplanation(panel, state);
    if (changed.has('explainCurves') || changed.has('explanation')) renderCurves(panel.curves, state.explainCurves, state.explanation);
  }
  return { el, render };
}

/**
 * Class and layer choices for a newly loaded model; its request starts empty.
 * @param {any} panel
 * @param {any} state
 */
function fillModel(panel, state) {
  const model = state.model;
  panel.modelId = model?.id ?? '';
  replaceChildren(panel.cls, h('option', { value: '' }, 'Predicted class'),
    (model?.classes || []).map((/** @type {string} */ c, /** @type {number} */ i) => h('option', { value: String(i) }, prettyClass(c))));
  const layers = spatialLayers(model);
  replaceChildren(panel.layer, layers.map((l) => h('option', { value: String(l.index) }, l.title)));
  if (layers.length) panel.layer.value = String(layers[layers.length - 1].index);
  panel.method.querySelectorAll('option').forEach((/** @type {HTMLOptionElement} */ o) => {
    o.disabled = usesLayer(o.value) && !layers.length;
  });
}

/**
 * Mirror the request in the controls.
 * @param {any} panel
 * @param {import('./run.js').ExplainRequest} req
 */
function showRequest(panel, req) {
  panel.method.value = req.method ?? '';
  panel.cls.value = req.target === null ? '' : String(req.target);
  if (req.layer !== null) panel.layer.value = String(req.layer);
  panel.camField.hidden = !usesLayer(req.method);
  panel.occField.hidden = req.method !== 'occlusion';
  panel.patch.value = String(req.patch);
  panel.stride.value = String(req.stride);
}

/**
 * @param {any} panel
 * @param {{done: number, total: number, pass: number, passes: number, finished?: boolean} | null} p
 */
function showProgress(panel, p) {
  panel.progress.hidden = !p || !!p.finished;
  if (!p || p.finished) {
    setText(panel.progressText, p ? `Covered all ${p.total} patch positions${p.passes > 1 ? ', twice' : ''}` : '');
    return;
  }
  const total = Math.max(1, p.total) * p.passes;
  const done = p.done + (p.pass - 1) * Math.max(1, p.total);
  panel.progress.max = total;
  panel.progress.value = p.total ? done : 0;
  const stage = p.passes > 1 ? (p.pass > 1 ? ' (random weights)' : ' (this model)') : '';
  setText(panel.progressText, p.total ? `Covered ${p.done} of ${p.total} patch positions${stage}` : 'Starting…');
}

/**
 * @param {any} panel
 * @param {any} state
 */
function showExplanation(panel, state) {
  const ex = state.explanation;
  panel.shown.hidden = !ex;
  if (!ex) {
    renderSanity(panel.sanity, null, state);
    return;
  }
  updateLegend(panel.legend, mapScale(ex.map.data, ex.signed), ex.signed ? undefined : '');
  const cls = prettyClass(ex.class ?? String(ex.target));
  const layer = ex.layer === null ? '' : ` at layer ${ex.layer}`;
  setText(panel.how, `${methodLabel(ex.method)}${layer} for “${cls}”: ${ex.how_to_read}`);
  panel.how.dataset.target = String(ex.target);
  renderSanity(panel.sanity, ex, state);
}
