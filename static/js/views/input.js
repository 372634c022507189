// @ts-check
/**
 * The input panel: what the network sees (the preprocessed input, with the hovered unit's
 * receptive field outlined), the prediction, and every way to give it an image: file picker,
 * drag and drop, paste, a drawing pad and a strip of samples from the model's dataset.
 */
import { drawInput, drawMap } from '../canvas.js';
import { h, replaceChildren, setText } from '../dom.js';
import { createDrawPad } from '../drawpad.js';
import { fmtPct, fmtShape, prettyClass } from '../format.js';
import { mapScale } from './explain/methods.js';
import { createExplainPanel } from './explain/panel.js';

const STRIP = 10;
const DRAWING = 'your drawing';

/** @param {import('../state.js').InputRef | null} input */
const isDrawing = (input) => input?.kind === 'image' && input.name === DRAWING;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const { actions } = ctx;
  const canvas = h('canvas', { class: 'input-canvas', 'aria-label': 'The input as the network sees it' });
  const overlay = h('canvas', { class: 'input-explain', hidden: true, 'aria-hidden': 'true' });
  const rf = h('div', { class: 'rf-box', hidden: true, 'aria-hidden': 'true' });
  const stage = h('div', { class: 'input-stage' }, canvas, overlay, rf);
  const explain = createExplainPanel(ctx, {
    onOpacity: (v) => {
      overlay.style.opacity = String(v);
    },
  });
  const name = h('span', { class: 'input-name' });
  const caption = h('p', { class: 'input-caption' });
  const origin = createOrigin(ctx);
  const prediction = h('p', { class: 'prediction', 'aria-live': 'polite' });
  const file = h('input', { type: 'file', accept: 'image/*', class: 'visually-hidden', id: 'file-input', 'aria-label': 'Choose an image file' });
  // Clear goes back to the input shown before the drawing (the drawing is gone, so is its prediction).
  const pad = createDrawPad({
    onDrawn: (png) => actions.upload(png, DRAWING),
    onClear: () => {
      const { input } = ctx.store.get();
      if (isDrawing(input) && view.beforeDrawing) actions.runInput(view.beforeDrawing);
    },
  });
  pad.el.hidden = true;
  const drawBtn = h('button', { type: 'button', class: 'btn', 'aria-expanded': 'false', 'aria-controls': 'drawpad' }, 'Draw');
  pad.el.id = 'drawpad';
  drawBtn.addEventListener('click', () => {
    pad.el.hidden = !pad.el.hidden;
    drawBtn.setAttribute('aria-expanded', String(!pad.el.hidden));
  });
  const strip = h('div', { class: 'samples', role: 'group', 'aria-label': 'Samples from the dataset' });
  const stripTitle = h('h3', { class: 'subhead' }, 'Samples');
  const shuffle = h('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Show other samples' }, 'Shuffle');

  const dropzone = h(
    'div',
    { class: 'dropzone' },
    h('div', { class: 'input-actions' },
      file,
      h('label', { class: 'btn btn-primary', for: 'file-input' }, 'Upload image'),
      drawBtn),
    h('p', { class: 'hint' }, 'or drop or paste an image here'),
  );
  root.append(
    h('div', { class: 'panel-head' }, h('h2', {}, 'Input'), name),
    stage,
    caption,
    origin.el,
    prediction,
    explain.el,
    dropzone,
    pad.el,
    h('div', { class: 'panel-head' }, stripTitle, shuffle),
    strip,
  );

  const view = { root, ctx, canvas, overlay, rf, stage, explain, name, caption, origin, prediction, strip, stripTitle, scale: 1, datasetKey: '', split: 'test', beforeDrawing: /** @type {import('../state.js').InputRef | null} */ (null), indices: /** @type {number[]} */ ([]) };

  /** @param {File | null | undefined} f @param {string} [name] */
  const send = (f, name) => {
    if (f && !ctx.library.imageTooBig(f)) actions.upload(f, name || f.name);
  };
  file.addEventListener('change', () => {
    send(file.files?.[0]);
    file.value = '';
  });
  shuffle.addEventListener('click', () => fillStrip(view, ctx.store.get(), true));
  root.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    root.classList.add('is-dragging');
  });
  root.addEventListener('dragleave', (ev) => {
    if (!root.contains(/** @type {Node} */ (ev.relatedTarget))) root.classList.remove('is-dragging');
  });
  root.addEventListener('drop', (ev) => {
    ev.preventDefault();
    root.classList.remove('is-dragging');
    send(ev.dataTransfer?.files?.[0]);
  });
  document.addEventListener('paste', (ev) => {
    const item = Array.from(ev.clipboardData?.items || []).find((i) => i.kind === 'file');
    const f = item?.getAsFile();
    if (f) {
      ev.preventDefault();
      send(f, f.name || 'pasted image');
    }
  });
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  const { forward, model, input } = state;
  if (changed.has('dataset') || changed.has('model')) fillStrip(view, state, false);
  view.explain.render(state, changed);
  if (!forward || !model) return;
  if (changed.has('forward')) {
    const [, c, hh, ww] = forward.input.shape;
    const scale = Math.max(1, Math.floor(232 / Math.max(hh, ww)));
    view.scale = scale;
    drawInput(view.canvas, forward.input);
    view.canvas.style.width = `${ww * scale}px`;
    view.canvas.style.height = `${hh * scale}px`;
    view.stage.style.width = `${ww * scale}px`;
    view.stage.style.height = `${hh * scale}px`;
    setText(view.caption, `What the network sees: ${fmtShape([c, hh, ww])} ${c === 3 ? 'RGB' : 'grey'}, values 0–1`);
    const p = forward.prediction;
    const truth = forward.label ?? /** @type {any} */ (input)?.label;
    const known = typeof truth === 'number' && model.classes[truth] !== undefined;
    replaceChildren(view.prediction,
      h('span', { class: 'prediction-line' },
        h('span', { class: 'prediction-label' }, 'Prediction'),
        h('span', { class: 'prediction-prob' }, fmtPct(p.probability))),
      h('strong', { title: prettyClass(p.class) }, prettyClass(p.class)),
      h('span', { class: `truth ${known ? (truth === p.index ? 'ok' : 'wrong') : ''}` },
        known ? (truth === p.index ? '✓ the true class' : `✗ the true class is ${prettyClass(model.classes[/** @type {number} */ (truth)])}`) : 'true class unknown'));
  }
  if (changed.has('input') && input && !isDrawing(input)) view.beforeDrawing = input;
  if (changed.has('input') && input) {
    setText(view.name, input.kind === 'sample' ? `${input.split} sample #${input.index}` : input.name);
    markSample(view, input);
  }
  if (changed.has('input') || changed.has('model')) view.origin.show(input, model.spec.input_shape);
  if (changed.has('hover') || changed.has('forward')) drawRF(view, state);
  if (changed.has('explanation')) drawExplanation(view, state);
}

/**
 * An uploaded image as sent, with what the model does not see shaded (crop) or the black bars it
 * gets (fit: pad), and the crop/fit toggle. Geometry as `engine.data.images.to_uint8_chw`.
 * @param {any} ctx
 */
function createOrigin(ctx) {
  const img = h('img', { class: 'origin-img', alt: 'The uploaded image as sent' });
  const shade = h('canvas', { class: 'origin-shade', 'aria-hidden': 'true' });
  const box = h('div', { class: 'origin-stage' }, img, shade);
  const note = h('p', { class: 'hint', dataset: { originNote: '' } });
  const buttons = ['crop', 'pad'].map((fit) => h('button', { type: 'button', class: 'btn btn-small', dataset: { fit }, 'aria-pressed': 'false' }, fit === 'crop' ? 'Crop' : 'Fit (pad)'));
  const el = h('div', { class: 'input-origin', hidden: true, role: 'group', 'aria-label': 'The uploaded image and how it is fitted' },
    box, h('div', { class: 'row', role: 'group', 'aria-label': 'Crop or fit' }, buttons), note);
  Object.assign(box.style, { position: 'relative', display: 'inline-block', lineHeight: '0' });
  Object.assign(img.style, { maxWidth: '232px', maxHeight: '140px' });
  Object.assign(shade.style, { position: 'absolute', inset: '0', width: '100%', height: '100%', pointerEvents: 'none' });
  /** @type {any} */
  let ref = null;
  let shape = [1, 1, 1];
  const draw = () => {
    const [, H, W] = shape;
    const nw = img.naturalWidth;
    const nh = img.naturalHeight;
    if (!ref || !nw || !nh) return;
    const fit = ref.fit === 'pad' ? 'pad' : 'crop';
    const pick = fit === 'crop' ? Math.max : Math.min;
    const scale = pick(H / nh, W / nw);
    const sw = pick(W, Math.max(1, Math.round(nw * scale)));
    const sh = pick(H, Math.max(1, Math.round(nh * scale)));
    shade.width = nw;
    shade.height = nh;
    const g = /** @type {CanvasRenderingContext2D} */ (shade.getContext('2d'));
    g.clearRect(0, 0, nw, nh);
    const same = sw === W && sh === H;
    if (fit === 'crop' && !same) { // shade what the centre crop cuts away
      const left = Math.floor((sw - W) / 2) / scale;
      const top = Math.floor((sh - H) / 2) / scale;
      g.fillStyle = 'rgba(15, 18, 25, 0.6)';
      g.fillRect(0, 0, nw, nh);
      g.clearRect(left, top, W / scale, H / scale);
      g.strokeStyle = '#f97316';
      g.lineWidth = Math.max(1, nw / 120);
      g.strokeRect(left, top, W / scale, H / scale);
    }
    setText(note, same ? `${nw}×${nh} pixels, the model's aspect ratio: nothing is cropped or padded.`
      : fit === 'crop' ? `${nw}×${nh} pixels: the shaded margins are cut off to make ${W}×${H}. Fit shows the whole image instead.`
        : `${nw}×${nh} pixels: the whole image, scaled to ${sw}×${sh} and padded with black to ${W}×${H}.`);
    buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.fit === fit)));
  };
  img.addEventListener('load', draw);
  buttons.forEach((b) => b.addEventListener('click', () => {
    if (ref && (ref.fit || 'crop') !== b.dataset.fit) ctx.actions.runInput({ ...ref, fit: b.dataset.fit });
  }));
  return {
    el,
    /** @param {any} input @param {number[]} inputShape */
    show(input, inputShape) {
      el.hidden = input?.kind !== 'image';
      if (el.hidden) return;
      ref = input;
      shape = inputShape;
      const src = ctx.api.imageUrl(input.id);
      if (img.getAttribute('src') !== src) img.src = src;
      else draw();
    },
  };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 */
function drawRF(view, state) {
  const rect = state.hover?.rect;
  if (!rect) {
    view.rf.hidden = true;
    return;
  }
  const k = view.scale;
  view.rf.hidden = false;
  view.rf.style.transform = `translate(${rect.left * k}px, ${rect.top * k}px)`;
  view.rf.style.width = `${rect.width * k}px`;
  view.rf.style.height = `${rect.height * k}px`;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 */
function drawExplanation(view, state) {
  /** @type {any} */
  const ex = state.explanation;
  if (!ex) {
    view.overlay.hidden = true;
    return;
  }
  const [hh, ww] = ex.map.shape;
  const sc = mapScale(ex.map.data, ex.signed);
  drawMap(view.overlay, ex.map.data, 0, hh, ww, sc.lo, sc.hi, sc.cmap);
  view.overlay.style.width = view.canvas.style.width;
  view.overlay.style.height = view.canvas.style.height;
  view.overlay.hidden = false;
}

/**
 * Press the strip's button of the input, if it is one of them.
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').InputRef | null} input
 */
function markSample(view, input) {
  view.strip.querySelectorAll('button').forEach((b) => b.setAttribute('aria-pressed',
    String(input?.kind === 'sample' && input.split === b.dataset.split && Number(b.dataset.index) === input.index)));
}

/**
 * Fill the sample strip with test images of the model's dataset (training images when it has no test split).
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {boolean} shuffle
 */
function fillStrip(view, state, shuffle) {
  const ds = state.dataset;
  const model = state.model;
  if (!ds || !model) return;
  const key = `${ds.name}`;
  if (key === view.datasetKey && !shuffle) return;
  view.datasetKey = key;
  // The test split, or the training split when the test split is empty (sizes unknown: assume a full strip).
  const split = ds.sizes?.test === 0 ? 'train' : 'test';
  view.split = split;
  const total = ds.sizes ? Number(ds.sizes[split] ?? 0) : STRIP;
  const n = Math.min(STRIP, total);
  view.indices = shuffle ? Array.from({ length: n }, () => Math.floor(Math.random() * total)) : Array.from({ length: n }, (_, i) => i);
  setText(view.stripTitle, `Samples · ${ds.name}${split === 'train' ? ' · training split' : ''}`);
  const { api, actions } = view.ctx;
  replaceChildren(view.strip, view.indices.map((index) =>
    h('button', {
      type: 'button', class: 'sample', dataset: { index: String(index), split }, 'aria-label': `${split === 'test' ? 'Test' : 'Training'} sample ${index}`,
      on: { click: () => actions.runInput({ kind: 'sample', split, index }) },
    }, h('img', { src: api.sampleUrl(ds.name, split, index), alt: '', width: '44', height: '44', loading: 'lazy' }))));
  markSample(view, state.input);
}
