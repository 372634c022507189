// @ts-check
/**
 * Step 3, going deeper: each layer's units see a larger patch of the image (their receptive field,
 * from the model's layer facts), and what deep channels respond to (their top dataset images, from the
 * unit API) is far richer than the first layer's filters, which are little edge and colour detectors.
 */
import { drawMap, drawRGBFilter } from '../../canvas.js';
import { h, replaceChildren, setText } from '../../dom.js';
import { receptiveRect } from '../../units.js';
import { withProgress } from '../unit/poll.js';
import { box, choice, framedCanvas, say, showMap, weights } from './ui.js';

export const id = 'deeper';
export const title = 'Going deeper: seeing more of the image';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ state: null, /** @type {any} */ deep: null, picked: -1, channel: Number(ctx.link.params.channel) || 0, seq: 0,
    /** the model (id and step) the lists were drawn for, and the unit (with its channel) the top 9 were asked for */
    modelKey: '', topKey: '',
    /** the reader pressed the button and the search has not answered yet (kept across a model still loading) */
    wanted: false,
    image: framedCanvas('the input image with receptive fields', 240),
    list: h('ol', { class: 'lm-rf', dataset: { learn: 'rf-list' } }),
    filters: h('div', { class: 'lm-filters', dataset: { learn: 'filters' } }),
    deepTitle: h('h3', {}),
    channelSel: choice('channel', [], (v) => {
      view.channel = Number(v);
      view.wanted = false;
      ctx.link.set({ channel: view.channel });
      askTop(view);
    }, 'Channel of the deep layer'),
    find: h('button', { type: 'button', dataset: { learn: 'find-top' }, text: 'Find its top 9 images', on: { click: () => {
      view.wanted = true;
      if (view.deep) askTop(view, true);
      else setText(view.note, 'The search starts as soon as the model has loaded…');
    } } }),
    note: h('div', { class: 'lm-note', dataset: { learn: 'top-note' } }),
    top: h('div', { class: 'lm-top', dataset: { learn: 'top' } }),
  };
  root.append(
    say('A unit of the first layer looks at a few pixels only. A unit of the next layer looks at a few units of the first, so it sees a larger patch of the image, and so on: every layer widens the view. Pooling widens it faster.'),
    say('So the first layers can only find small things, such as an edge or a change of colour, while deeper layers, seeing more and building on those, can respond to larger patterns: a bar, a corner, a curve. Click a layer to see its patch.'),
    h('div', { class: 'lm-figures' }, h('figure', {}, view.image.frame, h('figcaption', { text: 'The patch one unit in the middle of each layer sees' })), view.list),
    h('h3', { text: 'The first layer: edges and colours' }), view.filters,
    view.deepTitle, h('div', { class: 'lm-controls' }, view.channelSel, view.find), view.note, view.top,
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
  const { model, forward } = state;
  if (!model || !forward) return;
  const [C, H, W] = model.spec.input_shape;
  const modelKey = `${model.id}|${model.step}`;
  const fresh = changed.has('model') || modelKey !== view.modelKey;
  if (changed.has('forward') || fresh) showMap(view.image, forward.input.data, [C, H, W], 0, { asImage: true });
  if (!fresh) return;
  view.modelKey = modelKey;
  const maps = model.layers.filter((/** @type {any} */ l) => l.output_shape.length === 3 && (l.kind === 'weighted' || l.kind === 'window'));
  view.picked = maps.length ? maps[maps.length - 1].index : -1;
  replaceChildren(view.list, maps.map((/** @type {any} */ l) => h('li', {}, h('button', {
    type: 'button', dataset: { learn: 'rf', layer: String(l.index), size: String(l.receptive_field.size) },
    text: `Layer ${l.index} ${l.title}: ${l.receptive_field.size}×${l.receptive_field.size} pixels`,
    on: { click: () => { view.picked = l.index; drawFields(view); } } }))));
  drawFields(view);
  const convs = model.layers.filter((/** @type {any} */ l) => l.type === 'conv2d');
  showFilters(view, convs[0]);
  const deep = convs[convs.length - 1];
  view.deep = deep || null;
  if (!deep) {
    replaceChildren(view.deepTitle);
    setText(view.note, 'This model has no convolution layer.');
    return;
  }
  setText(view.deepTitle, `A deep layer: what a channel of layer ${deep.index} responds to`);
  replaceChildren(view.channelSel, Array.from({ length: deep.output_shape[0] }, (_, c) => h('option', { value: String(c), text: `Channel ${c}` })));
  view.channel = Math.min(view.channel, deep.output_shape[0] - 1);
  view.channelSel.value = String(view.channel);
  askTop(view, view.wanted);
}

/**
 * Show the channel's top 9, searching when `search` (the button was pressed), else only the cached
 * ones. A second call for the same model, step, layer and channel while one is answering is dropped,
 * so the model object being replaced (the same model) cannot cancel a search the reader started.
 * @param {ReturnType<typeof mount>} view
 * @param {boolean} [search]
 */
function askTop(view, search = false) {
  const { model } = view.state;
  const key = `${model.id}|${model.step}|${view.deep.index}|${view.channel}|${search}`;
  if (key === view.topKey) return;
  view.topKey = key;
  showTop(view, search);
}

/** @param {ReturnType<typeof mount>} view */
function drawFields(view) {
  const { model } = view.state;
  const [, H, W] = model.spec.input_shape;
  for (const el of view.image.frame.querySelectorAll('[data-box]')) el.remove();
  for (const b of view.list.querySelectorAll('button')) {
    const i = Number(/** @type {HTMLElement} */ (b).dataset.layer);
    b.setAttribute('aria-pressed', String(i === view.picked));
    if (i > view.picked) continue;
    const [, h2, w2] = model.layers[i].output_shape;
    const rect = receptiveRect(model, i, 0, Math.floor(h2 / 2), Math.floor(w2 / 2));
    box(view.image, i === view.picked ? 'picked' : `rf${i}`, rect, H, W);
  }
}

/** @param {ReturnType<typeof mount>} view @param {any} layer */
async function showFilters(view, layer) {
  replaceChildren(view.filters);
  if (!layer) return;
  const f = await weights(view.ctx, view.state.model.id, layer.index);
  if (!f) return;
  const [F, C, k] = f.shape;
  let m = 1e-8;
  for (const v of f.data) m = Math.max(m, Math.abs(v));
  const tiles = Array.from({ length: F }, (_, i) => {
    const canvas = h('canvas', { class: 'lm-filter', role: 'img', 'aria-label': `filter ${i}` });
    if (C === 3) drawRGBFilter(canvas, f.data, i * C * k * k, k, k, m);
    else drawMap(canvas, f.data, i * C * k * k, k, k, -m, m, 'rdbu');
    return canvas;
  });
  replaceChildren(view.filters, tiles, say(`The ${F} filters of layer ${layer.index}, ${k}×${k} each${C === 3 ? ', drawn in colour (each responds most to a patch that looks like it)' : ' (channel 0)'}; grey is a weight of zero.`));
}

/** @param {ReturnType<typeof mount>} view @param {boolean} search run the search when it is not cached */
async function showTop(view, search) {
  const deep = view.deep;
  const { model } = view.state;
  const { api } = view.ctx;
  const seq = ++view.seq;
  const stale = () => seq !== view.seq;
  const poll = () => api.unitTop(model.id, deep.index, view.channel);
  const progress = (/** @type {number} */ done, /** @type {number} */ total) => setText(view.note, `Searching the dataset: ${done} of ${total} images…`);
  view.find.disabled = search;
  if (search) setText(view.note, 'Searching the dataset…');
  try {
    let body = search ? await withProgress(() => api.findUnitTop(model.id, deep.index, view.channel), poll, progress, stale) : await poll();
    // another tab's search of this unit is under way: follow it to the end
    if (!stale() && body.status === 'running') body = await withProgress(poll, poll, progress, stale);
    if (stale()) return;
    view.topKey = '';
    view.find.disabled = false;
    if (body.status !== 'done') {
      setText(view.note, 'Press the button to search the dataset for the images that excite this channel most.');
      replaceChildren(view.top);
      return;
    }
    view.wanted = false;
    const rf = deep.receptive_field?.size;
    setText(view.note, `The ${body.items.length} training-image patches that excite channel ${view.channel} most, strongest first. Each is the patch one unit of layer ${deep.index} sees${rf ? ` (up to ${rf}×${rf} pixels)` : ''}, cut around its strongest response; the number is that response.`);
    replaceChildren(view.top, body.items.map((/** @type {any} */ it) => h('figure', { dataset: { learn: 'top-item', layer: String(deep.index), channel: String(view.channel), index: String(it.index), value: String(it.value) } },
      h('img', { src: `data:image/png;base64,${it.crop}`, alt: `image ${it.index}`, class: 'lm-crop' }),
      h('figcaption', { text: it.value.toFixed(2) }))));
  } catch (err) {
    if (stale()) return;
    view.topKey = '';
    view.find.disabled = false;
    view.ctx.actions.fail(err);
  }
}
