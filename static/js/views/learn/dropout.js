// @ts-check
/**
 * Step 4's dropout section: the engine runs a dropout layer in training mode on this image's maps
 * (POST .../learn/dropout, seeded) and returns the random keep mask, the scaled training output and
 * the evaluation output. A model without dropout gets one placed after its last map layer.
 */
import { h, replaceChildren } from '../../dom.js';
import { formatInput } from './hash.js';
import { framedCanvas, num, say, showMap } from './ui.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ state: null, seed: Number(ctx.link.params.seed) || 0, key: '', channel: 0,
    body: h('div', {}),
    again: h('button', { type: 'button', dataset: { learn: 'new-mask' }, text: 'New random mask', on: { click: () => { view.seed += 1; ctx.link.set({ seed: view.seed }); load(view); } } }),
  };
  root.append(h('h3', { text: 'Dropout' }),
    say('While a network trains, dropout switches off a random share of the values each time, so no single unit can be relied on too much. The values it keeps are scaled up, so the total stays about the same.'),
    say('When the trained network is used, dropout does nothing at all: every value passes unchanged.'),
    h('div', { class: 'lm-controls' }, view.again), view.body);
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} _changed
 */
export function render(view, state, _changed) {
  view.state = state;
  if (!state.model || !state.input) return;
  const key = `${state.model.id}|${state.model.step}|${formatInput(state.input)}`;
  if (key === view.key) return;
  view.key = key;
  load(view);
}

/** The dropout layer to show: the model's first, else a demo after its last layer with maps. @param {any} model */
function target(model) {
  const own = model.layers.find((/** @type {any} */ l) => l.type === 'dropout');
  if (own) return own;
  const maps = model.layers.filter((/** @type {any} */ l) => l.output_shape.length === 3);
  return maps[maps.length - 1] || model.layers[0];
}

/** @param {ReturnType<typeof mount>} view */
async function load(view) {
  const { model, input } = view.state;
  const layer = target(model);
  const key = view.key;
  let d;
  try {
    d = await view.ctx.api.learnDropout(model.id, input, { layer: layer.index, rate: 0.5, seed: view.seed });
  } catch (err) {
    view.ctx.actions.fail(err);
    return;
  }
  if (key !== view.key) return;
  const shape = d.before.shape.length === 3 ? d.before.shape : [1, 1, d.before.shape[0]];
  const [C, H, W] = shape;
  const c = Math.min(view.channel, C - 1);
  const tiles = /** @type {Array<[string, any, any]>} */ ([
    ['Before', d.before, {}], ['Keep mask (white: kept)', d.keep, { lo: 0, hi: 1, cmap: 'gray' }],
    ['Training: kept × ' + num(d.scale, 2), d.train, {}], ['Evaluation: unchanged', d.evaluation, {}],
  ]);
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of [d.before, d.train]) for (const v of t.data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const figs = tiles.map(([text, t, opts]) => {
    const fc = framedCanvas(text, 150);
    showMap(fc, t.data, shape, c, { lo, hi, ...opts });
    return h('figure', {}, fc.frame, h('figcaption', { text }));
  });
  const where = d.in_model ? `layer ${d.layer}, a dropout layer of this model with rate ${d.rate}`
    : `a dropout of rate ${d.rate} placed after layer ${d.layer} (this model has no dropout layer of its own)`;
  replaceChildren(view.body, say(`Shown: ${where}, on channel ${c} of ${C}.`), h('div', { class: 'lm-figures' }, figs),
    h('p', {}, 'This mask (seed ', h('span', { dataset: { learn: 'dropout-seed' }, text: String(d.seed) }), ') keeps ',
      h('strong', { dataset: { learn: 'dropout-kept', value: String(d.kept) }, text: String(d.kept) }),
      ` of ${d.count} values and multiplies them by 1 / (1 − ${d.rate}) = ${num(d.scale, 2)}.`));
}
