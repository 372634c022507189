// @ts-check
/**
 * Step 4, the other layers, each on the real maps of the current image (the forward pass's outputs):
 * ReLU zeroes negatives; max pooling keeps each window's winner (marked); dropout (dropout.js) and
 * 1x1 convolutions (onebyone.js) follow in their own sections.
 */
import { h, replaceChildren, s } from '../../dom.js';
import * as dropout from './dropout.js';
import * as onebyone from './onebyone.js';
import { choice, framedCanvas, num, outputOf, range, say, showMap } from './ui.js';

export const id = 'layers';
export const title = 'ReLU, pooling, dropout and 1×1 convolutions';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ state: null, channel: Number(ctx.link.params.channel) || 0,
    channelSel: choice('map-channel', [], (v) => { view.channel = Number(v); ctx.link.set({ channel: view.channel }); draw(view); }),
    relu: h('section', { class: 'lm-section', dataset: { learn: 'relu' } }),
    pool: h('section', { class: 'lm-section', dataset: { learn: 'pool' } }),
    dropout: /** @type {any} */ (null),
    onebyone: /** @type {any} */ (null),
  };
  const dropEl = h('section', { class: 'lm-section', dataset: { learn: 'dropout' } });
  const oneEl = h('section', { class: 'lm-section', dataset: { learn: 'onebyone' } });
  root.append(
    say('A convolution rarely works alone: other layers change its maps on the way. Each one below works on the real maps of your image; pick a channel to look at another map.'),
    h('div', { class: 'lm-controls' }, h('label', { class: 'field' }, h('span', { class: 'field-label', text: 'Map channel' }), view.channelSel)),
    view.relu, view.pool, dropEl, oneEl,
  );
  view.dropout = dropout.mount(dropEl, ctx);
  view.onebyone = onebyone.mount(oneEl, ctx);
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  view.state = state;
  if (!state.model || !state.forward) return;
  if (changed.has('model')) {
    const first = state.model.layers.find((/** @type {any} */ l) => l.output_shape.length === 3);
    const n = first ? first.output_shape[0] : 1;
    replaceChildren(view.channelSel, Array.from({ length: n }, (_, c) => h('option', { value: String(c), text: `Channel ${c}` })));
    view.channel = channelFor(view, state, n);
    view.channelSel.value = String(view.channel);
  }
  if (changed.has('model') || changed.has('forward')) draw(view);
  dropout.render(view.dropout, state, changed);
  onebyone.render(view.onebyone, state, changed);
}

/**
 * The channel the link names, else the one whose share of negative values before the first ReLU is
 * closest to half (the clearest before and after: a channel all negative would be blank after ReLU),
 * among those whose map before the first max pooling is not flat (there is nothing to pool in a map
 * of zeros), the first on a tie.
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {number} n channels
 */
function channelFor(view, state, n) {
  const named = view.ctx.link.params.channel;
  if (named !== undefined && /^\d+$/.test(named)) return Math.min(Number(named), n - 1);
  const relu = firstOf(state.model, 'relu');
  const before = relu && state.forward ? outputOf(state.forward, relu.index - 1) : null;
  if (!before) return 0;
  const pool = firstOf(state.model, 'maxpool2d');
  const pooled = pool && state.forward ? outputOf(state.forward, pool.index - 1) : null;
  const [C, H, W] = relu.input_shape;
  let best = 0;
  let gap = Infinity;
  for (let c = 0; c < Math.min(C, n); c++) {
    if (pooled && c < pool.input_shape[0]) {
      const size = pool.input_shape[1] * pool.input_shape[2];
      const [lo, hi] = range(pooled.data, c * size, size);
      if (hi === lo) continue;
    }
    let neg = 0;
    for (let i = c * H * W; i < (c + 1) * H * W; i++) if (before.data[i] < 0) neg += 1;
    const off = Math.abs(2 * neg - H * W);
    if (off < gap) [best, gap] = [c, off];
  }
  return best;
}

/**
 * The first layer of `type` whose input is a map, or null.
 * @param {any} model
 * @param {string} type
 */
function firstOf(model, type) {
  return model.layers.find((/** @type {any} */ l) => l.type === type && l.index > 0 && l.input_shape.length === 3) || null;
}

/** @param {ReturnType<typeof mount>} view */
function draw(view) {
  const { model, forward } = view.state;
  const relu = firstOf(model, 'relu');
  if (!relu) replaceChildren(view.relu, h('h3', { text: 'ReLU' }), say('This model has no ReLU on a map.'));
  else {
    const [C, H, W] = relu.input_shape;
    const c = Math.min(view.channel, C - 1);
    const before = outputOf(forward, relu.index - 1);
    const after = outputOf(forward, relu.index);
    if (!before || !after) return;
    let neg = 0;
    for (let i = c * H * W; i < (c + 1) * H * W; i++) if (before.data[i] < 0) neg += 1;
    const [lo, hi] = range(before.data, c * H * W, H * W);
    const a = framedCanvas('before ReLU', 200);
    const b = framedCanvas('after ReLU', 200);
    showMap(a, before.data, [C, H, W], c, { lo, hi });
    showMap(b, after.data, [C, H, W], c, { lo, hi });
    replaceChildren(view.relu, h('h3', { text: `ReLU (layer ${relu.index})` }),
      say('ReLU keeps a positive value as it is and turns every negative value into zero. On the left, blue is negative and red positive; on the right, after ReLU, no blue is left.'),
      h('div', { class: 'lm-figures' }, h('figure', {}, a.frame, h('figcaption', { text: `Before: channel ${c} of layer ${relu.index - 1}` })),
        h('figure', {}, b.frame, h('figcaption', { text: 'After ReLU' }))),
      h('p', {}, h('strong', { dataset: { learn: 'relu-zeroed', value: String(neg) }, text: String(neg) }),
        ` of ${H * W} values were negative and became 0 (the smallest was ${num(lo)}).`));
  }
  const pool = firstOf(model, 'maxpool2d');
  if (!pool) {
    replaceChildren(view.pool, h('h3', { text: 'Max pooling' }), say('This model has no max pooling layer.'));
    return;
  }
  drawPool(view, pool);
}

/** @param {ReturnType<typeof mount>} view @param {any} pool */
function drawPool(view, pool) {
  const { model, forward } = view.state;
  const spec = model.spec.layers[pool.index];
  const k = spec.pool_size;
  const st = spec.stride || k;
  const p = spec.padding || 0;
  const [C, H, W] = pool.input_shape;
  const [, Ho, Wo] = pool.output_shape;
  const c = Math.min(view.channel, C - 1);
  const before = outputOf(forward, pool.index - 1);
  const after = outputOf(forward, pool.index);
  if (!before || !after) return;
  const marks = [];
  for (let i = 0; i < Ho; i++) {
    for (let j = 0; j < Wo; j++) {
      const v = after.data[(c * Ho + i) * Wo + j];
      let found = false;
      for (let a = 0; a < k && !found; a++) {
        for (let b = 0; b < k && !found; b++) {
          const y = i * st - p + a;
          const x = j * st - p + b;
          if (y < 0 || x < 0 || y >= H || x >= W || before.data[(c * H + y) * W + x] !== v) continue;
          found = true;
          marks.push(s('rect', { x: x + 0.1, y: y + 0.1, width: 0.8, height: 0.8, class: 'lm-winner' }));
        }
      }
    }
  }
  const [lo, hi] = range(before.data, c * H * W, H * W);
  if (lo === hi) {
    replaceChildren(view.pool, h('h3', { text: `Max pooling (layer ${pool.index})` }),
      say(`Channel ${c} of layer ${pool.index - 1} is ${num(lo)} everywhere on this image, so pooling has nothing to choose from: pick another channel.`));
    return;
  }
  const a = framedCanvas('before pooling, winners marked', 300);
  const b = framedCanvas('after pooling', 150);
  showMap(a, before.data, [C, H, W], c, { lo, hi });
  showMap(b, after.data, [C, Ho, Wo], c, { lo, hi });
  a.frame.append(s('svg', { class: 'lm-overlay', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' }, marks));
  replaceChildren(view.pool, h('h3', { text: `Max pooling (layer ${pool.index})` }),
    say(`Max pooling slides a ${k}×${k} window over the map, ${st} cell${st === 1 ? '' : 's'} at a time, and keeps only the largest value in each place. `
      + `The map shrinks from ${W}×${H} to ${Wo}×${Ho}, and the strongest responses survive.`),
    h('div', { class: 'lm-figures' }, h('figure', {}, a.frame, h('figcaption', { text: `Before: ${W}×${H}, each window's winner outlined` })),
      h('figure', {}, b.frame, h('figcaption', { text: `After: ${Wo}×${Ho}` }))),
    h('p', {}, h('strong', { dataset: { learn: 'pool-winners', value: String(marks.length) }, text: String(marks.length) }),
      ` winners, one per output cell (${Ho}×${Wo} = ${Ho * Wo}).`));
}
