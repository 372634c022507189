// @ts-check
/**
 * Per-layer curves over the steps (training tab): the gradient's size, the update-to-weight ratio
 * with a dashed line at the healthy 1e-3, and the share of ReLU units that never fire. Read from
 * the history with its per-layer figures (GET .../history?layers=true), at most once a second.
 */
import { createChart } from '../../charts.js';
import { h, replaceChildren } from '../../dom.js';
import { fmt, fmtPct, layerTitle } from '../../format.js';

const HEALTHY = 1e-3;
const EVERY_MS = 1000;
const COLOURS = 6; // .learn-s0 .. .learn-s5 in views.css

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mountCurves(root, ctx) {
  const charts = {
    grad: createChart({ label: 'Gradient size per layer over the steps' }),
    ratio: createChart({ label: 'Update to weight ratio per layer over the steps' }),
    dead: createChart({ label: 'Share of ReLU units that never fire, per layer' }),
  };
  const key = h('p', { class: 'chart-key learn-key' });
  root.append(h('section', { class: 'card learn-curves', dataset: { view: 'layer-curves' } },
    h('h3', {}, 'Each layer while it learns'),
    h('p', { class: 'hint' }, 'How big each layer’s gradient is, and how much each step changes its weights compared with '
      + 'their size: near the dashed line (0.001) is usually healthy; far above, the steps are too big; far below, the layer barely learns.'),
    key,
    h('div', { class: 'charts' },
      h('figure', { class: 'chart-fig' }, h('figcaption', {}, 'Gradient size ‖dL/dW‖'), charts.grad.el),
      h('figure', { class: 'chart-fig' }, h('figcaption', {}, 'Update / weight size'), charts.ratio.el),
      h('figure', { class: 'chart-fig' }, h('figcaption', {}, 'ReLU units that never fire'), charts.dead.el))));
  return { ctx, charts, key, last: 0, busy: false, seen: '', /** @type {any[]} */ steps: [] };
}

/**
 * @param {ReturnType<typeof mountCurves>} view
 * @param {import('../../state.js').State} state
 */
export function renderCurves(view, state) {
  const { model } = state;
  if (state.tab !== 'training' || !model) return;
  const n = state.history.steps.length;
  const seen = `${model.id}|${n}|${state.history.steps[n - 1]?.step ?? 0}`;
  if (seen === view.seen || view.busy) return;
  const wait = EVERY_MS - (performance.now() - view.last);
  if (wait > 0) {
    setTimeout(() => renderCurves(view, view.ctx.store.get()), wait + 10);
    return;
  }
  view.busy = true;
  view.last = performance.now();
  view.ctx.api.layerHistory(model.id).then((/** @type {any} */ r) => {
    view.seen = seen;
    view.steps = r.steps;
    draw(view, model);
  }, () => { view.seen = seen; }).finally(() => { view.busy = false; });
}

/**
 * @param {ReturnType<typeof mountCurves>} view
 * @param {any} model
 */
function draw(view, model) {
  /** @param {string} field */
  const series = (field) => {
    /** @type {Map<string, Array<[number, number]>>} */
    const by = new Map();
    for (const s of view.steps) {
      for (const [k, v] of Object.entries(s[field] || {})) {
        if (typeof v !== 'number') continue;
        if (!by.has(k)) by.set(k, []);
        by.get(k)?.push([s.step, v]);
      }
    }
    return [...by.entries()].sort((a, b) => Number(a[0]) - Number(b[0]));
  };
  const name = (/** @type {string} */ k) => `${layerTitle(model.layers[Number(k)] || { type: '?' })} ${k}`;
  const colour = (/** @type {string} */ k, /** @type {number} */ i) => `learn-s${i % COLOURS}`;
  const lines = (/** @type {Array<[string, Array<[number, number]>]>} */ all) =>
    all.map(([k, pts], i) => ({ name: name(k), cls: colour(k, i), style: /** @type {'line'} */ ('line'), points: pts }));
  const grads = series('grad_norm');
  const ratios = series('update_ratio');
  const dead = series('dead_relu');
  const steps = view.steps.map((s) => s.step);
  const x0 = steps[0] ?? 0;
  const x1 = steps[steps.length - 1] ?? 1;
  view.charts.grad.update({ log: true, events: [], series: lines(grads), format: (v) => fmt(v) });
  view.charts.ratio.update({ log: true, events: [], format: (v) => fmt(v),
    series: [...lines(ratios), { name: 'healthy', cls: 'learn-ref', style: 'line', points: ratios.length ? [[x0, HEALTHY], [x1, HEALTHY]] : [] }] });
  view.charts.dead.update({ yRange: [0, 1], events: [], series: lines(dead), format: (v) => fmtPct(v) });
  replaceChildren(view.key, ...grads.map(([k], i) => h('span', { class: `key learn-key-${i % COLOURS}` }, name(k))));
}
