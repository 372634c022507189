// @ts-check
/**
 * The deletion curve: the class probability as the most-attributed pixels are removed first, against
 * the fraction removed, with its area (lower: the map found what the prediction rests on). Curves
 * of earlier methods on the same image and class stay on the chart for comparison.
 */
import { lut } from '../../colormap.js';
import { h, replaceChildren, s, setText } from '../../dom.js';
import { fmt, prettyClass } from '../../format.js';

const W = 240;
const H = 130;
const PAD = { left: 30, right: 8, top: 8, bottom: 22 };
/** Line colours: entries of the shared colour tables, far apart. */
const COLOURS = [['rdbu', 235], ['rdbu', 20], ['puor', 235], ['puor', 20], ['viridis', 130], ['magma', 110]];

/** @param {number} i */
function colour(i) {
  const [name, k] = COLOURS[i % COLOURS.length];
  const t = lut(/** @type {string} */ (name));
  const j = 4 * /** @type {number} */ (k);
  return `rgb(${t[j]} ${t[j + 1]} ${t[j + 2]})`;
}

/** @param {string} css */
function swatch(css) {
  const el = h('span', { class: 'explain-swatch' });
  el.style.background = css;
  return el;
}

/** A hidden block; `renderCurves` fills it. */
export function createCurves() {
  const svg = s('svg', { class: 'explain-chart', viewBox: `0 0 ${W} ${H}`, width: String(W), height: String(H), role: 'img',
    'aria-label': 'Deletion curves' });
  const title = h('h3', { class: 'subhead' }, 'Deletion curve');
  const keys = h('ul', { class: 'explain-keys', dataset: { explain: 'curves' } });
  const note = h('p', { class: 'hint' }, 'Class probability as the pixels the map ranks highest are set to black first. '
    + 'Lower area: the map found what the prediction rests on.');
  const el = h('div', { class: 'explain-deletion', hidden: true, dataset: { explain: 'deletion-result' } }, title, svg, keys, note);
  return { el, svg, title, keys };
}

/** @param {number} f @param {number} p */
const pt = (f, p) => `${(PAD.left + f * (W - PAD.left - PAD.right)).toFixed(1)},${(PAD.top + (1 - p) * (H - PAD.top - PAD.bottom)).toFixed(1)}`;

/**
 * @param {ReturnType<typeof createCurves>} c
 * @param {{key: string, className: string, curves: import('./run.js').Curve[]} | null | undefined} data
 * @param {any} ex the explanation shown: its image and class pick the curves
 */
export function renderCurves(c, data, ex) {
  const show = !!(data && ex && data.key === `${ex.key}|${ex.target}` && data.curves.length);
  c.el.hidden = !show;
  if (!show || !data) return;
  setText(c.title, `Deletion curve · ${prettyClass(data.className)}`);
  const axes = [
    s('line', { x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom, class: 'axis' }),
    s('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom, class: 'axis' }),
    s('text', { x: PAD.left - 4, y: PAD.top + 8, 'text-anchor': 'end', class: 'tick' }, '1'),
    s('text', { x: PAD.left - 4, y: H - PAD.bottom, 'text-anchor': 'end', class: 'tick' }, '0'),
    s('text', { x: PAD.left, y: H - 6, class: 'tick' }, '0'),
    s('text', { x: W - PAD.right, y: H - 6, 'text-anchor': 'end', class: 'tick' }, 'all removed'),
  ];
  const lines = data.curves.map((cv, i) => s('polyline', { fill: 'none', stroke: colour(i), 'stroke-width': '2',
    points: cv.fractions.map((f, j) => pt(f, Math.max(0, Math.min(1, cv.scores[j])))).join(' '), dataset: { method: cv.method } }));
  replaceChildren(c.svg, axes, lines);
  const summary = data.curves.map((cv) => `${cv.label} area ${fmt(cv.auc, 3)}`).join('; ');
  c.svg.setAttribute('aria-label', `Deletion curves for ${prettyClass(data.className)}: ${summary}`);
  replaceChildren(c.keys, data.curves.map((cv, i) => h('li', { dataset: { method: cv.method, auc: String(cv.auc) } },
    swatch(colour(i)), `${cv.label} · area ${fmt(cv.auc, 3)}`)));
}
