// @ts-check
/**
 * Step 9, beyond classification: localization (Grad-CAM's map and the engine's box around where it
 * is hot, POST .../learn/localize), transfer learning for real (POST /models with `transfer`: the
 * conv layers and their weights kept and frozen, a new head for another dataset, then trained), and
 * data augmentation (GET .../train/batch: the next batch and what was done to each image).
 */
import { drawInput } from '../../canvas.js';
import { h, replaceChildren } from '../../dom.js';
import { prettyClass } from '../../format.js';
import { needsFetch } from './freshness.js';
import { box, choice, framedCanvas, num, say, showMap } from './ui.js';

export const id = 'beyond';
export const title = 'Beyond classification: where, transfer, augmentation';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ state: null, seq: 0, key: '', /** @type {any} */ copy: null,
    where: h('section', { class: 'lm-section', dataset: { learn: 'localize' } }),
    transfer: h('section', { class: 'lm-section', dataset: { learn: 'transfer' } }),
    augment: h('section', { class: 'lm-section', dataset: { learn: 'augment' } }),
    image: framedCanvas('the input image with the box', 200),
    cam: framedCanvas('Grad-CAM map with the box', 200),
  };
  root.append(
    say('A network trained only to name what is in an image has also learned where it is, and what it learned can be reused on other data.'),
    view.where, view.transfer, view.augment,
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
  const { model } = state;
  const modelChanged = Boolean(model) && !view.key.startsWith(`${model?.id}|`);
  if (!model || !needsFetch(view, state, changed)) return;
  localize(view);
  if (modelChanged) {
    view.copy = null;
    showTransfer(view);
    showBatch(view, model.read_only ? null : model);
  }
}

/** @param {ReturnType<typeof mount>} view */
async function localize(view) {
  const { model, input, forward } = view.state;
  const threshold = Number(view.ctx.link.params.threshold ?? 0.5);
  const seq = ++view.seq;
  let r;
  try {
    r = await view.ctx.api.learnLocalize(model.id, input, { threshold });
  } catch (err) {
    view.ctx.actions.fail(err);
    return;
  }
  if (seq !== view.seq) return;
  const [H, W] = r.map.shape;
  drawInput(view.image.canvas, forward.input);
  view.image.canvas.style.width = `${view.image.px}px`;
  view.image.canvas.style.height = `${Math.round((view.image.px * H) / W)}px`;
  showMap(view.cam, r.map.data, [1, H, W], 0, { lo: 0, hi: 1 });
  const b = r.box;
  const rect = b && { top: b.top, left: b.left, height: b.bottom - b.top + 1, width: b.right - b.left + 1 };
  box(view.image, 'picked', rect, H, W);
  box(view.cam, 'picked', rect, H, W);
  const pick = choice('threshold', [[0.3, '30% of the peak'], [0.5, '50% of the peak'], [0.7, '70% of the peak']], (v) => {
    view.ctx.link.set({ threshold: v });
    localize(view);
  });
  pick.value = String(threshold);
  replaceChildren(view.where, h('h3', { text: 'Where is it? Localization' }),
    say(`Grad-CAM (layer ${r.layer}) shows which parts of the image speak for “${prettyClass(r.class)}”. Keep the cells where the map reaches a share of its peak, and draw the smallest box around them: a rough answer to “where”, from a model never shown a single box.`),
    h('div', { class: 'lm-controls' }, pick),
    h('div', { class: 'lm-figures' }, h('figure', {}, view.image.frame, h('figcaption', { text: 'the image' })),
      h('figure', {}, view.cam.frame, h('figcaption', { text: 'Grad-CAM' }))),
    b ? h('p', { dataset: { learn: 'box', top: String(b.top), left: String(b.left), bottom: String(b.bottom), right: String(b.right) } },
      `Box: rows ${b.top}–${b.bottom}, columns ${b.left}–${b.right} of ${H}×${W} (${b.cells} cells at or above ${num(b.cutoff)}).`)
      : say('The map is empty: nothing in this image speaks for the class, so there is no box.'),
    say('Real detectors learn boxes from labelled boxes; this only shows that the knowledge of “where” is already in a classifier.'));
}

/** @param {ReturnType<typeof mount>} view */
function showTransfer(view) {
  const { model, datasets } = view.state;
  const names = (datasets || []).map((/** @type {any} */ d) => d.name);
  if (!names.length || !model.dataset) {
    replaceChildren(view.transfer, h('h3', { text: 'Transfer learning' }), say('There is no dataset to transfer this model to.'));
    return;
  }
  const pick = choice('transfer-dataset', names.map((/** @type {string} */ n) => [n, n]), () => {});
  const wanted = view.ctx.link.params.to;
  pick.value = names.includes(wanted) ? wanted : (names.find((/** @type {string} */ n) => n !== model.dataset) ?? names[0]);
  const result = h('div', { dataset: { learn: 'transfer-result' } });
  const go = h('button', { type: 'button', dataset: { learn: 'transfer-go' }, text: 'Make a transfer copy',
    on: { click: () => makeCopy(view, pick.value, result) } });
  replaceChildren(view.transfer, h('h3', { text: 'Transfer learning' }),
    say('The first layers of a trained network find edges, colours and simple shapes, which are useful for almost any images. Transfer learning keeps them, with their weights, and replaces only the end: a new dense layer sized for the new classes. The kept layers are frozen (they do not change in training), so the new head learns quickly from little data.'),
    say('The copy must take the same number of colour channels (the first filters have one slice per channel); another image size is fine where the kept layers still fit.'),
    h('div', { class: 'lm-controls' }, h('label', {}, 'new dataset ', pick), go), result);
}

/** @param {ReturnType<typeof mount>} view @param {string} dataset @param {HTMLElement} out */
async function makeCopy(view, dataset, out) {
  const { api, actions, link } = view.ctx;
  const { model } = view.state;
  link.set({ to: dataset });
  let copy;
  try {
    copy = await api.createModel({ from: model.id, dataset, transfer: true, name: `${model.name} → ${dataset} (transfer)` });
  } catch (err) {
    replaceChildren(out, h('p', { class: 'lm-error', dataset: { learn: 'transfer-error' }, text: err.detail || String(err) }));
    return;
  }
  view.copy = copy;
  await actions.refreshModels?.();
  const frozen = new Set(copy.frozen);
  const rows = copy.layers.map((/** @type {any} */ l) => h('li', { dataset: { learn: 'transfer-layer', layer: String(l.index), frozen: String(frozen.has(l.index)) } },
    `${l.index}. ${l.type} → ${l.output_shape.join('×')}${frozen.has(l.index) ? ' — kept, frozen ❄' : l.parameters ? ' — new, learns' : ''}`));
  const train = h('button', { type: 'button', dataset: { learn: 'transfer-train' }, text: 'Train the new head 20 steps',
    on: { click: () => trainCopy(view, copy, out) } });
  replaceChildren(out, say(`Made “${copy.name}” (${copy.id}) for ${copy.classes.length} classes of ${dataset}: ${copy.classes.map(prettyClass).join(', ')}.`),
    h('ul', { class: 'lm-text' }, rows), h('div', { class: 'lm-controls' }, train),
    h('p', { dataset: { learn: 'transfer-loss' } }));
  showBatch(view, copy);
}

/** @param {ReturnType<typeof mount>} view @param {any} copy @param {HTMLElement} out */
async function trainCopy(view, copy, out) {
  const line = /** @type {HTMLElement} */ (out.querySelector('[data-learn="transfer-loss"]'));
  line.textContent = 'Training…';
  try {
    const r = await view.ctx.api.train(copy.id, { steps: 20 });
    const ok = r.loss.filter((/** @type {any} */ v) => v !== null);
    line.textContent = `Step ${r.step}: loss ${num(ok[0] ?? NaN)} → ${num(ok.at(-1) ?? NaN)}; the frozen layers did not change, only the new head learned.`;
    line.dataset.step = String(r.step);
  } catch (err) {
    line.textContent = '';
    view.ctx.actions.fail(err);
  }
}

/**
 * The next training batch of a writable model (the shipped models are read-only: they have no trainer).
 * @param {ReturnType<typeof mount>} view @param {any} model
 */
async function showBatch(view, model) {
  const head = [h('h3', { text: 'Data augmentation' }),
    say('Augmentation changes each training image a little every time it is seen (a flip, a shift, a change of brightness) so the model cannot learn the exact pixels by heart and must learn the shape itself.')];
  if (!model) {
    replaceChildren(view.augment, ...head, say('This model is a shipped, read-only one and does not train. Make a transfer copy above (or copy it) to see the batch its next step will train on.'));
    return;
  }
  let r;
  try {
    r = await view.ctx.api.trainBatch(model.id, 8);
  } catch (err) {
    replaceChildren(view.augment, ...head, h('p', { class: 'lm-error', text: err.detail || String(err) }));
    return;
  }
  const [n, C, H, W] = r.images.shape;
  const size = C * H * W;
  const figs = [];
  for (let i = 0; i < n; i++) {
    const canvas = h('canvas', { class: 'lm-canvas', role: 'img', 'aria-label': `training image ${r.indices[i]}` });
    drawInput(canvas, { shape: [1, C, H, W], data: r.images.data.subarray(i * size, (i + 1) * size) });
    canvas.style.width = '72px';
    const t = (r.transforms[i] || []).map((/** @type {any} */ x) => describe(x)).join(', ') || 'unchanged';
    figs.push(h('figure', { dataset: { learn: 'batch-image', transforms: String((r.transforms[i] || []).length) } }, canvas,
      h('figcaption', {}, `${prettyClass(r.classes[r.labels[i]] ?? '')}: ${t}`)));
  }
  const on = h('button', { type: 'button', dataset: { learn: 'augment-on' }, text: 'Turn augmentation on', on: { click: async () => {
    try {
      await view.ctx.api.patchModel(model.id, { training: { augment: true } });
      showBatch(view, { ...model, training: { ...model.training, augment: true } });
    } catch (err) {
      view.ctx.actions.fail(err);
    }
  } } });
  replaceChildren(view.augment, ...head,
    say(`The next ${n} images of “${model.name}”’s next step (${r.step + 1}), ${r.augment ? 'augmented' : 'as they are: augmentation is off'}:`),
    r.augment ? '' : h('div', { class: 'lm-controls' }, on),
    h('div', { class: 'lm-figures', dataset: { learn: 'batch' } }, figs));
}

/** One transform in words. @param {Record<string, any>} t */
function describe(t) {
  const rest = Object.entries(t).filter(([k]) => k !== 'name').map(([k, v]) => `${k} ${typeof v === 'number' ? num(v, 2) : v}`);
  return rest.length ? `${t.name} (${rest.join(', ')})` : String(t.name);
}
