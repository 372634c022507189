// @ts-check
/**
 * Step 4's 1x1 convolution section: a 1x1 convolution mixes channels, the same small matrix applied
 * at every pixel. Shown with the model's own weights (GET .../filters) and the maps before and after
 * at one pixel (the forward pass); a model without one gets a note and the Network-in-Network preset.
 */
import { h, replaceChildren } from '../../dom.js';
import { num, outputOf, say, weights } from './ui.js';

const MAX = 10;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = { root, ctx, /** @type {any} */ state: null, key: '', body: h('div', {}) };
  root.append(h('h3', { text: '1×1 convolution' }),
    say('A 1×1 filter looks at a single pixel, but through all the channels at once. Each output channel is a weighted mix of the input channels at that pixel: one small matrix, applied at every pixel. It can make the stack of maps thinner or thicker without looking at neighbours.'),
    view.body);
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  view.state = state;
  if (!state.model || !state.forward || !(changed.has('model') || changed.has('forward'))) return;
  const { model } = state;
  const one = model.layers.find((/** @type {any} */ l) => l.type === 'conv2d' && model.spec.layers[l.index].kernel_size === 1);
  if (!one) {
    const make = h('button', { type: 'button', dataset: { learn: 'make-nin' }, text: 'Create a Network in Network model (untrained)',
      on: { click: () => view.ctx.actions.createModel({ preset: 'nin', ...(model.dataset ? { dataset: model.dataset } : {}) }) } });
    replaceChildren(view.body, h('p', { class: 'lm-note', dataset: { learn: 'no-onebyone' } },
      'This model has no 1×1 convolution. Its first convolution mixes channels too (each filter weighs every colour channel), '
      + 'but it also looks at neighbours. The Network in Network design uses 1×1 convolutions throughout:'), make);
    return;
  }
  show(view, one);
}

/** @param {ReturnType<typeof mount>} view @param {any} layer */
async function show(view, layer) {
  const { model, forward } = view.state;
  const [C, H, W] = layer.input_shape;
  const F = layer.output_shape[0];
  const r = Math.floor(H / 2);
  const c = Math.floor(W / 2);
  const before = layer.index === 0 ? forward.input : outputOf(forward, layer.index - 1);
  const after = outputOf(forward, layer.index);
  const f = await weights(view.ctx, model.id, layer.index);
  if (!f || !before || !after || view.state.forward !== forward) return;
  const x = Array.from({ length: C }, (_, i) => before.data[(i * H + r) * W + c]);
  const y = Array.from({ length: F }, (_, o) => after.data[(o * layer.output_shape[1] + r) * layer.output_shape[2] + c]);
  const rows = Array.from({ length: Math.min(F, MAX) }, (_, o) => h('tr', {},
    h('th', { text: `out ${o}` }),
    Array.from({ length: Math.min(C, MAX) }, (_, i) => h('td', { class: f.data[o * C + i] < 0 ? 'neg' : 'pos', dataset: { learn: 'mix-w', out: String(o), in: String(i), value: String(f.data[o * C + i]) }, text: num(f.data[o * C + i], 2) })),
    h('td', { class: 'lm-bias', text: f.bias ? num(f.bias[o], 2) : '0' }),
    h('td', { dataset: { learn: 'mix-out', out: String(o), layer: String(layer.index), row: String(r), col: String(c), value: String(y[o]) }, text: num(y[o]) })));
  replaceChildren(view.body,
    say(`Layer ${layer.index} turns ${C} channels into ${F}. At the pixel (row ${r}, column ${c}) the input channels hold the values in the top row; each output is the row of weights times them, plus the bias${layer.index + 1 < model.layers.length && model.layers[layer.index + 1].type === 'relu' ? ' (before the ReLU that follows)' : ''}.`),
    h('table', { class: 'lm-matrix' }, h('thead', {}, h('tr', {}, h('th', { text: 'input →' }),
      x.slice(0, MAX).map((v) => h('th', { text: num(v, 2) })), h('th', { text: 'bias' }), h('th', { text: 'output' }))), h('tbody', {}, rows)),
    F > MAX || C > MAX ? say(`(The first ${MAX} rows and columns of the ${F}×${C} matrix.)`) : null);
}
