// @ts-check
/**
 * The training panel: hyperparameters (changeable while playing, each change marked on the
 * curves), live loss and accuracy curves with smoothing, a log scale, hover values, a CSV download
 * of the whole history from the server (not the curves' downsampled points), and the next mini-batch. The model card beside it is views/models.js.
 */
import { createChart, smooth } from '../charts.js';
import { debounce, field, h, replaceChildren, setText } from '../dom.js';
import { drawInput } from '../canvas.js';
import { fmt, fmtInt, fmtPct, prettyClass } from '../format.js';
import * as learning from './learning/panel.js';

const DRAW_MS = 250;

/** @type {Array<{name: string, label: string, kind: 'number'|'int'|'select'|'bool', options?: string[][], step?: string}>} */
const HYPER = [
  { name: 'learning_rate', label: 'Learning rate', kind: 'number', step: 'any' },
  { name: 'batch_size', label: 'Batch size', kind: 'int', step: '1' },
  { name: 'optimizer', label: 'Optimizer', kind: 'select', options: [['sgd', 'SGD'], ['adam', 'Adam']] },
  { name: 'momentum', label: 'Momentum', kind: 'number', step: 'any' },
  { name: 'loss', label: 'Loss', kind: 'select', options: [['cross_entropy', 'Cross-entropy'], ['mse', 'Mean squared error']] },
  { name: 'weight_decay', label: 'Weight decay', kind: 'number', step: 'any' },
  { name: 'augment', label: 'Augment images', kind: 'bool' },
];

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const { actions, trainer } = ctx;
  /** @type {Record<string, HTMLInputElement | HTMLSelectElement>} */
  const inputs = {};
  const form = h('div', { class: 'hyper-grid' });
  for (const hp of HYPER) {
    const input = hp.kind === 'select'
      ? h('select', {}, (hp.options || []).map(([v, t]) => h('option', { value: v }, t)))
      : h('input', hp.kind === 'bool' ? { type: 'checkbox' } : { type: 'number', step: hp.step, inputmode: 'decimal' });
    input.dataset.hyper = hp.name;
    input.addEventListener('change', () => {
      const raw = input instanceof HTMLInputElement && input.type === 'checkbox' ? input.checked : input.value;
      const value = hp.kind === 'int' ? Math.round(Number(raw)) : hp.kind === 'number' ? Number(raw) : raw;
      if ((hp.kind === 'int' || hp.kind === 'number') && (String(raw).trim() === '' || !Number.isFinite(value))) {
        actions.notify('error', `${hp.label} must be a number.`);
        return;
      }
      trainer.setHyper({ [hp.name]: value });
    });
    inputs[hp.name] = input;
    form.append(field(hp.label, input, hp.kind === 'bool' ? 'field field-check' : 'field'));
  }

  const log = h('input', { type: 'checkbox', 'aria-label': 'Log scale for the loss' });
  const smoothing = h('input', { type: 'range', min: '0', max: '0.99', step: '0.01', value: '0.9', 'aria-label': 'Smoothing' });
  const csv = h('a', { class: 'btn btn-small', download: '', href: '#', dataset: { action: 'download-csv' },
    'aria-label': 'Download every step, evaluation and change as CSV' }, 'Download CSV');
  const lossChart = createChart({ label: 'Loss per step' });
  const accChart = createChart({ label: 'Accuracy per step' });
  const summary = h('p', { class: 'train-summary', 'aria-live': 'polite' });
  const batch = h('div', { class: 'batch', role: 'group', 'aria-label': 'The next mini-batch' });
  const batchNote = h('p', { class: 'hint' });
  const view = { root, ctx, inputs, log, smoothing, csv, lossChart, accChart, summary, batch, batchNote, batchKey: '', lastDraw: 0, timer: /** @type {any} */ (0) };
  const redraw = () => drawCharts(view, ctx.store.get());
  log.addEventListener('change', redraw);
  smoothing.addEventListener('input', redraw);
  new ResizeObserver(debounce(redraw, 100)).observe(lossChart.el);

  root.append(
    h('section', { class: 'card train-hyper' },
      h('h3', {}, 'Hyperparameters'),
      h('p', { class: 'hint' }, 'Change them any time, even while training plays; each change is marked on the curves.'),
      form),
    h('section', { class: 'card train-charts' },
      h('div', { class: 'panel-head' }, h('h3', {}, 'Learning curves'), summary),
      h('div', { class: 'chart-tools' },
        h('label', { class: 'field-inline' }, log, h('span', {}, 'Log-scale loss')),
        h('label', { class: 'field-inline' }, h('span', {}, 'Smoothing'), smoothing),
        csv,
        h('span', { class: 'chart-key' },
          h('span', { class: 'key key-raw' }, 'train (each step)'), h('span', { class: 'key key-smooth' }, 'train (smoothed)'),
          h('span', { class: 'key key-test' }, 'test'), h('span', { class: 'key key-event' }, 'change'))),
      h('div', { class: 'charts' },
        h('figure', { class: 'chart-fig' }, h('figcaption', {}, 'Loss'), lossChart.el),
        h('figure', { class: 'chart-fig' }, h('figcaption', {}, 'Accuracy'), accChart.el)),
      h('h4', { class: 'subhead' }, 'The next mini-batch'), batchNote, batch),
  );
  return Object.assign(view, { learning: learning.mount(root, ctx) }); // per-layer curves, the last step's insides
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  const { model } = state;
  if (!model) return;
  if (changed.has('model')) {
    for (const [name, input] of Object.entries(view.inputs)) {
      if (document.activeElement === input) continue;
      const v = model.training?.[name];
      if (v === undefined) continue;
      if (input instanceof HTMLInputElement && input.type === 'checkbox') input.checked = !!v;
      else if (input.value !== String(v)) input.value = String(v);
    }
    const m = /** @type {HTMLInputElement} */ (view.inputs.momentum);
    m.disabled = model.training?.optimizer === 'adam';
    view.csv.setAttribute('href', view.ctx.api.historyCsvUrl(model.id)); // the browser streams it
  }
  if (state.tab !== 'training') return;
  learning.render(view.learning, state);
  renderBatch(view, state);
  if (!['history', 'tab', 'model'].some((k) => changed.has(k))) return;
  const wait = DRAW_MS - (performance.now() - view.lastDraw);
  if (wait > 0 && state.training.playing) {
    if (!view.timer) view.timer = setTimeout(() => { view.timer = 0; drawCharts(view, view.ctx.store.get()); }, wait);
    return;
  }
  drawCharts(view, state);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 */
function drawCharts(view, state) {
  view.lastDraw = performance.now();
  const { steps, evaluations, events } = state.history;
  const alpha = Number(view.smoothing.value);
  const loss = steps.map((p) => /** @type {[number, number]} */ ([p.step, p.loss]));
  const acc = steps.map((p) => /** @type {[number, number]} */ ([p.step, p.accuracy]));
  const test = evaluations.filter((e) => !e.split || e.split === 'test');
  const ev = events.map((e) => ({ step: e.step, label: Object.entries(e.changes || {}).map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(', ') }));
  view.lossChart.update({
    log: view.log.checked, events: ev,
    series: [
      { name: 'train', cls: 'raw', style: 'dots', points: loss },
      { name: 'smoothed', cls: 'smooth', style: 'line', points: smooth(loss, alpha) },
      { name: 'test', cls: 'test', style: 'marks', points: test.map((e) => [e.step, e.loss]) },
    ],
  });
  view.accChart.update({
    yRange: [0, 1], format: (v) => fmtPct(v), events: ev,
    series: [
      { name: 'train', cls: 'raw', style: 'dots', points: acc },
      { name: 'smoothed', cls: 'smooth', style: 'line', points: smooth(acc, alpha) },
      { name: 'test', cls: 'test', style: 'marks', points: test.map((e) => [e.step, e.accuracy]) },
    ],
  });
  const last = test[test.length - 1];
  const lastStep = steps[steps.length - 1];
  replaceChildren(view.summary,
    lastStep ? `loss ${fmt(lastStep.loss)} · batch accuracy ${fmtPct(lastStep.accuracy)}` : '',
    last ? ` · test accuracy ${fmtPct(last.accuracy)} at step ${fmtInt(last.step)}` : '');
}

/**
 * The images the next training step will use (fetched when the panel shows and training is idle).
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 */
function renderBatch(view, state) {
  const { model, batch, training } = state;
  if (!model) return;
  if (model.read_only) {
    setText(view.batchNote, 'Shown for the models you train.');
    replaceChildren(view.batch);
    view.batchKey = '';
    return;
  }
  const stale = batch?.step !== model.step || !!batch?.augment !== !!model.training?.augment;
  if (!training.playing && !training.busy && stale) view.ctx.trainer.loadBatch();
  const key = batch ? `${model.id}:${batch.step}:${!!batch.augment}` : '';
  if (!batch || key === view.batchKey) return;
  view.batchKey = key;
  const [n, c, hh, ww] = batch.images.shape;
  setText(view.batchNote, `${n} of the ${model.training?.batch_size ?? n} images of step ${fmtInt(batch.step + 1)}, with their true classes${batch.augment ? ' and the augmentation applied to each' : ''}: the next step trains on them.`);
  replaceChildren(view.batch, Array.from({ length: n }, (_, i) => {
    const canvas = h('canvas', { class: 'map', 'aria-hidden': 'true' });
    const data = batch.images.data.subarray(i * c * hh * ww, (i + 1) * c * hh * ww);
    drawInput(canvas, { shape: [1, c, hh, ww], data });
    const name = prettyClass(batch.classes[batch.labels[i]] ?? String(batch.labels[i]));
    const steps = (batch.transforms?.[i] || []).map(transformWords);
    const how = batch.augment ? (steps.length ? steps.join(' · ') : 'unchanged') : '';
    return h('figure', { class: 'batch-item', title: how ? `${name}: ${how}` : name }, canvas, h('figcaption', {}, name),
      how ? h('figcaption', { class: 'batch-aug', dataset: { transforms: '' } }, how) : null);
  }));
}

/**
 * One augmentation step in words, e.g. "rotate 3.2°", "shift ↓2 →−1".
 * @param {{name: string, [k: string]: any}} t
 */
function transformWords(t) {
  const sign = (/** @type {number} */ v) => `${v >= 0 ? '+' : ''}${fmt(v, 2)}`;
  if (t.name === 'rotate') return `rotate ${fmt(t.degrees, 2)}°`;
  if (t.name === 'shift') return `shift ${t.dy} down, ${t.dx} right`;
  if (t.name === 'brightness') return `brightness ${sign(t.offset)}`;
  if (t.name === 'contrast') return `contrast ×${fmt(t.factor, 3)}`;
  if (t.name === 'noise') return `noise σ ${fmt(t.sigma, 2)}`;
  return t.name;
}
