// @ts-check
/**
 * "Inside the last step" (training tab): for the chosen layer with weights, each filter's weights,
 * the gradient dL/dW for the current image and label, and the update the optimizer really applied
 * at the last step, side by side (hover for the numbers); ReLU units that never fired on a batch;
 * the dropout mask.
 */
import { drawMap, unitAt } from '../../canvas.js';
import { h, replaceChildren, setText } from '../../dom.js';
import { fmt, fmtPct, layerTitle, prettyClass } from '../../format.js';
import { crispSize, drawWeightVector, maxAbs } from '../../slices.js';
import { hideTooltip, showTooltip } from '../../tooltip.js';
import { createSource, sure } from './data.js';

const MAX_ROWS = 16;
const PANES = [['value', 'Weights'], ['grad', 'Gradient dL/dW'], ['update', 'Update applied']];

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mountLastStep(root, ctx) {
  const view = { ctx, layer: -1, drawnKey: '', /** @type {import('./data.js').Gradients | null} */ data: null };
  const source = createSource(ctx.api, () => draw(view, ctx.store.get()), (e) => setText(note, `Could not load the step: ${e.message || e}`));
  const pick = h('select', { 'aria-label': 'Layer with weights', dataset: { learning: 'layer' } });
  const label = h('select', { 'aria-label': 'Class the loss is taken against', dataset: { learning: 'step-label' } });
  label.addEventListener('change', () => {
    source.setLabel(label.value === '' ? null : Number(label.value));
    draw(view, ctx.store.get());
  });
  const note = h('p', { class: 'hint', 'aria-live': 'polite' }, 'Take a step to see what it changed.');
  const scales = h('p', { class: 'learn-scales' });
  const grid = h('div', { class: 'learn-grid', dataset: { learning: 'grid' } });
  const dead = h('div', { class: 'learn-dead', dataset: { learning: 'dead' } });
  const drop = h('div', { class: 'learn-drop', dataset: { learning: 'drop-mask' } });
  pick.addEventListener('change', () => {
    view.layer = Number(pick.value);
    view.drawnKey = '';
    draw(view, ctx.store.get());
  });
  grid.addEventListener('pointermove', (ev) => hover(view, ev));
  grid.addEventListener('pointerleave', hideTooltip);
  root.append(h('section', { class: 'card learn-step', dataset: { view: 'last-step' } },
    h('div', { class: 'panel-head' }, h('h3', {}, 'Inside the last step'), h('label', { class: 'field-inline' }, h('span', {}, 'Layer'), pick),
      h('label', { class: 'field-inline' }, h('span', {}, 'Loss for'), label)),
    h('p', { class: 'hint' }, 'Each row is one filter: its weights, how the loss for this image would change them (the gradient), '
      + 'and how much the last training step really moved them (momentum and Adam included). Blue is negative, red positive.'),
    note, scales, grid,
    h('h4', { class: 'subhead' }, 'Units that never fire'), dead,
    h('h4', { class: 'subhead' }, 'Dropout'), drop));
  Object.assign(view, { source, pick, label, note, scales, grid, dead, drop });
  return /** @type {any} */ (view);
}

/**
 * @param {any} view
 * @param {import('../../state.js').State} state
 */
export function renderLastStep(view, state) {
  if (state.tab !== 'training' || !state.model) return;
  draw(view, state);
}

/**
 * @param {any} view
 * @param {import('../../state.js').State} state
 */
function draw(view, state) {
  const model = state.model;
  if (!model) return;
  const data = view.source.get(state);
  if (!data) return;
  const weighted = data.layers.filter((/** @type {any} */ l) => l.parameters);
  const options = weighted.map((/** @type {any} */ l) => `${l.index}`).join(',');
  if (view.pick.dataset.options !== options) {
    view.pick.dataset.options = options;
    replaceChildren(view.pick, ...weighted.map((/** @type {any} */ l) => h('option', { value: String(l.index) }, `${layerTitle(model.layers[l.index])} ${l.index}`)));
    if (!weighted.some((/** @type {any} */ l) => l.index === view.layer)) view.layer = weighted[0]?.index ?? -1;
    view.pick.value = String(view.layer);
  }
  const classes = model.classes.join('|');
  if (view.label.dataset.classes !== classes) {
    view.label.dataset.classes = classes;
    replaceChildren(view.label, h('option', { value: '' }, 'its true class'),
      ...model.classes.map((/** @type {string} */ c, /** @type {number} */ i) => h('option', { value: String(i) }, prettyClass(c))));
  }
  const key = `${data.step}|${data.label}|${view.layer}|${view.source.label}|${state.colour.diverging}`;
  if (key === view.drawnKey && data === view.data) return;
  view.drawnKey = key;
  view.data = data;
  setText(view.note, data.update_step === null ? data.update_note || ''
    : `Step ${data.step}: loss ${fmt(data.loss ?? NaN)} for class "${prettyClass(data.classes[data.label] ?? String(data.label))}" on this image.${sure(data)}`);
  drawLayer(view, data, state.colour.diverging || 'rdbu');
  drawDead(view, data, model);
  drawDropout(view, data, model);
}

/**
 * @param {any} view
 * @param {import('./data.js').Gradients} data
 * @param {string} cmap
 */
function drawLayer(view, data, cmap) {
  const layer = data.layers[view.layer];
  const weight = layer?.parameters?.find((p) => p.name === 'weight');
  if (!weight) return replaceChildren(view.grid);
  const tensors = { value: weight.value, grad: weight.grad, update: weight.update };
  const shape = weight.value.shape;
  const rows = Math.min(shape[0], shape.length === 1 ? 1 : MAX_ROWS);
  const per = shape.length === 1 ? shape[0] : shape.slice(1).reduce((a, b) => a * b, 1);
  const m = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t ? maxAbs(t.data, 0, t.data.length) : 1]));
  const norm = (/** @type {any} */ t) => (t ? Math.sqrt(t.data.reduce((/** @type {number} */ a, /** @type {number} */ v) => a + v * v, 0)) : NaN);
  const ratio = weight.update ? norm(weight.update) / norm(weight.value) : NaN;
  replaceChildren(view.scales,
    `Colour scales: weights ±${fmt(m.value)}, gradient ±${fmt(m.grad)}`, weight.update ? `, update ±${fmt(m.update)}` : '',
    weight.update ? ` · update / weight size ${fmt(ratio)} (healthy training is often near ${fmt(data.healthy_update_ratio)})` : '',
    shape[0] > rows ? ` · first ${rows} of ${shape[0]} filters` : '');
  const head = h('div', { class: 'learn-row learn-head' }, h('span', {}, ''), ...PANES.map(([, t]) => h('span', {}, t)));
  const body = [];
  for (let f = 0; f < rows; f++) {
    const cells = PANES.map(([k, t]) => {
      const c = h('canvas', { class: 'map', 'aria-label': `${t}, filter ${f}`, dataset: { pane: k, filter: String(f) } });
      const tt = /** @type {any} */ (tensors)[k];
      if (!tt) return h('span', { class: 'learn-none' }, 'none yet');
      if (shape.length === 4) {
        const [, , kh, kw] = shape; // first input channel's slice; hover shows the numbers
        drawMap(c, tt.data, f * per, kh, kw, -m[k], m[k], cmap);
        const px = crispSize(kw, 48, 72);
        c.style.width = `${px}px`;
        c.style.height = `${Math.round((px * kh) / kw)}px`;
      } else drawWeightVector(c, tt.data, f * per, shape.length === 1 ? shape[0] : per, m[k], cmap, 72);
      return c;
    });
    body.push(h('div', { class: 'learn-row' }, h('span', { class: 'learn-f' }, shape.length === 1 ? 'all' : `filter ${f}`), ...cells));
  }
  replaceChildren(view.grid, head, ...body);
}

/**
 * Numbers under the pointer: the weight, its gradient and its update at the same place.
 * @param {any} view
 * @param {PointerEvent} ev
 */
function hover(view, ev) {
  const c = /** @type {HTMLElement} */ (ev.target).closest('canvas');
  const layer = view.data?.layers[view.layer];
  const weight = layer?.parameters?.find((/** @type {any} */ p) => p.name === 'weight');
  if (!(c instanceof HTMLCanvasElement) || !weight) return hideTooltip();
  const shape = weight.value.shape;
  const f = Number(c.dataset.filter);
  const per = shape.length === 1 ? shape[0] : shape.slice(1).reduce((/** @type {number} */ a, /** @type {number} */ b) => a * b, 1);
  const { row, col } = unitAt(c, ev);
  const i = (shape.length === 1 ? 0 : f * per) + row * c.width + col;
  const at = (/** @type {any} */ t) => (t ? fmt(t.data[i], 4) : '—');
  const where = shape.length === 4 ? `filter ${f}, input channel 0, (row ${row}, col ${col})` : `weight ${i - (shape.length === 1 ? 0 : f * per)}`;
  showTooltip([where, `weight ${at(weight.value)}`, `gradient ${at(weight.grad)}`, `update ${at(weight.update)}`], ev.clientX, ev.clientY);
}

/**
 * @param {any} view
 * @param {import('./data.js').Gradients} data
 * @param {any} model
 */
function drawDead(view, data, model) {
  const relus = data.layers.filter((l) => l.dead_relu);
  if (!relus.length) return replaceChildren(view.dead, h('p', { class: 'hint' }, data.dead_relu_batch ? 'This network has no ReLU layers.' : 'Needs the model’s dataset.'));
  const n = data.dead_relu_batch?.count ?? 0;
  replaceChildren(view.dead, h('p', { class: 'hint' }, `A ReLU unit that outputs 0 for every one of ${n} training images learns nothing from them. Per filter: the bar is the share of its positions that never fired.`),
    ...relus.map((l) => {
      const d = /** @type {{share: number, per_filter: number[]}} */ (l.dead_relu);
      return h('div', { class: 'learn-dead-row', dataset: { layer: String(l.index) } },
        h('span', {}, `${layerTitle(model.layers[l.index])} ${l.index}: ${fmtPct(d.share)} never fired`),
        h('span', { class: 'learn-bars' }, ...d.per_filter.slice(0, 128).map((v, f) => {
          const bar = h('span', { class: 'learn-bar', title: `filter ${f}: ${fmtPct(v)} never fired` });
          bar.style.height = `${Math.max(1, Math.round(v * 24))}px`; // CSSOM, allowed by the page's CSP
          return bar;
        })));
    }));
}

/**
 * @param {any} view
 * @param {import('./data.js').Gradients} data
 * @param {any} model
 */
function drawDropout(view, data, model) {
  const drops = data.layers.filter((l) => l.dropout_mask);
  if (!drops.length) return replaceChildren(view.drop, h('p', { class: 'hint' }, 'This network has no dropout layer.'));
  replaceChildren(view.drop, h('p', { class: 'hint' }, data.dropout_note || ''), ...drops.map((l) => {
    const t = /** @type {import('../../tensor.js').Tensor} */ (l.dropout_mask);
    const kept = t.data.reduce((a, v) => a + v, 0) / Math.max(1, t.data.length);
    const maps = [];
    if (t.shape.length === 3) {
      const [c, hh, ww] = t.shape;
      for (let ch = 0; ch < Math.min(c, 8); ch++) {
        const cv = h('canvas', { class: 'map', 'aria-label': `dropout mask, channel ${ch}` });
        drawMap(cv, t.data, ch * hh * ww, hh, ww, 0, 1, 'gray');
        maps.push(cv);
      }
    } else {
      const cv = h('canvas', { class: 'map', 'aria-label': 'dropout mask' });
      drawWeightVector(cv, t.data, 0, t.data.length, 1, 'gray', 96);
      maps.push(cv);
    }
    return h('div', { class: 'learn-drop-row' }, h('span', {}, `${layerTitle(model.layers[l.index])} ${l.index}: ${fmtPct(kept)} kept (white), the rest dropped (black)`), h('span', { class: 'learn-masks' }, ...maps));
  }));
}
