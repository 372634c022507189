// @ts-check
/**
 * Step 8, choosing hyperparameters: the reader's own architecture (the live model's spec) with one
 * change they pick (twice the filters, a larger kernel, stride 2, more padding, one more conv layer),
 * both validated by the engine (POST /specs/validate), and the two side by side: every layer's output
 * shape and parameters, the total, and the receptive field at the last layer with feature maps.
 */
import { h, replaceChildren } from '../../dom.js';
import { fmtInt, fmtShape } from '../../format.js';
import { choice, say } from './ui.js';

export const id = 'hyperparameters';
export const title = 'Choosing hyperparameters: depth, filters, kernel, stride, padding';

/** @type {Array<[string, string]>} */
const CHANGES = [
  ['filters', 'twice the filters'],
  ['kernel', 'kernel 2 larger'],
  ['stride', 'stride 2'],
  ['padding', 'padding 1 more'],
  ['add', 'one more conv layer after it'],
];

/**
 * The spec with one change at conv layer `i` (a new object; the model's own is not touched).
 * @param {any} spec
 * @param {number} i
 * @param {string} change
 */
export function changedSpec(spec, i, change) {
  const layers = spec.layers.map((/** @type {any} */ l) => ({ ...l }));
  const l = layers[i];
  if (change === 'filters') l.filters *= 2;
  else if (change === 'kernel') l.kernel_size += 2;
  else if (change === 'stride') l.stride = 2;
  else if (change === 'padding') l.padding = typeof l.padding === 'number' ? l.padding + 1 : 1;
  else if (change === 'add') layers.splice(i + 1, 0, { type: 'conv2d', filters: l.filters, kernel_size: 3, stride: 1, padding: 1 });
  return { ...spec, layers };
}

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ model: null, seq: 0, key: '',
    controls: h('div', { class: 'lm-controls' }),
    out: h('section', { class: 'lm-section', dataset: { learn: 'compare' } }),
  };
  root.append(
    say('Some numbers are not learned: you choose them before training. How many layers (depth), how many filters each conv layer has, how large its kernel is, how far it moves (stride) and how much border it adds (padding).'),
    say('Each choice can change three things: the size of every map after it, the number of weights to learn, and the receptive field (how much of the image one unit at the end sees). Pick a conv layer of your own network and a change; the engine works out both versions, and the rows that differ are highlighted:'),
    view.controls, view.out,
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
  if (!model || !changed.has('model')) return;
  if (view.key === model.id) return;
  view.key = model.id;
  view.model = model;
  const convs = model.spec.layers.map((/** @type {any} */ l, /** @type {number} */ i) => [l, i]).filter(([l]) => l.type === 'conv2d').map(([, i]) => i);
  if (!convs.length) {
    replaceChildren(view.controls);
    replaceChildren(view.out, say('This network has no convolution to change.'));
    return;
  }
  const p = view.ctx.link.params;
  const layer = choice('hp-layer', convs.map((/** @type {number} */ i) => [i, `conv layer ${i}`]), () => update(), 'Conv layer to change');
  layer.value = convs.includes(Number(p.layer)) ? String(p.layer) : String(convs[0]);
  const change = choice('hp-change', CHANGES, () => update(), 'The change');
  change.value = CHANGES.some(([k]) => k === p.change) ? p.change : 'filters';
  const update = () => {
    view.ctx.link.set({ layer: layer.value, change: change.value });
    compare(view, Number(layer.value), change.value);
  };
  replaceChildren(view.controls, layer, change);
  compare(view, Number(layer.value), change.value);
}

/** The receptive field at the last layer with (C, H, W) output. @param {any[]} layers */
function finalField(layers) {
  const maps = layers.filter((l) => l.output_shape.length === 3);
  return maps.length ? maps[maps.length - 1].receptive_field.size : null;
}

/** @param {ReturnType<typeof mount>} view @param {number} at @param {string} change */
async function compare(view, at, change) {
  const seq = ++view.seq;
  const spec = view.model.spec;
  const after = changedSpec(spec, at, change);
  let a;
  let b;
  try {
    [a, b] = await Promise.all([view.ctx.api.validateSpec(spec), view.ctx.api.validateSpec(after)]);
  } catch (err) {
    view.ctx.actions.fail(err);
    return;
  }
  if (seq !== view.seq) return;
  if (!b.valid) {
    replaceChildren(view.out, h('p', { class: 'lm-error', dataset: { learn: 'hp-error' }, text: `With this change the network does not fit: ${b.detail}` }),
      say('Shrinking maps too fast (a larger kernel or stride without padding) can leave a later layer nothing to work on: that is one reason to choose these numbers with care.'));
    return;
  }
  const bLayers = /** @type {any[]} */ (b.layers);
  const shift = change === 'add' ? 1 : 0;
  const rows = bLayers.map((l, j) => {
    const old = j === at + 1 && shift ? null : a.layers[j > at ? j - shift : j];
    const differs = !old || fmtShape(old.output_shape) !== fmtShape(l.output_shape) || old.parameters !== l.parameters;
    return h('tr', { class: differs ? 'lm-picked' : '' }, h('td', { text: String(j) }), h('td', { text: l.type + (old ? '' : ' (new)') }),
      h('td', { text: old ? fmtShape(old.output_shape) : '—' }), h('td', { text: fmtShape(l.output_shape) }),
      h('td', { text: old ? fmtInt(old.parameters) : '—' }), h('td', { text: fmtInt(l.parameters) }));
  });
  const rfA = finalField(a.layers);
  const rfB = finalField(bLayers);
  const label = CHANGES.find(([k]) => k === change)?.[1] ?? change;
  replaceChildren(view.out,
    h('h3', { text: `Layer ${at}: ${label}` }),
    h('table', { class: 'lm-matrix' }, h('thead', {}, h('tr', {}, ['layer', 'type', 'output now', 'output after', 'weights now', 'weights after'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows)),
    h('p', {}, 'Weights to learn: ', h('span', { dataset: { learn: 'params-before', value: String(a.parameters) }, text: fmtInt(a.parameters) }),
      ' now, ', h('strong', { dataset: { learn: 'params-after', value: String(b.parameters) }, text: fmtInt(b.parameters) }),
      ` after (${b.parameters >= a.parameters ? '+' : '−'}${fmtInt(Math.abs(b.parameters - a.parameters))}).`),
    h('p', {}, 'Receptive field at the last map: ', h('span', { dataset: { learn: 'rf-before', value: String(rfA) }, text: `${rfA}×${rfA}` }),
      ' now, ', h('strong', { dataset: { learn: 'rf-after', value: String(rfB) }, text: `${rfB}×${rfB}` }), ' pixels after.'),
    say(explain(change)));
}

/** @param {string} change */
function explain(change) {
  return {
    filters: 'More filters: more patterns per layer and more weights (this layer’s and the next one’s, which reads more maps); the map sizes stay.',
    kernel: 'A larger kernel sees more at once and grows the receptive field, but costs more weights and, without padding, shrinks the map more.',
    stride: 'Stride 2 skips every other position: the map is about half as wide and tall, which makes every later layer cheaper (the dense layer needs far fewer weights) and lets later units see farther.',
    padding: 'Padding adds a border of zeros, so the map shrinks less and the edge pixels get as many looks as the middle ones.',
    add: 'One more layer (depth): more weights, and each unit at the end sees a larger part of the image, because it looks at units that already looked at a patch.',
  }[change] ?? '';
}
