// @ts-check
/**
 * Watch it learn on one screen: a compact strip of the loss and accuracy curves docked between the
 * stage bar and the network overview, so both are on screen while training plays (the full curves
 * stay in the Training tab). It keeps its place whenever a model is loaded, so nothing moves when training starts.
 */
import { smooth } from '../charts.js';
import { h, s, setText } from '../dom.js';
import { fmt, fmtInt, fmtPct } from '../format.js';

const W = 300; // viewBox units; the SVG stretches to its box
const H = 44;
const DRAW_MS = 250; // at most four redraws a second while playing
const MAX_POINTS = 400;

/**
 * @param {string} title
 * @param {string} cls
 */
function spark(title, cls) {
  const value = h('span', { class: 'spark-value' }, '–');
  const raw = s('path', { class: 'spark-raw' });
  const line = s('path', { class: 'spark-line' });
  const svg = s('svg', { class: `spark-svg ${cls}`, viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' }, raw, line);
  const el = h('figure', { class: 'spark' }, h('figcaption', {}, h('span', { class: 'spark-title' }, title), value), svg);
  return { el, value, raw, line };
}

/**
 * @param {Array<[number, number]>} pts
 * @param {(v: number) => number} x
 * @param {(v: number) => number} y
 */
const pathOf = (pts, x, y) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');

/**
 * Draw one curve: its raw points faint, the smoothed line on top, the last smoothed value as text.
 * @param {ReturnType<typeof spark>} sp
 * @param {Array<[number, number]>} pts
 * @param {(v: number) => string} format
 */
function drawSpark(sp, pts, format) {
  const stride = Math.max(1, Math.ceil(pts.length / MAX_POINTS));
  const few = pts.filter((p, i) => i % stride === 0 && Number.isFinite(p[1]));
  const sm = smooth(pts, 0.9).filter((_, i) => i % stride === 0);
  if (!few.length || !sm.length) {
    for (const p of [sp.raw, sp.line]) p.removeAttribute('d');
    setText(sp.value, '–');
    return;
  }
  const x0 = few[0][0];
  const x1 = Math.max(x0 + 1, few[few.length - 1][0]);
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of few) [lo, hi] = [Math.min(lo, p[1]), Math.max(hi, p[1])];
  if (!(hi > lo)) [lo, hi] = [lo - 0.5, hi + 0.5];
  const x = (/** @type {number} */ v) => ((v - x0) / (x1 - x0)) * W;
  const y = (/** @type {number} */ v) => 3 + (1 - (v - lo) / (hi - lo)) * (H - 6);
  sp.raw.setAttribute('d', pathOf(few, x, y));
  sp.line.setAttribute('d', pathOf(sm, x, y));
  setText(sp.value, format(sm[sm.length - 1][1]));
}

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const loss = spark('Loss', 'spark-loss');
  const acc = spark('Accuracy', 'spark-acc');
  const step = h('span', { class: 'live-dock-step' });
  root.append(h('div', { class: 'live-dock-head' }, h('span', { class: 'live-dock-title' }, 'Learning'), step), loss.el, acc.el);
  root.hidden = true;
  return { root, ctx, loss, acc, step, lastDraw: 0, timer: /** @type {any} */ (0) };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!['history', 'training', 'model'].some((k) => changed.has(k))) return;
  view.root.hidden = !state.model; // always there with a model: nothing moves when training starts
  if (view.root.hidden || !(changed.has('history') || changed.has('model'))) return;
  const wait = DRAW_MS - (performance.now() - view.lastDraw);
  if (wait > 0 && state.training.playing) {
    if (!view.timer) view.timer = setTimeout(() => { view.timer = 0; draw(view, view.ctx.store.get()); }, wait);
    return;
  }
  draw(view, state);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 */
function draw(view, state) {
  view.lastDraw = performance.now();
  const steps = state.history.steps;
  drawSpark(view.loss, steps.map((p) => [p.step, p.loss]), (v) => fmt(v));
  drawSpark(view.acc, steps.map((p) => [p.step, p.accuracy]), fmtPct);
  setText(view.step, steps.length ? `step ${fmtInt(steps[steps.length - 1].step)}` : 'no steps yet');
}
