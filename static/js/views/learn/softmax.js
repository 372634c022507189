// @ts-check
/**
 * Step 5, from features to probabilities: the last dense layer's strongest inputs for the predicted
 * class (its weights from GET .../filters, its inputs from the forward pass), the scores it gives
 * every class (the layer before the output layer), and softmax turning them into probabilities.
 */
import { h, replaceChildren } from '../../dom.js';
import { prettyClass } from '../../format.js';
import { num, outputOf, say, sig, weights } from './ui.js';

export const id = 'probabilities';
export const title = 'From features to probabilities';

const TOP = 6;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const view = {
    root, ctx, /** @type {any} */ state: null, seq: 0,
    dense: h('section', { class: 'lm-section', dataset: { learn: 'dense' } }),
    soft: h('section', { class: 'lm-section', dataset: { learn: 'softmax' } }),
  };
  root.append(
    say('At the end, the last maps are laid out flat as one long list of numbers. A dense layer gives each class a score: every number in the list times that class’s own weight for it, all added up, plus a bias.'),
    say('Scores can be any size, even negative. Softmax turns them into probabilities: it takes e to the power of each score (always positive), then divides each by their total, so the results lie between 0 and 1 and add up to 1.'),
    view.dense, view.soft,
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
  if (!state.model || !state.forward || !(changed.has('forward') || changed.has('model'))) return;
  const { model, forward } = state;
  const outIdx = model.layers.findLastIndex((/** @type {any} */ l) => l.kind === 'output');
  const scoresAt = outIdx > 0 ? outIdx - 1 : model.layers.length - 1;
  const z = outputOf(forward, scoresAt);
  if (!z) return;
  const k = forward.prediction.index;
  showSoftmax(view, Array.from(z.data), scoresAt, k);
  const layer = model.layers[scoresAt];
  if (layer.type === 'dense') showDense(view, layer, k);
  else replaceChildren(view.dense, h('h3', { text: 'The scores' }),
    say(`In this model the scores come from layer ${scoresAt} (${layer.title}), not from a dense layer: each class has its own map, averaged to one number.`));
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {number[]} z the engine's scores
 * @param {number} at the layer that made them
 * @param {number} k the predicted class
 */
function showSoftmax(view, z, at, k) {
  const { forward } = view.state;
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const total = e.reduce((a, b) => a + b, 0);
  const rows = z.map((v, i) => h('tr', { class: i === k ? 'lm-picked' : '' },
    h('th', { text: prettyClass(forward.classes[i] ?? String(i)) }),
    h('td', { dataset: { learn: 'logit', class: String(i), value: String(v) }, text: num(v) }),
    h('td', { text: sig(e[i]) }),
    h('td', { dataset: { learn: 'prob', class: String(i), value: String(forward.probabilities[i]) }, text: sig(forward.probabilities[i]) })));
  replaceChildren(view.soft, h('h3', { text: 'Softmax' }),
    h('p', { class: 'lm-formula' }, 'p', h('sub', { text: 'k' }), ' = e', zPow('k'), ' / (e', zPow('1'), ' + … + e', zPow(String(z.length)), ')'),
    say(`Subtracting the largest score (${num(m)}) from every score first changes nothing in the result (it divides the top and the bottom by the same number) but keeps e to the power small enough to compute.`),
    h('table', { class: 'lm-matrix' }, h('thead', {}, h('tr', {}, h('th', { text: 'class' }), h('th', { text: `score z (layer ${at})` }),
      h('th', { text: 'e^(z − max)' }), h('th', { text: 'probability' }))), h('tbody', {}, rows)),
    h('p', {}, `For ${prettyClass(forward.prediction.class)}: ${sig(e[k])} / ${sig(total)} = `,
      h('strong', { dataset: { learn: 'predicted-prob', value: String(e[k] / total) }, text: sig(e[k] / total) }),
      `; the model says ${sig(forward.probabilities[k])}. All ${z.length} probabilities add up to 1.`));
}

/** "z" with a subscript, as an exponent. @param {string} k */
function zPow(k) {
  return h('sup', {}, 'z', h('sub', { text: k }));
}

/** @param {ReturnType<typeof mount>} view @param {any} layer @param {number} k */
async function showDense(view, layer, k) {
  const { model, forward } = view.state;
  const seq = ++view.seq;
  const f = await weights(view.ctx, model.id, layer.index);
  const input = outputOf(forward, layer.index - 1);
  if (!f || seq !== view.seq || !input) return;
  const D = f.shape[1];
  const before = model.layers[layer.index - 1];
  const flat = before?.type === 'flatten' && before.input_shape.length === 3 ? before.input_shape : null;
  const parts = Array.from({ length: D }, (_, j) => ({ j, a: input.data[j], w: f.data[k * D + j], p: input.data[j] * f.data[k * D + j] }));
  const strongest = parts.slice().sort((x, y) => y.p - x.p).slice(0, TOP);
  const weakest = parts.slice().sort((x, y) => x.p - y.p).slice(0, 3);
  /** where input j sat before flattening: its map, row and column @param {number} j */
  const from = (j) => (flat ? `map ${Math.floor(j / (flat[1] * flat[2]))}, row ${Math.floor(j / flat[2]) % flat[1]}, col ${j % flat[2]}` : null);
  const row = (/** @type {any} */ q) => h('tr', { dataset: { learn: 'dense-input', index: String(q.j) } },
    h('td', { text: String(q.j) }), flat ? h('td', { text: from(q.j) }) : null, h('td', { text: num(q.a) }), h('td', { text: num(q.w) }), h('td', { class: q.p < 0 ? 'neg' : 'pos', text: num(q.p) }));
  const z = outputOf(forward, layer.index);
  replaceChildren(view.dense, h('h3', { text: `The dense layer (layer ${layer.index}) for “${prettyClass(forward.prediction.class)}”` }),
    say(`Its input is ${flat ? `the ${flat.join('×')} maps laid flat: ` : ''}${D} numbers. The first ${TOP} rows push hardest towards the predicted class (input × weight), the last three hardest against it:`),
    h('table', { class: 'lm-matrix' }, h('thead', {}, h('tr', {}, ['input #', flat ? 'from' : null, 'value', 'weight', 'product'].filter(Boolean).map((t) => h('th', { text: t })))),
      h('tbody', {}, strongest.map(row), weakest.map(row))),
    h('p', {}, `All ${D} products plus the bias ${f.bias ? num(f.bias[k]) : '0'} add up to the score `,
      h('strong', { dataset: { learn: 'class-score' }, text: z ? num(z.data[k]) : '' }), '.'));
}
