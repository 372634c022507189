// @ts-check
/**
 * Step 1, the convolution: one filter slides over the layer's input; at each position the window it
 * covers is multiplied cell by cell with the filter, the products are added up, the bias is added,
 * and that number is the activation map's value there. Every number comes from the server
 * (POST .../learn/conv, one output row per call); the page animates over positions.
 */
import { h, replaceChildren, setText } from '../../dom.js';
import { formatInput } from './hash.js';
import { box, choice, framedCanvas, num, outputOf, say, showMap } from './ui.js';

export const id = 'conv';
export const title = 'Sliding a filter: the convolution';

const SPEEDS = /** @type {Array<[number, string]>} */ ([[900, 'Slow'], [350, 'Medium'], [90, 'Fast']]);
const MAX_CHANNELS = 12;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const p = ctx.link.params;
  const view = {
    root, ctx, layer: int(p.layer, -1), filter: int(p.filter, 0), row: int(p.row, 0), col: int(p.col, 0),
    playing: false, speed: 350, /** @type {any} */ timer: null,
    /** @type {Map<string, Promise<any>>} */ rows: new Map(), /** @type {any} */ data: null, dataKey: '',
    /** @type {any} */ state: null,
    layerSel: choice('layer', [], (v) => change({ layer: Number(v), filter: 0, row: 0, col: 0 }), 'Convolution layer'),
    filterSel: choice('filter', [], (v) => change({ filter: Number(v) }), 'Filter'),
    play: h('button', { type: 'button', dataset: { learn: 'play' }, text: 'Play', on: { click: () => toggle() } }),
    back: h('button', { type: 'button', dataset: { learn: 'step-back' }, text: '◀ Step', on: { click: () => stepBy(-1) } }),
    fwd: h('button', { type: 'button', dataset: { learn: 'step' }, text: 'Step ▶', on: { click: () => stepBy(1) } }),
    speedSel: choice('speed', SPEEDS, (v) => { view.speed = Number(v); }, 'Speed'),
    counts: h('div', { class: 'lm-counts', dataset: { learn: 'counts' } }),
    input: framedCanvas('the layer input with the window lit', 220),
    output: framedCanvas('the activation map with the current position', 220),
    inCaption: h('figcaption', {}),
    outCaption: h('figcaption', {}),
    prodNote: h('p', { class: 'lm-text' }),
    products: h('div', { class: 'lm-products', dataset: { learn: 'products' } }),
    sums: h('div', { class: 'lm-sums', dataset: { learn: 'sums' } }),
  };
  view.speedSel.value = String(view.speed);

  /** @param {Record<string, number>} patch */
  function change(patch) {
    Object.assign(view, patch);
    update(view);
  }
  function toggle() {
    view.playing = !view.playing;
    setText(view.play, view.playing ? 'Pause' : 'Play');
    if (view.playing) tick(view);
    else {
      clearTimeout(view.timer);
      saveLink(view);
    }
  }
  /** @param {number} by */
  function stepBy(by) {
    if (view.playing) toggle();
    advance(view, by);
    update(view);
  }
  root.append(
    say('A convolution layer has a few small filters. Each filter is a little grid of weights that slides over its input, one position at a time.'),
    say('At every position, each input value under the filter is multiplied by the weight on top of it. Adding up all those products, plus one more learned number, the bias, gives one value of the output, the activation map. Press Play or Step to move the filter.'),
    h('div', { class: 'lm-controls' }, view.layerSel, view.filterSel, view.back, view.play, view.fwd, view.speedSel),
    view.counts,
    h('div', { class: 'lm-figures' }, h('figure', {}, view.input.frame, view.inCaption), h('figure', {}, view.output.frame, view.outCaption)),
    view.prodNote,
    view.products,
    view.sums,
  );
  return view;
}

/** @param {string | undefined} v @param {number} dflt */
function int(v, dflt) {
  const n = Number(v);
  return v !== undefined && Number.isInteger(n) && n >= 0 ? n : dflt;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  view.state = state;
  const { model } = state;
  if (!model || !state.forward) return;
  if (changed.has('model')) {
    const convs = model.layers.filter((/** @type {any} */ l) => l.type === 'conv2d');
    replaceChildren(view.layerSel, convs.map((/** @type {any} */ l) => h('option', { value: String(l.index), text: `Layer ${l.index}: ${l.title} ${l.name}` })));
    if (!convs.some((/** @type {any} */ l) => l.index === view.layer)) Object.assign(view, { layer: convs[0]?.index ?? -1, row: 0, col: 0 });
  }
  if (view.layer < 0) {
    replaceChildren(view.counts, say('This model has no convolution layer.'));
    return;
  }
  if (changed.has('model') || changed.has('forward') || changed.has('input')) update(view);
}

/** @param {ReturnType<typeof mount>} view */
function clamp(view) {
  const layer = view.state.model.layers[view.layer];
  const [F, H, W] = layer.output_shape;
  view.filter = Math.min(view.filter, F - 1);
  view.row = Math.min(view.row, H - 1);
  view.col = Math.min(view.col, W - 1);
  return { layer, F, H, W };
}

/**
 * Move `by` positions in reading order, wrapping at the end of the map.
 * @param {ReturnType<typeof mount>} view
 * @param {number} by
 */
function advance(view, by) {
  const { H, W } = clamp(view);
  const i = (((view.row * W + view.col + by) % (H * W)) + H * W) % (H * W);
  view.row = Math.floor(i / W);
  view.col = i % W;
}

/** @param {ReturnType<typeof mount>} view @param {number} row */
function rowKey(view, row) {
  const { model, input } = view.state;
  return `${model.id}|${model.step}|${formatInput(input)}|${view.layer}|${view.filter}|${row}`;
}

/** @param {ReturnType<typeof mount>} view @param {number} row */
function fetchRow(view, row) {
  const key = rowKey(view, row);
  let got = view.rows.get(key);
  if (!got) {
    const { model, input } = view.state;
    got = view.ctx.api.learnConv(model.id, input, { layer: view.layer, filter: view.filter, row });
    got.catch(() => view.rows.delete(key));
    view.rows.set(key, got);
    if (view.rows.size > 4) view.rows.delete(view.rows.keys().next().value);
  }
  return { key, got };
}

/** @param {ReturnType<typeof mount>} view */
async function update(view) {
  if (!view.state?.model || view.layer < 0) return;
  const { layer, F } = clamp(view);
  view.layerSel.value = String(view.layer);
  if (view.filterSel.options.length !== F || view.filterSel.dataset.layer !== String(view.layer)) {
    replaceChildren(view.filterSel, Array.from({ length: F }, (_, f) => h('option', { value: String(f), text: `Filter ${f}` })));
    view.filterSel.dataset.layer = String(view.layer);
  }
  view.filterSel.value = String(view.filter);
  drawMaps(view, layer);
  if (!view.playing) saveLink(view);
  const { key, got } = fetchRow(view, view.row);
  try {
    const data = await got;
    if (key !== rowKey(view, view.row)) return;
    view.data = data;
    view.dataKey = key;
    showPosition(view);
  } catch (err) {
    if (view.playing) view.root.querySelector('[data-learn="play"]')?.dispatchEvent(new Event('click'));
    view.ctx.actions.fail(err);
  }
}

/** @param {ReturnType<typeof mount>} view */
function saveLink(view) {
  view.ctx.link.set({ layer: view.layer, filter: view.filter, row: view.row, col: view.col });
}

/** @param {ReturnType<typeof mount>} view @param {any} layer */
function drawMaps(view, layer) {
  const { forward } = view.state;
  const [C, H, W] = layer.input_shape;
  if (layer.index === 0) showMap(view.input, forward.input.data, [C, H, W], 0, { asImage: C === 3 || C === 1 });
  else {
    const before = outputOf(forward, layer.index - 1);
    if (before) showMap(view.input, before.data, [C, H, W], 0);
  }
  setText(view.inCaption, layer.index === 0 ? `The input image, ${W}×${H}` : `The layer's input, channel 0 of ${C} (${W}×${H})`);
  const out = outputOf(forward, layer.index);
  const [, Ho, Wo] = layer.output_shape;
  if (out) showMap(view.output, out.data, layer.output_shape, view.filter);
  setText(view.outCaption, `Activation map of filter ${view.filter} (${Wo}×${Ho})`);
}

/** @param {ReturnType<typeof mount>} view */
function showPosition(view) {
  const d = view.data;
  const pos = d.positions.find((/** @type {any} */ q) => q.col === view.col);
  if (!pos) return;
  const [C, H, W] = d.input_shape;
  const [F, Ho, Wo] = d.output_shape;
  const k = d.kernel_size;
  box(view.input, 'window', { top: pos.top, left: pos.left, height: k, width: k }, H, W);
  box(view.output, 'cell', { top: view.row, left: view.col, height: 1, width: 1 }, Ho, Wo);
  const [pb, pa] = d.padding;
  const padText = pb === pa ? `2×${pb}` : `${pb}+${pa}`;
  const span = W - k + pb + pa;
  replaceChildren(view.counts,
    say(`A filter of this layer covers ${k}×${k} pixels in each of the ${C} input channel${C === 1 ? '' : 's'}: ${k}×${k}×${C} = ${k * k * C} values, so one output value takes ${k * k * C} multiplications.`),
    say(`Output width = (W − K + ${pb === pa ? '2P' : 'P₁ + P₂'}) / S + 1 (input width W, kernel K, padding P, stride S) = (${W} − ${k} + ${padText}) / ${d.stride} + 1 = ${Wo}`,
      span % d.stride ? ' (rounded down).' : '.', ` The layer has ${F} filters, each making its own map, so the output is ${F} maps deep: ${F}×${Ho}×${Wo}.`));
  const shown = Math.min(C, MAX_CHANNELS);
  const tables = [];
  for (let c = 0; c < shown; c++) {
    const rows = [];
    for (let a = 0; a < k; a++) {
      rows.push(h('tr', {}, Array.from({ length: k }, (_, b) => {
        const v = pos.products[c][a][b];
        return h('td', { class: v < 0 ? 'neg' : 'pos', title: `input ${num(pos.window[c][a][b])} × weight ${num(d.kernel[c][a][b])}` },
          h('span', { class: 'lm-product', text: num(v) }),
          h('span', { class: 'lm-factors', text: `${num(pos.window[c][a][b], 2)}×${num(d.kernel[c][a][b], 2)}` }));
      })));
    }
    tables.push(h('figure', { class: 'lm-table' }, h('table', {}, h('tbody', {}, rows)), h('figcaption', { text: `channel ${c}` })));
  }
  setText(view.prodNote, `The ${k * k * C} products, one table per input channel. Each cell shows a product and, under it in small type, the input value × the weight that made it.`);
  replaceChildren(view.products, tables, C > shown ? say(`…and ${C - shown} more channels, counted in the sum below.`) : null);
  const same = Math.abs(pos.total - pos.activation) <= 1e-4 * Math.max(1, Math.abs(pos.activation));
  replaceChildren(view.sums,
    h('div', { dataset: { learn: 'position', row: String(pos.row), col: String(pos.col), layer: String(d.layer), filter: String(d.filter) },
      text: `Position: row ${pos.row}, column ${pos.col} of the output (the window starts at row ${pos.top}, column ${pos.left} of the input${pos.top < 0 || pos.left < 0 ? ', in the padding' : ''})` }),
    h('div', {}, `Sum of the ${k * k * C} products = `, h('strong', { dataset: { learn: 'sum', value: String(pos.sum) }, text: num(pos.sum, 4) })),
    h('div', {}, 'Plus the bias ', h('strong', { dataset: { learn: 'bias', value: String(d.bias) }, text: num(d.bias, 4) }),
      ' = ', h('strong', { dataset: { learn: 'total', value: String(pos.total) }, text: num(pos.total, 4) })),
    h('div', {}, 'The activation map holds ', h('strong', { dataset: { learn: 'activation', value: String(pos.activation) }, text: num(pos.activation, 4) }),
      ' at this position: ', h('span', { class: same ? 'lm-ok' : 'lm-bad', dataset: { learn: 'match' }, text: same ? 'the same number.' : 'a different number!' })));
}

/** @param {ReturnType<typeof mount>} view */
async function tick(view) {
  if (!view.playing) return;
  if (view.root.offsetParent === null) {
    view.root.querySelector('[data-learn="play"]')?.dispatchEvent(new Event('click'));
    return;
  }
  const { W } = clamp(view);
  advance(view, 1);
  if (view.col >= W - 4 && view.state) fetchRow(view, (view.row + 1) % view.state.model.layers[view.layer].output_shape[1]);
  await update(view);
  clearTimeout(view.timer);
  if (view.playing) view.timer = setTimeout(() => tick(view), view.speed);
}
