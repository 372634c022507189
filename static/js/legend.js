// @ts-check
/**
 * Colour legends with numbers: a gradient bar with its low, zero (for diverging maps) and high values.
 */
import { COLORMAPS, cssGradient } from './colormap.js';
import { h, setText } from './dom.js';
import { fmt } from './format.js';

/**
 * Create an empty legend element; fill it with `updateLegend`.
 * @param {string} [label] accessible name, e.g. "Colour scale of conv 1"
 * @param {string} [cls]
 */
export function createLegend(label = 'Colour scale', cls = '') {
  return h(
    'div',
    { class: `legend ${cls}`, role: 'img', 'aria-label': label, dataset: { label } },
    h('div', { class: 'legend-bar', dataset: { bar: '' } }),
    h(
      'div',
      { class: 'legend-ticks' },
      h('span', { dataset: { lo: '' } }),
      h('span', { dataset: { mid: '' } }),
      h('span', { dataset: { hi: '' } }),
    ),
  );
}

/**
 * Show a range on a legend. Cheap when nothing changed (called on every live update).
 * @param {HTMLElement} el from createLegend
 * @param {{lo: number, hi: number, cmap: string}} scale
 * @param {string} [note] replaces the middle tick (e.g. "per channel")
 * @param {number} [digits] significant digits of the numbers (below 3: a compact legend, no middle tick)
 */
export function updateLegend(el, scale, note, digits = 3) {
  const bar = /** @type {HTMLElement} */ (el.querySelector('[data-bar]'));
  const gradient = cssGradient(scale.cmap);
  if (el.dataset.cmap !== scale.cmap) {
    bar.style.backgroundImage = gradient;
    el.dataset.cmap = scale.cmap;
  }
  const diverging = COLORMAPS[scale.cmap]?.kind === 'diverging';
  const lo = fmt(scale.lo, digits);
  const hi = fmt(scale.hi, digits);
  const mid = note ?? (diverging ? '0' : digits < 3 ? '' : fmt((scale.lo + scale.hi) / 2, digits));
  const text = `${scale.cmap}|${lo}|${mid}|${hi}`;
  if (el.dataset.text === text) return; // the same numbers: nothing to redo
  el.dataset.text = text;
  setText(/** @type {Element} */ (el.querySelector('[data-lo]')), lo);
  setText(/** @type {Element} */ (el.querySelector('[data-mid]')), mid);
  setText(/** @type {Element} */ (el.querySelector('[data-hi]')), hi);
  if (el.classList.contains('legend-compact')) fitTicks(el, lo, hi);
  const label = `${el.dataset.label}: ${COLORMAPS[scale.cmap]?.label ?? scale.cmap} from ${lo} to ${hi}`;
  if (el.getAttribute('aria-label') !== label) el.setAttribute('aria-label', label);
}

/**
 * Keep a compact legend's numbers inside its bar (measured only when they change): first without the
 * middle tick and in a smaller font, then, for a range symmetric about zero, as one "±max".
 * @param {HTMLElement} el
 * @param {string} lo
 * @param {string} hi
 */
function fitTicks(el, lo, hi) {
  const ticks = /** @type {HTMLElement} */ (el.querySelector('.legend-ticks'));
  const overflows = () => ticks.scrollWidth > ticks.clientWidth;
  el.classList.remove('legend-tight');
  if (!overflows()) return;
  el.classList.add('legend-tight');
  if (overflows() && lo === `−${hi}`) {
    setText(/** @type {Element} */ (el.querySelector('[data-lo]')), '');
    setText(/** @type {Element} */ (el.querySelector('[data-hi]')), `±${hi}`);
  }
}
