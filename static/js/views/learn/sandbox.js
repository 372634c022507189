// @ts-check
/**
 * Step 2, stride and padding: a sandbox of one convolution. The engine itself says what size comes
 * out, or why the combination cannot work (POST /specs/validate with a spec of that one convolution, then flatten and dense); the page
 * shows the formula with the numbers and draws where the filter lands on the padded input.
 */
import { debounce, h, replaceChildren, s } from '../../dom.js';
import { say } from './ui.js';

export const id = 'stride';
export const title = 'Stride and padding: where the filter lands';

const FIELDS = /** @type {Array<[string, string, number, number, number]>} */ ([
  ['size', 'Input size W', 7, 1, 64], ['kernel', 'Kernel K', 3, 1, 15], ['stride', 'Stride S', 2, 1, 8], ['padding', 'Padding P', 1, 0, 16],
]);
const GRID_PX = 300;
/** A network must end in class scores: the convolution is followed by these (their shapes always fit). */
const TAIL = [{ type: 'flatten' }, { type: 'dense', units: 2 }];

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  /** @type {Record<string, HTMLInputElement>} */
  const inputs = {};
  const fields = FIELDS.map(([key, label, dflt, lo, hi]) => {
    const v = ctx.link.params[key];
    const el = h('input', { type: 'number', min: String(lo), max: String(hi + 10), step: '1', value: v && /^\d+$/.test(v) ? v : String(dflt),
      dataset: { learn: key }, on: { input: () => run() } });
    inputs[key] = el;
    return h('label', { class: 'field' }, h('span', { class: 'field-label', text: label }), el);
  });
  const view = {
    root, ctx, inputs, seq: 0,
    formula: h('div', { class: 'lm-formula', dataset: { learn: 'formula' } }),
    result: h('div', { class: 'lm-result', dataset: { learn: 'result' } }),
    grid: h('div', { class: 'lm-grid', dataset: { learn: 'grid' } }),
  };
  const run = debounce(() => check(view), 150);
  root.append(
    say('Two settings decide where a filter lands. The stride is how many pixels it jumps between positions. Padding adds a border of zeros around the input, so the filter can also be centred on the edge pixels.'),
    say('Together with the input size W and the kernel size K, they fix the output size: (W − K + 2P) / S + 1, rounded down. Try a few values; when a combination cannot work, the engine says why.'),
    h('div', { class: 'lm-controls' }, fields),
    view.formula, view.result, view.grid,
  );
  check(view);
  return view;
}

/** @param {ReturnType<typeof mount>} view */
function values(view) {
  /** @type {Record<string, number>} */
  const v = {};
  for (const [key] of FIELDS) v[key] = Math.floor(Number(view.inputs[key].value));
  return v;
}

/** @param {ReturnType<typeof mount>} view */
async function check(view) {
  const v = values(view);
  view.ctx.link.set(v);
  const spec = { input_shape: [1, v.size, v.size],
    layers: [{ type: 'conv2d', filters: 1, kernel_size: v.kernel, stride: v.stride, padding: v.padding }, ...TAIL] };
  const top = v.size - v.kernel + 2 * v.padding;
  const exact = top / v.stride + 1;
  replaceChildren(view.formula, `(W − K + 2P) / S + 1 = (${v.size} − ${v.kernel} + 2×${v.padding}) / ${v.stride} + 1 = `,
    `${top} / ${v.stride} + 1 = ${Number.isInteger(exact) ? exact : `${exact.toFixed(2)}, rounded down to ${Math.floor(exact)}`}`);
  const seq = ++view.seq;
  let res;
  try {
    res = await view.ctx.api.validateSpec(spec);
  } catch (err) {
    if (seq === view.seq) replaceChildren(view.result, h('span', { class: 'lm-bad', dataset: { learn: 'error' }, text: String(/** @type {any} */ (err).detail || err) }));
    return;
  }
  if (seq !== view.seq) return;
  if (!res.valid) {
    replaceChildren(view.result, 'The engine refuses it: ', h('span', { class: 'lm-bad', dataset: { learn: 'error' }, text: res.detail }));
    replaceChildren(view.grid);
    return;
  }
  const [, out, outW] = res.layers[0].output_shape;
  replaceChildren(view.result, 'The engine builds it: the output is ',
    h('strong', { dataset: { learn: 'out-size', value: String(out) }, text: `${out}×${outW}` }),
    `, so the filter lands at ${out * out} positions.`);
  drawGrid(view, v, out);
}

/**
 * The padded input as a grid of cells, the first and last window outlined and a dot at the centre of
 * every window; cells no window reaches are marked.
 * @param {ReturnType<typeof mount>} view
 * @param {Record<string, number>} v
 * @param {number} out
 */
function drawGrid(view, v, out) {
  const n = v.size + 2 * v.padding;
  if (n > 80) {
    replaceChildren(view.grid, say('(The grid is drawn for padded inputs up to 80 pixels wide.)'));
    return;
  }
  const c = Math.min(24, GRID_PX / n);
  const reach = (out - 1) * v.stride + v.kernel;
  const cells = [];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const pad = i < v.padding || j < v.padding || i >= n - v.padding || j >= n - v.padding;
      const unused = i >= reach || j >= reach;
      cells.push(s('rect', { x: j * c, y: i * c, width: c, height: c, class: `lm-cell${pad ? ' pad' : ''}${unused ? ' unused' : ''}` }));
    }
  }
  const dots = [];
  for (let i = 0; i < out; i++) {
    for (let j = 0; j < out; j++) {
      dots.push(s('circle', { cx: (j * v.stride + v.kernel / 2) * c, cy: (i * v.stride + v.kernel / 2) * c, r: Math.max(1.5, c / 6), class: 'lm-dot' }));
    }
  }
  const win = (/** @type {number} */ i, /** @type {number} */ j, /** @type {string} */ cls) => s('rect', {
    x: j * v.stride * c, y: i * v.stride * c, width: v.kernel * c, height: v.kernel * c, class: cls });
  const svg = s('svg', { viewBox: `0 0 ${n * c} ${n * c}`, width: n * c, height: n * c, role: 'img',
    'aria-label': `A ${n} by ${n} padded input with ${out * out} filter positions` },
  cells, win(0, 0, 'lm-window'), out > 1 ? win(out - 1, out - 1, 'lm-window last') : null, dots);
  replaceChildren(view.grid, svg, say('Grey: padding zeros. Outlined: the first and the last window. Dots: the centre of every window.',
    reach < n ? ' Red cells are never covered: the last stride did not fit.' : ''));
}

/**
 * Nothing here depends on the model or the image.
 * @param {ReturnType<typeof mount>} _view
 * @param {any} _state
 * @param {Set<string>} _changed
 */
export function render(_view, _state, _changed) {}
