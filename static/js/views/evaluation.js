// @ts-check
/**
 * Evaluation on the test split: accuracy and loss, a confusion matrix (rows: true class, columns:
 * predicted), per-class accuracy, and a gallery of misclassified images; clicking a cell of the
 * matrix lists its examples; clicking an image runs it through the network in the overview.
 */
import { h, replaceChildren, setText } from '../dom.js';
import { fmt, fmtInt, fmtPct, prettyClass } from '../format.js';

const GALLERY = 48;
const CORRECT = '67, 56, 202'; // the page's indigo
const WRONG = '234, 88, 12'; // orange

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const run = h('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'evaluate' } }, 'Evaluate on the test set');
  const status = h('span', { class: 'hint', 'aria-live': 'polite' });
  const score = h('div', { class: 'eval-score' });
  const matrix = h('div', { class: 'confusion', role: 'region', 'aria-label': 'Confusion matrix' });
  const gallery = h('div', { class: 'gallery-images', role: 'group', 'aria-label': 'Misclassified test images' });
  const galleryNote = h('p', { class: 'hint' });
  const cellNote = h('p', { class: 'hint' });
  const cellImages = h('div', { class: 'gallery-images', role: 'group', 'aria-label': 'Examples of the chosen cell' });
  const cellBox = h('div', { class: 'cm-examples', dataset: { cellExamples: '' }, hidden: true }, h('h4', { class: 'subhead' }, 'Examples of the cell'), cellNote, cellImages);
  const view = { root, ctx, run, status, score, matrix, gallery, galleryNote, cellBox, cellNote, cellImages, busy: false, auto: '' };
  run.addEventListener('click', () => evaluate(view));
  root.append(
    h('div', { class: 'panel-head' }, h('h3', {}, 'Evaluation'), h('div', { class: 'row' }, status, run)),
    h('div', { class: 'eval' },
      h('section', { class: 'eval-left' }, score, h('h4', { class: 'subhead' }, 'Confusion matrix'), h('p', { class: 'hint' }, 'Rows: true class. Columns: predicted class.'), matrix),
      h('section', { class: 'eval-right' }, cellBox, h('h4', { class: 'subhead' }, 'Misclassified test images'), galleryNote, gallery)));
  return view;
}

/** @param {ReturnType<typeof mount>} view */
async function evaluate(view) {
  if (view.busy) return;
  view.busy = true;
  view.run.disabled = true;
  setText(view.status, 'Evaluating…');
  if (!view.ctx.store.get().evaluation) replaceChildren(view.score, h('p', { class: 'empty' }, 'Running every test image through the network…'));
  await view.ctx.actions.evaluate();
  view.busy = false;
  view.run.disabled = false;
  render(view, view.ctx.store.get(), new Set(['evaluation']));
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  const { model, evaluation: ev } = state;
  if (!model || state.tab !== 'evaluation') return;
  if (changed.has('tab') && !ev && view.auto !== model.id) {
    view.auto = model.id;
    evaluate(view);
    return;
  }
  if (!view.busy) setText(view.status, ev ? (ev.step === model.step ? `at step ${fmtInt(ev.step)}` : `at step ${fmtInt(ev.step)}; the model has trained since`) : '');
  if (!changed.has('evaluation') && !changed.has('tab')) return;
  if (!ev) {
    replaceChildren(view.score, h('p', { class: 'empty' }, 'Evaluate the model to see how often it is right, and where it goes wrong.'));
    replaceChildren(view.matrix);
    replaceChildren(view.gallery);
    setText(view.galleryNote, '');
    return;
  }
  const classes = ev.classes || model.classes;
  const total = ev.confusion_matrix.flat().reduce((a, b) => a + b, 0);
  replaceChildren(view.score,
    h('div', { class: 'big-number' }, h('span', { class: 'big-value' }, fmtPct(ev.accuracy)), h('span', { class: 'big-label' }, 'test accuracy')),
    h('div', { class: 'big-number' }, h('span', { class: 'big-value' }, fmt(ev.loss)), h('span', { class: 'big-label' }, 'test loss')),
    h('div', { class: 'big-number' }, h('span', { class: 'big-value' }, fmtInt(total)), h('span', { class: 'big-label' }, 'test images')));
  view.cellBox.hidden = true;
  drawMatrix(view, ev, classes);
  drawGallery(view, state, ev, classes);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {any} ev
 * @param {string[]} classes
 */
function drawMatrix(view, ev, classes) {
  const cm = /** @type {number[][]} */ (ev.confusion_matrix);
  const table = h('table', { class: 'cm' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'cm-corner' }, 'true ↓ / predicted →'),
      classes.map((c) => h('th', { scope: 'col', class: 'cm-col', title: prettyClass(c) }, h('span', {}, prettyClass(c)))),
      h('th', { scope: 'col', class: 'cm-acc' }, 'accuracy'))),
    h('tbody', {}, cm.map((rowVals, i) => {
      const n = rowVals.reduce((a, b) => a + b, 0) || 1;
      return h('tr', {},
        h('th', { scope: 'row', class: 'cm-row' }, prettyClass(classes[i])),
        rowVals.map((v, j) => {
          const frac = v / n;
          const td = h('td', { class: `cm-cell${i === j ? ' cm-diag' : ''}`, title: `true ${prettyClass(classes[i])}, predicted ${prettyClass(classes[j])}: ${v} (${fmtPct(frac)} of the row)${v ? '; click for the examples' : ''}` }, v ? String(v) : '');
          if (v) {
            Object.assign(td, { tabIndex: 0, onclick: () => showCell(view, ev, classes, i, j) });
            td.setAttribute('role', 'button');
            td.dataset.cell = `${i},${j}`;
            td.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), showCell(view, ev, classes, i, j)));
            const alpha = 0.1 + 0.9 * frac;
            td.style.backgroundColor = `rgba(${i === j ? CORRECT : WRONG}, ${alpha.toFixed(3)})`;
            td.style.color = alpha > 0.5 ? '#fff' : '#1b1f27';
          }
          return td;
        }),
        h('td', { class: 'cm-acc' }, ev.per_class_accuracy?.[i] == null ? '–' : fmtPct(ev.per_class_accuracy[i])));
    })));
  const key = (/** @type {string} */ rgb, /** @type {string} */ text) => {
    const bar = h('span', { class: 'cm-key-bar' });
    bar.style.backgroundImage = `linear-gradient(to right, rgba(${rgb}, 0.1), rgba(${rgb}, 1))`;
    return h('span', { class: 'cm-key-item' }, h('span', {}, text), h('span', { class: 'cm-key-scale' }, '0%', bar, '100%'));
  };
  replaceChildren(view.matrix, table, h('div', { class: 'cm-key', role: 'img', 'aria-label': 'Cell colour: share of the true class, 0 to 100 percent' },
    key(CORRECT, 'right'), key(WRONG, 'wrong')));
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {any} ev
 * @param {string[]} classes
 */
function drawGallery(view, state, ev, classes) {
  const wrong = /** @type {any[]} */ (ev.misclassified || []);
  const ds = state.model?.dataset;
  setText(view.galleryNote, wrong.length ? `${fmtInt(wrong.length)}${wrong.length > GALLERY ? `, the first ${GALLERY} shown` : ''}: true class → predicted (confidence). Click one to run it through the network.` : 'None: every test image is classified correctly.');
  replaceChildren(view.gallery, wrong.slice(0, GALLERY).map((m) => thumb(view, ds, ev, classes, m)));
}

/**
 * List the examples of one confusion cell (the first ones the server sent) under the matrix's side.
 * @param {ReturnType<typeof mount>} view
 * @param {any} ev
 * @param {string[]} classes
 * @param {number} i true class
 * @param {number} j predicted class
 */
function showCell(view, ev, classes, i, j) {
  const idx = /** @type {number[]} */ (ev.cell_examples?.[i]?.[j] || []);
  const n = ev.confusion_matrix[i][j];
  view.cellBox.hidden = false;
  view.matrix.querySelectorAll('[data-cell]').forEach((td) => td.classList.toggle('is-picked', td.getAttribute('data-cell') === `${i},${j}`));
  setText(view.cellNote, `True ${prettyClass(classes[i])}, predicted ${prettyClass(classes[j])}: ${fmtInt(n)} image${n === 1 ? '' : 's'}${idx.length < n ? `, the first ${idx.length} shown` : ''}. Click one to run it through the network.`);
  const ds = view.ctx.store.get().model?.dataset;
  replaceChildren(view.cellImages, idx.map((index) => thumb(view, ds, ev, classes, { index, label: i, prediction: j, confidence: null })));
  view.cellBox.scrollIntoView({ block: 'nearest' });
}

/**
 * One test image as a button that runs it through the network.
 * @param {ReturnType<typeof mount>} view
 * @param {string} ds the dataset's name
 * @param {any} ev
 * @param {string[]} classes
 * @param {{index: number, label: number, prediction: number, confidence: number | null}} m
 */
function thumb(view, ds, ev, classes, m) {
  const { api, actions } = view.ctx;
  return h('button', {
    type: 'button', class: 'mis', dataset: { index: String(m.index) }, 'aria-label': `Test image ${m.index}: ${prettyClass(classes[m.label])} predicted as ${prettyClass(classes[m.prediction])}`,
    on: {
      click: async () => {
        if (await actions.runInput({ kind: 'sample', split: ev.split || 'test', index: m.index, label: m.label })) {
          document.getElementById('overview')?.scrollIntoView({ behavior: 'smooth', block: 'start' });
        }
      },
    },
  },
  h('img', { src: api.sampleUrl(ds, ev.split || 'test', m.index), alt: '', width: '56', height: '56', loading: 'lazy' }),
  h('span', { class: 'mis-true' }, prettyClass(classes[m.label])),
  h('span', { class: 'mis-pred' }, `→ ${prettyClass(classes[m.prediction])}`),
  h('span', { class: 'mis-conf' }, m.confidence != null ? fmtPct(m.confidence) : ''));
}
