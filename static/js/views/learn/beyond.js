// @ts-check
/**
 * Step 9, beyond classification: localization (Grad-CAM's map and the engine's box around the spot
 * that holds its peak, POST .../learn/localize, at a threshold the reader sets), transfer learning
 * for real (POST /models with `transfer`: the conv layers and their weights kept and frozen, a new
 * head for another dataset, then trained), and data augmentation (GET .../train/batch: the next batch
 * and what was done to each image).
 */
import { drawInput } from '../../canvas.js';
import { debounce, h, replaceChildren, setText } from '../../dom.js';
import { prettyClass } from '../../format.js';
import { needsFetch } from './freshness.js';
import { box, choice, framedCanvas, num, say, showMap } from './ui.js';

export const id = 'beyond';
export const title = 'Beyond classification: where, transfer, augmentation';

/** The threshold slider's range, as shares of the map's peak. */
const LOW = 0.1;
const HIGH = 0.9;

/** @param {string | undefined} v the link's threshold */
function thresholdOf(v) {
  const t = Number(v);
  return v !== undefined && Number.isFinite(t) ? Math.min(HIGH, Math.max(LOW, Math.round(t * 20) / 20)) : 0.5;
}

/** @param {number} t */
const pct = (t) => `${Math.round(t * 100)}%`;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const threshold = thresholdOf(ctx.link.params.threshold);
  const slider = h('input', { type: 'range', min: String(LOW), max: String(HIGH), step: '0.05', value: String(threshold),
    dataset: { learn: 'threshold' }, 'aria-label': 'Threshold, as a share of the map’s peak' });
  const view = {
    root, ctx, /** @type {any} */ state: null, seq: 0, key: '', /** @type {any} */ copy: null, threshold, slider,
    where: h('section', { class: 'lm-section', dataset: { learn: 'localize' } }),
    transfer: h('section', { class: 'lm-section', dataset: { learn: 'transfer' } }),
    augment: h('section', { class: 'lm-section', dataset: { learn: 'augment' } }),
    image: framedCanvas('the input image with the box', 200),
    cam: framedCanvas('Grad-CAM map with the box', 200),
    shown: h('output', { dataset: { learn: 'threshold-value' } }),
    lead: say(''),
    result: h('div', { dataset: { learn: 'box-result' } }),
  };
  const later = debounce(() => localize(view), 120);
  slider.addEventListener('input', () => {
    view.threshold = Number(slider.value);
    showThreshold(view);
    ctx.link.set({ threshold: view.threshold });
    later();
  });
  showThreshold(view);
  view.where.append(h('h3', { text: 'Where is it? Localization' }), view.lead,
    h('div', { class: 'lm-controls' }, h('label', { class: 'field' }, h('span', { class: 'field-label', text: 'Threshold' }), slider), view.shown),
    h('div', { class: 'lm-figures' }, h('figure', {}, view.image.frame, h('figcaption', { text: 'The image' })),
      h('figure', {}, view.cam.frame, h('figcaption', { text: 'Grad-CAM: white is hot, red marks the peak' }))),
    view.result,
    say('Real detectors learn their boxes from images with boxes drawn on them. This one comes from a model that was only ever told the class.'));
  root.append(
    say('A network trained only to name what is in an image has also learned where it is, and what it learned can be reused on other data.'),
    view.where, view.transfer, view.augment,
  );
  return view;
}

/** @param {ReturnType<typeof mount>} view */
function showThreshold(view) {
  setText(view.shown, `${pct(view.threshold)} of the peak`);
  view.shown.dataset.value = String(view.threshold);
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
  const threshold = view.threshold;
  const seq = ++view.seq;
  let r;
  try {
    r = await view.ctx.api.learnLocalize(model.id, input, { threshold });
  } catch (err) {
    if (seq === view.seq) view.ctx.actions.fail(err);
    return;
  }
  if (seq !== view.seq) return;
  const [H, W] = r.map.shape;
  drawInput(view.image.canvas, forward.input);
  view.image.canvas.style.width = `${view.image.px}px`;
  view.image.canvas.style.height = `${Math.round((view.image.px * H) / W)}px`;
  showMap(view.cam, r.map.data, [1, H, W], 0, { lo: 0, hi: 1, cmap: 'gray' });
  const b = r.box;
  const rect = b && { top: b.top, left: b.left, height: b.bottom - b.top + 1, width: b.right - b.left + 1 };
  const peak = b && { top: b.peak_row, left: b.peak_col, height: 1, width: 1 };
  for (const fc of [view.image, view.cam]) {
    box(fc, 'picked', rect, H, W);
    box(fc, 'peak', peak, H, W);
  }
  setText(view.lead, `Grad-CAM takes the maps of the last layer that still has maps (layer ${r.layer}), weighs each by how much it raises the score of “${prettyClass(r.class)}”, `
    + 'adds them up and keeps the positive part: the result is bright where the image speaks for that class. To turn it into a box, start at its hottest pixel, spread to every neighbour '
    + '(up, down, left, right) that reaches the threshold, and draw the smallest box around that spot. Hot pixels in separate spots are left out.');
  if (!b) {
    replaceChildren(view.result, say('The map is empty: nothing in this image speaks for the class, so there is no box.'));
    return;
  }
  const others = b.hot - b.cells;
  const share = ((b.bottom - b.top + 1) * (b.right - b.left + 1)) / (H * W);
  replaceChildren(view.result,
    h('p', { dataset: { learn: 'box', top: String(b.top), left: String(b.left), bottom: String(b.bottom), right: String(b.right),
      cells: String(b.cells), hot: String(b.hot) } },
    `Box: rows ${b.top}–${b.bottom}, columns ${b.left}–${b.right} of the ${H}×${W} image. `
      + `${b.cells} pixels reach ${num(b.cutoff, 2)} (${pct(threshold)} of the peak) and are joined to the peak`
      + (others ? `; ${others} more reach it in separate spots and are left out.` : '; no other pixel reaches it.')),
    share > 0.6 ? say('The box covers most of the image: the map is warm almost everywhere, so the model uses the background too. Raise the threshold to find its hottest part.')
      : say('Move the threshold: lower, the spot grows and may run into others; higher, only the hottest pixels remain.'));
}

/** @param {ReturnType<typeof mount>} view */
function showTransfer(view) {
  const { model, datasets } = view.state;
  const names = (datasets || []).map((/** @type {any} */ d) => d.name);
  if (!names.length || !model.dataset) {
    replaceChildren(view.transfer, h('h3', { text: 'Transfer learning' }), say('There is no dataset to transfer this model to.'));
    return;
  }
  /** @type {Array<[string, string]>} */
  const options = (datasets || []).map((/** @type {any} */ d) => [d.name,
    d.input_shape ? `${d.name} (${d.input_shape.join('×')}, ${d.num_classes ?? d.classes?.length ?? '?'} classes)` : d.name]);
  const pick = choice('transfer-dataset', options, () => {});
  const wanted = view.ctx.link.params.to;
  // by default another dataset with as many colour channels (the kept first layer needs them), else the model's own
  const fits = (datasets || []).find((/** @type {any} */ d) => d.name !== model.dataset && d.input_shape?.[0] === model.spec.input_shape[0]);
  pick.value = names.includes(wanted) ? wanted : (fits?.name ?? model.dataset);
  const result = h('div', { dataset: { learn: 'transfer-result' } });
  const go = h('button', { type: 'button', dataset: { learn: 'transfer-go' }, text: 'Make a transfer copy',
    on: { click: () => makeCopy(view, pick.value, result) } });
  replaceChildren(view.transfer, h('h3', { text: 'Transfer learning' }),
    say('The conv layers of a trained network have learned to find edges, colours and small shapes, which help with other images too. Transfer learning keeps those layers with their weights and replaces only the end: a new dense layer sized for the new classes. The kept layers are frozen (training does not change them), so only the new head learns, quickly and from little data.'),
    say('The new data must have as many colour channels (each first-layer filter has one slice per channel); another image size works as long as the kept layers still fit.'),
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
