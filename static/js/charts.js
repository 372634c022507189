// @ts-check
/**
 * A small SVG line chart for training curves: raw points under a smoothed line, test points as
 * markers, dashed event lines (hyperparameter changes), linear or log y axis, and hover values.
 */
import { h, s } from './dom.js';
import { fmt, fmtInt } from './format.js';
import { hideTooltip, showTooltip } from './tooltip.js';

const H = 210;
const M = { top: 12, right: 14, bottom: 28, left: 48 };
const MAX_DOTS = 1500;

/**
 * @typedef {{name: string, cls: string, points: Array<[number, number]>, style: 'dots'|'line'|'marks'}} Series
 * @typedef {{series: Series[], events: Array<{step: number, label: string}>, log?: boolean, yRange?: [number, number], format?: (v: number) => string}} ChartData
 */

/**
 * Round tick values for [lo, hi].
 * @param {number} lo
 * @param {number} hi
 * @param {number} count
 */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo) || !Number.isFinite(hi - lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((k) => k >= raw) || raw;
  const first = Math.ceil(lo / step) * step;
  // counted, not stepped: a range far narrower than its values (a flat loss curve) would otherwise
  // add a step too small to change v, and loop until the array overflows
  const n = Math.min(Math.floor((hi - first) / step + 1e-9) + 1, 4 * count + 1);
  const out = [];
  for (let i = 0; i < n; i++) out.push(Number((first + i * step).toPrecision(12)));
  return out.length ? out : [lo];
}

/**
 * Binary search: index of the point whose x is nearest `x` (points sorted by x).
 * @param {Array<[number, number]>} pts
 * @param {number} x
 */
function nearest(pts, x) {
  let lo = 0;
  let hi = pts.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (pts[mid][0] < x) lo = mid;
    else hi = mid;
  }
  return Math.abs(pts[lo][0] - x) <= Math.abs(pts[hi][0] - x) ? lo : hi;
}

/**
 * @param {{label: string}} opts accessible name
 */
export function createChart(opts) {
  const svg = /** @type {SVGSVGElement} */ (s('svg', { class: 'chart-svg', role: 'img', 'aria-label': opts.label, height: String(H) }));
  const el = h('div', { class: 'chart' }, svg);
  const empty = h('p', { class: 'chart-empty' }, 'No steps yet: press Step or Play.');
  el.append(empty);
  /** @type {{data: ChartData | null, x: (v: number) => number, xi: (px: number) => number, y: (v: number) => number, w: number}} */
  const cur = { data: null, x: (v) => v, xi: (v) => v, y: (v) => v, w: 0 };
  const guide = s('line', { class: 'chart-guide', y1: String(M.top), y2: String(H - M.bottom), visibility: 'hidden' });

  svg.addEventListener('pointermove', (ev) => {
    const d = cur.data;
    if (!d) return;
    const r = svg.getBoundingClientRect();
    const px = ev.clientX - r.left;
    if (px < M.left || px > cur.w - M.right) return hide();
    const step = cur.xi(px);
    const lines = [];
    let at = step;
    for (const se of d.series) {
      if (!se.points.length) continue;
      const p = se.points[nearest(se.points, step)];
      if (se.style !== 'marks' || Math.abs(cur.x(p[0]) - px) < 12) {
        lines.push(`${se.name}: ${(d.format || fmt)(p[1])}`);
        if (se.style !== 'marks') at = p[0];
      }
    }
    for (const e of d.events) if (Math.abs(cur.x(e.step) - px) < 6) lines.push(`changed: ${e.label}`);
    guide.setAttribute('x1', String(cur.x(at)));
    guide.setAttribute('x2', String(cur.x(at)));
    guide.setAttribute('visibility', 'visible');
    showTooltip([`step ${fmtInt(Math.round(at))}`, ...lines], ev.clientX, ev.clientY);
  });
  const hide = () => {
    guide.setAttribute('visibility', 'hidden');
    hideTooltip();
  };
  svg.addEventListener('pointerleave', hide);

  /**
   * Redraw with new data (cheap enough for a few times a second).
   * @param {ChartData} data
   */
  function update(data) {
    cur.data = data;
    const w = Math.max(240, Math.round(el.clientWidth || 480));
    cur.w = w;
    svg.setAttribute('viewBox', `0 0 ${w} ${H}`);
    svg.setAttribute('width', String(w));
    const all = data.series.flatMap((se) => se.points);
    empty.hidden = all.length > 0;
    let x0 = Infinity;
    let x1 = -Infinity;
    for (const p of all) {
      if (p[0] < x0) x0 = p[0];
      if (p[0] > x1) x1 = p[0];
    }
    if (!all.length) x0 = 0;
    x1 = Math.max(x0 + 1, x1);
    const log = !!data.log;
    const tf = (/** @type {number} */ v) => (log ? Math.log10(Math.max(v, 1e-8)) : v);
    let [y0, y1] = data.yRange || [Infinity, -Infinity];
    if (!data.yRange) {
      for (const p of all) if (Number.isFinite(p[1])) { y0 = Math.min(y0, tf(p[1])); y1 = Math.max(y1, tf(p[1])); }
      if (!(y1 > y0)) { y0 = Number.isFinite(y0) ? y0 - 0.5 : 0; y1 = y0 + 1; }
      const pad = (y1 - y0) * 0.06;
      y0 -= pad;
      y1 += pad;
      if (!log && y0 < 0 && all.every((p) => p[1] >= 0)) y0 = 0;
    }
    const iw = w - M.left - M.right;
    const ih = H - M.top - M.bottom;
    cur.x = (v) => M.left + ((v - x0) / (x1 - x0)) * iw;
    cur.xi = (px) => x0 + ((px - M.left) / iw) * (x1 - x0);
    cur.y = (v) => M.top + (1 - (tf(v) - y0) / (y1 - y0)) * ih;
    const X = cur.x;
    const Y = cur.y;
    const kids = [];
    const yt = log ? niceTicks(y0, y1, 4).filter((v) => Number.isInteger(v)).map((v) => 10 ** v) : niceTicks(y0, y1, 4);
    for (const v of yt) {
      const yy = Y(v);
      if (yy < M.top - 1 || yy > H - M.bottom + 1) continue;
      kids.push(s('line', { class: 'chart-grid', x1: String(M.left), x2: String(w - M.right), y1: String(yy), y2: String(yy) }));
      kids.push(s('text', { class: 'chart-tick', x: String(M.left - 6), y: String(yy + 3.5), 'text-anchor': 'end' }, (data.format || fmt)(v)));
    }
    for (const v of niceTicks(x0, x1, Math.max(2, Math.floor(iw / 90))).filter((t) => Number.isInteger(t))) {
      kids.push(s('text', { class: 'chart-tick', x: String(X(v)), y: String(H - M.bottom + 16), 'text-anchor': 'middle' }, fmtInt(v)));
    }
    kids.push(s('line', { class: 'chart-axis', x1: String(M.left), x2: String(w - M.right), y1: String(H - M.bottom), y2: String(H - M.bottom) }));
    for (const e of data.events) {
      if (e.step < x0 || e.step > x1) continue;
      kids.push(s('line', { class: 'chart-event', x1: String(X(e.step)), x2: String(X(e.step)), y1: String(M.top), y2: String(H - M.bottom) }));
    }
    for (const se of data.series) {
      const pts = se.points.filter((p) => Number.isFinite(p[1]) && (!log || p[1] > 0));
      if (!pts.length) continue;
      if (se.style === 'line') {
        kids.push(s('path', { class: `chart-line ${se.cls}`, d: pts.map((p, i) => `${i ? 'L' : 'M'}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join('') }));
      } else if (se.style === 'dots') {
        const stride = Math.max(1, Math.ceil(pts.length / MAX_DOTS));
        let d = '';
        for (let i = 0; i < pts.length; i += stride) d += `M${X(pts[i][0]).toFixed(1)},${Y(pts[i][1]).toFixed(1)}h0`;
        kids.push(s('path', { class: `chart-dots ${se.cls}`, d }));
      } else {
        for (const p of pts) kids.push(s('circle', { class: `chart-mark ${se.cls}`, cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: '3.5' }));
      }
    }
    kids.push(guide);
    svg.replaceChildren(...kids);
  }

  return { el, update };
}

/**
 * Exponential moving average of y, bias-corrected (as TensorBoard's smoothing).
 * @param {Array<[number, number]>} pts
 * @param {number} alpha weight of the past, 0..1
 * @returns {Array<[number, number]>}
 */
export function smooth(pts, alpha) {
  let acc = 0;
  let norm = 0;
  /** @type {Array<[number, number]>} */
  const out = [];
  for (const [x, y] of pts) {
    if (!Number.isFinite(y)) continue;
    acc = alpha * acc + (1 - alpha) * y;
    norm = alpha * norm + (1 - alpha);
    out.push([x, acc / norm]);
  }
  return out;
}
