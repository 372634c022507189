// @ts-check
/**
 * Step 7, testing: the held-out test split (images the model never trained on), its accuracy, the
 * confusion matrix (which class was taken for which) and a few test images the model gets wrong,
 * all from POST .../evaluate on the live model.
 */
import { h, replaceChildren } from '../../dom.js';
import { fmtPct, prettyClass } from '../../format.js';
import { num, say } from './ui.js';

export const id = 'testing';
export const title = 'Testing: how good is it really?';

const WRONG = 8;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, seq: 0, key: '',
    out: h('section', { class: 'lm-section', dataset: { learn: 'evaluation' } }),
  };
  root.append(
    say('A model can learn its training images by heart and still fail on new ones. So part of the data is kept aside and never trained on: the test split. The score on those images is the honest one: it says how the model will do on images it has never seen.'),
    say('Accuracy is the share of test images whose most probable class is the right one. The confusion matrix says more: each row is a true class, each column the class the model chose. The diagonal holds the right answers; any other cell counts one kind of mistake.'),
    view.out,
  );
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  const { model } = state;
  if (!model || !(changed.has('model') || changed.has('input'))) return;
  const key = `${model.id}|${model.step}`;
  if (key === view.key) return;
  view.key = key;
  if (!model.dataset) {
    replaceChildren(view.out, say('This model has no dataset, so there is no test split to score it on.'));
    return;
  }
  load(view, model);
}

/** @param {ReturnType<typeof mount>} view @param {any} model */
async function load(view, model) {
  const seq = ++view.seq;
  replaceChildren(view.out, say('Scoring the test split…'));
  let ev;
  try {
    ev = await view.ctx.api.evaluate(model.id, 'test');
  } catch (err) {
    view.ctx.actions.fail(err);
    return;
  }
  if (seq !== view.seq) return;
  const cm = /** @type {number[][]} */ (ev.confusion_matrix);
  const total = cm.flat().reduce((a, b) => a + b, 0);
  const right = cm.reduce((a, row, i) => a + row[i], 0);
  const names = ev.classes.map((/** @type {string} */ c) => prettyClass(c));
  const table = h('table', { class: 'lm-matrix', dataset: { learn: 'confusion' } },
    h('thead', {}, h('tr', {}, h('th', { text: 'true ↓ / chosen →' }), names.map((/** @type {string} */ n) => h('th', { text: n })))),
    h('tbody', {}, cm.map((row, t) => h('tr', {}, h('th', { text: names[t] }),
      row.map((v, p) => h('td', { class: p === t ? 'pos' : v ? 'neg' : '', dataset: { learn: 'cell', true: String(t), chosen: String(p) }, text: String(v) }))))));
  const wrong = ev.misclassified.slice(0, WRONG);
  const pics = wrong.map((/** @type {any} */ m) => h('figure', { dataset: { learn: 'wrong', index: String(m.index) } },
    h('img', { src: view.ctx.api.sampleUrl(model.dataset, 'test', m.index), alt: `test image ${m.index}`, width: '72', height: '72', class: 'lm-canvas' }),
    h('figcaption', {}, `#${m.index}: is ${names[m.label]}, taken for ${names[m.prediction]} (${fmtPct(m.confidence ?? 0)})`)));
  replaceChildren(view.out,
    h('p', {}, `On ${total} test images, ${right} right: accuracy `,
      h('strong', { dataset: { learn: 'accuracy', value: String(ev.accuracy) }, text: fmtPct(ev.accuracy) }),
      `, average loss ${num(ev.loss ?? NaN)} (at step ${ev.step}).`),
    table,
    h('h3', { text: 'Where it goes wrong' }),
    wrong.length ? say(`${ev.misclassified.length} test image${ev.misclassified.length === 1 ? ' is' : 's are'} misclassified; the first ${wrong.length}:`)
      : say('Every test image is classified correctly.'),
    h('div', { class: 'lm-figures' }, pics),
    say('Looking at the mistakes is often the quickest way to learn what the model has not understood: shapes it confuses, images that are unusual, or labels that are wrong.'));
}
