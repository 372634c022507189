// @ts-check
/**
 * "What this unit looks for", under the channel detail: the 9 images of the model's dataset that
 * excite the selected channel most (crops of where it fired, with deconvnet projections), and a
 * dreamed image that excites it (activation maximization). Only for layers with maps.
 * The search over the dataset is cached by the server until the weights change, so moving between
 * channels of the same layer asks again at once; a training step makes the shown result stale.
 */
import { h, setText } from '../../dom.js';
import { fmt, layerTitle } from '../../format.js';
import { clearGrid, createGrid, showItems } from './grid.js';
import { withProgress } from './poll.js';

const DREAM_STEPS = 96;

/** @param {any} ctx the page context (store, api) */
export function createUnit(ctx) {
  const findBtn = h('button', { type: 'button', class: 'btn btn-small', dataset: { lookfor: 'find' } }, 'Find its top 9 images');
  const dreamBtn = h('button', { type: 'button', class: 'btn btn-small', dataset: { lookfor: 'dream' } }, 'Dream it up');
  const progress = h('progress', { max: '1', value: '0', hidden: true, dataset: { lookfor: 'progress' }, 'aria-label': 'Search progress' });
  const note = h('p', { class: 'hint', dataset: { lookfor: 'note' }, 'aria-live': 'polite' });
  const grid = createGrid();
  const dreamImg = h('img', { class: 'lookfor-dream-img', alt: 'An image made up to excite this unit', dataset: { lookfor: 'dream-image' } });
  const dreamNote = h('p', { class: 'hint', dataset: { lookfor: 'dream-note' } });
  const dreamFig = h('figure', { class: 'lookfor-dream', hidden: true }, dreamImg, h('figcaption', {}, dreamNote));
  const dreamProgress = h('progress', { max: '1', value: '0', hidden: true, dataset: { lookfor: 'dream-progress' }, 'aria-label': 'Dream progress' });
  const title = h('h3', { class: 'detail-title' }, 'What this unit looks for');
  const el = h('section', { class: 'lookfor', hidden: true, 'aria-label': 'What this unit looks for', dataset: { view: 'lookfor' } },
    title,
    h('p', { class: 'hint' }, 'The dataset images that make this channel fire hardest, cut to the part it sees. '
      + 'Hover one to see which pixels drove it.'),
    h('div', { class: 'lookfor-row' }, findBtn, progress), note, grid.toggleLabel, grid.el,
    h('div', { class: 'lookfor-row' }, dreamBtn, dreamProgress), dreamFig);
  const unit = { ctx, el, findBtn, dreamBtn, progress, note, grid, dreamImg, dreamNote, dreamFig, dreamProgress,
    /** (model, layer, channel) shown */ key: '', step: -1, dreamKey: '', busy: false, seed: 0 };
  findBtn.addEventListener('click', () => findTop(unit, true));
  dreamBtn.addEventListener('click', () => dream(unit));
  return unit;
}

/** @typedef {ReturnType<typeof createUnit>} Unit */

/** @param {Unit} unit */
function target(unit) {
  const { model, selection: sel } = unit.ctx.store.get();
  if (!model || !sel) return null;
  return { id: model.id, step: model.step, layer: sel.layer, channel: sel.channel, key: `${model.id}:${sel.layer}:${sel.channel}` };
}

/**
 * @param {Unit} unit
 * @param {any} state
 */
export function renderUnit(unit, state) {
  const { model, selection: sel } = state;
  const info = model && sel ? model.layers[sel.layer] : null;
  const show = !!(info && info.output_shape.length === 3);
  unit.el.hidden = !show;
  if (!show) return;
  const t = /** @type {NonNullable<ReturnType<typeof target>>} */ (target(unit));
  if (t.key !== unit.key) {
    unit.key = t.key;
    unit.step = -1;
    clearGrid(unit.grid);
    unit.dreamFig.hidden = true;
    setText(unit.note, '');
    setText(unit.findBtn, `Find its top 9 images${model.dataset ? ` in ${model.dataset}` : ''}`);
    unit.findBtn.disabled = !model.dataset;
    if (!model.dataset) setText(unit.note, 'This model has no dataset to search.');
    else findTop(unit, false); // answered at once when this layer was searched at this step
  } else if (unit.step >= 0 && unit.step !== t.step) {
    setText(unit.note, `Found at step ${unit.step}; the weights have changed since. Search again to update.`);
  }
}

/**
 * Show the top 9 of the selected unit: `run` searches (with progress), otherwise only a cached answer is shown.
 * @param {Unit} unit
 * @param {boolean} run
 */
async function findTop(unit, run) {
  const t = target(unit);
  if (!t || (run && unit.busy)) return;
  const { api } = unit.ctx;
  const stale = () => target(unit)?.key !== t.key;
  try {
    if (!run) {
      const body = await api.unitTop(t.id, t.layer, t.channel);
      if (!stale() && body.status === 'done') show(unit, body);
      return;
    }
    unit.busy = true;
    unit.findBtn.disabled = true;
    unit.progress.hidden = false;
    unit.progress.value = 0;
    setText(unit.note, 'Searching the dataset…');
    const body = await withProgress(() => api.findUnitTop(t.id, t.layer, t.channel), () => api.unitTop(t.id, t.layer, t.channel),
      (done, total) => {
        unit.progress.value = done / total;
        setText(unit.note, `Searching the dataset: ${done.toLocaleString()} of ${total.toLocaleString()} images…`);
      }, stale);
    if (!stale() && body && body.status === 'done') show(unit, body);
  } catch (err) {
    if (!stale()) setText(unit.note, err instanceof Error ? err.message : String(err));
  } finally {
    if (run) {
      unit.busy = false;
      unit.findBtn.disabled = false;
      unit.progress.hidden = true;
    }
  }
}

/**
 * @param {Unit} unit
 * @param {any} body a "done" answer of GET/POST .../top
 */
function show(unit, body) {
  unit.step = body.step;
  showItems(unit.grid, body.items);
  const { model } = unit.ctx.store.get();
  const info = model?.layers[body.layer];
  setText(unit.note, `Top ${body.items.length} of ${body.total.toLocaleString()} images for ${info ? layerTitle(info) : 'layer'} ${body.layer}, `
    + `channel ${body.channel} (step ${body.step}). The number under each is the unit's peak value.`);
}

/** @param {Unit} unit */
async function dream(unit) {
  const t = target(unit);
  if (!t) return;
  const { api } = unit.ctx;
  const stale = () => target(unit)?.key !== t.key;
  unit.dreamBtn.disabled = true;
  unit.dreamProgress.hidden = false;
  unit.dreamProgress.value = 0;
  const seed = unit.seed++;
  try {
    const body = await withProgress(() => api.dream(t.id, t.layer, t.channel, { seed, steps: DREAM_STEPS }),
      () => api.dreamStatus(t.id, t.layer, t.channel), (done, total) => { unit.dreamProgress.value = done / total; }, stale);
    if (stale() || !body || !body.image) return;
    unit.dreamImg.src = `data:image/png;base64,${body.image}`;
    unit.dreamImg.hidden = false;
    unit.dreamFig.hidden = false;
    setText(unit.dreamNote, `Made from noise in ${body.steps} steps (seed ${body.seed}). The unit's mean went from ${fmt(body.before, 3)} `
      + `to ${fmt(body.after, 3)} (plain grey: ${fmt(body.grey, 3)}). Click again for another.`);
  } catch (err) {
    if (!stale()) {
      unit.dreamFig.hidden = false;
      unit.dreamImg.hidden = true;
      setText(unit.dreamNote, err instanceof Error ? err.message : String(err));
    }
  } finally {
    unit.dreamBtn.disabled = false;
    unit.dreamProgress.hidden = true;
  }
}
