// @ts-check
/**
 * Step 6, learning: one training step taken apart on the live model and image. The forward pass
 * gives probabilities, the loss turns them into one number (cross-entropy and MSE, with this image's
 * numbers), the backward pass gives every layer a gradient (POST .../gradients), and the update moves
 * one weight the reader picks: w − lr × dL/dW. Then the learning-rate experiment: in-memory copies of
 * the model trained side by side with a small, the model's own and a large learning rate
 * (POST .../learn/lr-experiment), their loss curves overlaid.
 */
import { createChart } from '../../charts.js';
import { h, replaceChildren } from '../../dom.js';
import { prettyClass } from '../../format.js';
import { decodeTensor } from '../../tensor.js';
import { needsFetch } from './freshness.js';
import { choice, num, say, sig } from './ui.js';

export const id = 'learning';
export const title = 'Learning: forward, loss, backward, update';

const COLOURS = ['#0ea5e9', '#16a34a', '#dc2626', '#9333ea'];

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ state: null, /** @type {any} */ grads: null, seq: 0, key: '',
    loss: h('section', { class: 'lm-section', dataset: { learn: 'loss-section' } }),
    backward: h('section', { class: 'lm-section', dataset: { learn: 'backward' } }),
    update: h('section', { class: 'lm-section', dataset: { learn: 'update' } }),
    lr: h('section', { class: 'lm-section', dataset: { learn: 'lr' } }),
    chart: createChart({ label: 'Loss curves of the learning-rate experiment' }),
  };
  const steps = choice('lr-steps', [[10, '10 steps'], [20, '20 steps'], [40, '40 steps'], [60, '60 steps']], (v) => ctx.link.set({ lrsteps: v }), 'Steps per copy');
  steps.value = ctx.link.params.lrsteps || '20';
  const run = h('button', { type: 'button', dataset: { learn: 'lr-run' }, text: 'Run the experiment', on: { click: () => runExperiment(view, Number(steps.value)) } });
  const out = h('div', { dataset: { learn: 'lr-result' } });
  view.lr.append(h('h3', { text: 'How big a step? The learning rate' }),
    say('The learning rate decides how far each update moves the weights. Too small and the loss creeps down; too big and each step jumps past the bottom of the valley, so the loss bounces or grows.'),
    say('The experiment trains three copies of this model side by side, in memory, on exactly the same batches: one at a tenth of its learning rate, one at its own and one at ten times it. Your model does not change, and the copies are dropped when the run ends.'),
    h('div', { class: 'lm-controls' }, steps, run), view.chart.el, out);
  root.append(
    say('Training repeats one step many times. A step has four parts: the forward pass (the image goes through the network and comes out as probabilities), the loss (one number for how wrong they are), the backward pass (how much each weight is to blame) and the update (each weight moves a little in the direction that lowers the loss).'),
    view.loss, view.backward, view.update, view.lr,
  );
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  view.state = state;
  const { model, input, forward } = state;
  if (!model || !input || !forward || !needsFetch(view, state, changed)) return;
  const label = forward.label ?? forward.prediction.index;
  load(view, model, input, label);
}

/** @param {ReturnType<typeof mount>} view @param {any} model @param {any} input @param {number} label */
async function load(view, model, input, label) {
  const seq = ++view.seq;
  let g;
  try {
    g = await view.ctx.api.gradients32(model.id, input, label);
  } catch (err) {
    view.ctx.actions.fail(err);
    return;
  }
  if (seq !== view.seq) return;
  view.grads = g;
  showLoss(view, g);
  showBackward(view, g);
  showUpdate(view);
}

/** @param {ReturnType<typeof mount>} view @param {any} g */
function showLoss(view, g) {
  const k = g.label;
  const p = g.probabilities;
  const cls = prettyClass(g.classes[k] ?? String(k));
  const ce = -Math.log(Math.max(p[k], 1e-12));
  const sq = p.map((/** @type {number} */ v, /** @type {number} */ i) => ((i === k ? 1 : 0) - v) ** 2);
  const half = 0.5 * sq.reduce((/** @type {number} */ a, /** @type {number} */ b) => a + b, 0);
  // a probability near 1 with enough digits that −ln(p) can be checked by hand
  const pk = p[k] > 0.999 ? num(p[k], 7) : num(p[k], 4);
  replaceChildren(view.loss, h('h3', { text: 'Forward pass and loss' }),
    say(`The right answer for this image is “${cls}”: the target is 1 for that class and 0 for the others. The network gave “${cls}” a probability of ${pk}.`),
    say('A loss turns that into one number, 0 when the answer is perfect. Two common ones, with this image’s numbers:'),
    h('p', { class: 'lm-formula' }, `cross-entropy = −ln(p of the right class) = −ln(${pk}) = `,
      h('strong', { dataset: { learn: 'ce', value: String(ce) }, text: sig(ce) })),
    h('p', { class: 'lm-formula' }, `squared error E = ½ × Σ (target − p)² = ½ × (${sq.map((/** @type {number} */ v) => sig(v)).join(' + ')}) = `,
      h('strong', { dataset: { learn: 'mse', value: String(half) }, text: sig(half) })),
    say('Cross-entropy looks only at the right class and grows without limit as its probability falls towards 0. The squared error compares every class with its target; it is the classic first example, and the engine’s “mse” loss is exactly this E.'),
    h('p', {}, `This model trains with ${g.loss_name === 'mse' ? 'the squared error' : 'cross-entropy'}; the engine’s loss for this image: `,
      h('strong', { dataset: { learn: 'loss', value: String(g.loss) }, text: sig(g.loss) }), '.'));
}

/** @param {ReturnType<typeof mount>} view @param {any} g */
function showBackward(view, g) {
  const rows = g.layers.slice().reverse().map((/** @type {any} */ l) => {
    const pw = (l.parameters || []).find((/** @type {any} */ q) => q.name === 'weight');
    const gw = pw ? decodeTensor(pw.grad).data : null;
    let norm = 0;
    if (gw) for (const v of gw) norm += v * v;
    return h('tr', { dataset: { learn: 'grad-layer', layer: String(l.index) } }, h('td', { text: String(l.index) }), h('td', { text: l.type }),
      h('td', { text: sig(l.norm ?? NaN, 5) }), h('td', { text: gw ? sig(Math.sqrt(norm), 5) : '—' }),
      h('td', { text: pw ? (l.trainable ? 'yes' : 'frozen') : '' }));
  });
  replaceChildren(view.backward, h('h3', { text: 'Backward pass' }),
    say('The backward pass starts at the loss and goes back through the layers, using the chain rule. It gives every number a layer outputs a gradient: how much the loss would change if that number grew a little. Layers with weights also get dL/dW, one gradient per weight, which is what the update needs.'),
    say('The size of each layer’s gradients (the square root of the sum of their squares), from the last layer back to the first:'),
    h('table', { class: 'lm-matrix' }, h('thead', {}, h('tr', {}, ['layer', 'type', '|dL/d output|', '|dL/dW|', 'learns'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows)));
}

/** @param {ReturnType<typeof mount>} view */
function showUpdate(view) {
  const g = view.grads;
  const { model } = view.state;
  const link = view.ctx.link;
  const weighted = g.layers.filter((/** @type {any} */ l) => (l.parameters || []).some((/** @type {any} */ q) => q.name === 'weight'));
  if (!weighted.length) return;
  const layerIdx = Number(link.params.wlayer ?? weighted[weighted.length - 1].index);
  const l = weighted.find((/** @type {any} */ x) => x.index === layerIdx) || weighted[weighted.length - 1];
  const p = l.parameters.find((/** @type {any} */ q) => q.name === 'weight');
  const w = decodeTensor(p.value).data;
  const dw = decodeTensor(p.grad).data;
  let at = Number(link.params.weight ?? -1);
  if (!(at >= 0 && at < w.length)) at = dw.reduce((best, v, i) => (Math.abs(v) > Math.abs(dw[best]) ? i : best), 0);
  const hp = model.training;
  const lr = hp.learning_rate;
  const after = w[at] - lr * dw[at];
  const digits = digitsFor(w[at], lr * dw[at]);
  const plain = hp.optimizer === 'sgd' && !hp.momentum && !hp.weight_decay;
  const pickLayer = choice('w-layer', weighted.map((/** @type {any} */ x) => [x.index, `layer ${x.index} (${x.type})`]),
    (v) => { link.set({ wlayer: v, weight: null }); showUpdate(view); }, 'Layer of the weight');
  pickLayer.value = String(l.index);
  const pickW = h('input', { type: 'number', min: '0', max: String(w.length - 1), value: String(at), dataset: { learn: 'w-index' },
    'aria-label': 'weight number', on: { change: () => { link.set({ weight: pickW.value }); showUpdate(view); } } });
  const applied = p.update ? decodeTensor(p.update).data[at] : null;
  replaceChildren(view.update, h('h3', { text: 'Update: one weight' }),
    h('div', { class: 'lm-controls' }, pickLayer, h('label', {}, `weight # (0–${w.length - 1}) `, pickW)),
    say('Gradient descent moves each weight a small step against its gradient: down the slope of the loss. Here is one weight (the one with the largest gradient, unless you pick another), with the learning rate lr:'),
    h('p', { class: 'lm-formula', dataset: { learn: 'update-formula' } }, 'w − lr × dL/dW = ',
      h('span', { dataset: { learn: 'w-before', value: String(w[at]) }, text: fixed(w[at], digits) }), ' − ',
      h('span', { dataset: { learn: 'lr-value', value: String(lr) }, text: String(lr) }), ' × ',
      h('span', { dataset: { learn: 'dw', value: String(dw[at]) }, text: paren(sig(dw[at], 6)) }), ' = ',
      h('strong', { dataset: { learn: 'w-after', value: String(after) }, text: fixed(after, digits) }),
      ` (a move of ${sig(-lr * dw[at], 6)})`),
    say('This dL/dW is for this one image. A real training step averages the gradients of a whole batch of images, so the real move is the batch’s average.'),
    plain ? say('This model uses plain SGD (no momentum, no weight decay), so this is exactly the rule its steps follow.')
      : say(`This model’s optimizer is ${hp.optimizer}${hp.optimizer === 'sgd' ? ` with momentum ${hp.momentum}` : ''}${hp.weight_decay ? ` and weight decay ${hp.weight_decay}` : ''}: ${hp.optimizer === 'adam' ? 'Adam keeps a running average of each weight’s gradients and scales its step by how large they have been' : 'its steps also carry on some of the previous steps’ movement'}, so the real update is not just −lr × dL/dW (that is plain SGD). ` +
        (applied !== null ? `Its last step (step ${g.update_step}) moved this weight by ${sig(applied, 6)}.` : g.update_note || '')),
    h('p', { class: 'lm-text', dataset: { learn: 'applied', value: applied === null ? '' : String(applied) } }, applied === null ? '' : `Last applied update: ${sig(applied, 6)}`));
}

/** A negative number in brackets, as a factor. @param {string} t */
function paren(t) {
  return t.startsWith('−') ? `(${t})` : t;
}

/**
 * Significant digits enough to show a move of `by` on a weight `w` (the move's first two digits), at least 6.
 * @param {number} w @param {number} by
 */
function digitsFor(w, by) {
  if (!by || !Number.isFinite(by) || !w) return 6;
  return Math.min(12, Math.max(6, Math.ceil(Math.log10(Math.abs(w) / Math.abs(by))) + 2));
}

/** `v` with `digits` significant digits and a real minus sign. @param {number} v @param {number} digits */
function fixed(v, digits) {
  return Number.isFinite(v) ? v.toPrecision(digits).replace('-', '−') : String(v);
}

/** @param {ReturnType<typeof mount>} view @param {number} steps */
async function runExperiment(view, steps) {
  const { model } = view.state || {};
  if (!model) return;
  const out = /** @type {HTMLElement} */ (view.lr.querySelector('[data-learn="lr-result"]'));
  const btn = /** @type {HTMLButtonElement} */ (view.lr.querySelector('[data-learn="lr-run"]'));
  btn.disabled = true;
  replaceChildren(out, say(`Training three copies for ${steps} steps each…`));
  let r;
  try {
    r = await view.ctx.api.learnLr(model.id, { steps });
  } catch (err) {
    view.ctx.actions.fail(err);
    replaceChildren(out);
    return;
  } finally {
    btn.disabled = false;
  }
  const names = ['too small', 'the model’s own', 'too high'];
  const series = r.curves.map((/** @type {any} */ c, /** @type {number} */ i) => ({
    name: `lr ${c.learning_rate}`, cls: `lr-${i}`, style: /** @type {'line'} */ ('line'),
    points: c.loss.map((/** @type {number | null} */ v, /** @type {number} */ t) => /** @type {[number, number]} */ ([t + 1, v ?? NaN])),
  }));
  view.chart.update({ series, events: [] });
  view.chart.el.querySelectorAll('path.chart-line').forEach((el, i) => { /** @type {SVGElement} */ (el).style.stroke = COLOURS[i % COLOURS.length]; });
  const last = (/** @type {any[]} */ a) => a.filter((v) => v !== null).at(-1);
  replaceChildren(out, h('ul', { class: 'lm-legend' }, r.curves.map((/** @type {any} */ c, /** @type {number} */ i) => {
    const diverged = c.loss.some((/** @type {any} */ v) => v === null);
    return h('li', { dataset: { learn: 'lr-curve', rate: String(c.learning_rate), final: String(last(c.loss) ?? '') } },
      h('span', { text: '■ ' }), `learning rate ${c.learning_rate} (${names[i] ?? ''}): loss ${sig(c.loss[0] ?? NaN)} at the first step → ${diverged ? 'diverged (no longer a number)' : `${sig(last(c.loss))} at the last`}`);
  })), say(`Every copy started from the same weights (step ${r.step}) and saw the same ${r.steps} batches of ${r.batch_size} images; only the learning rate differed. The chart shows each copy’s loss (up) at every step (across). The copies are gone; nothing was saved.`),
  r.curves.every((/** @type {any} */ c) => c.loss[0] !== null && c.loss[0] < 0.05)
    ? say('This model is already trained: its loss starts near 0, so there is little left to learn and a good rate can only keep it there. A too-high rate still shows its jump. On a new, untrained copy all three curves tell their story.')
    : null);
  /** @type {NodeListOf<HTMLElement>} */ (out.querySelectorAll('li > span')).forEach((el, i) => { el.style.color = COLOURS[i % COLOURS.length]; });
}
