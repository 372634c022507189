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
 * @param {HTMLElement[]} [unfitted] a compact legend whose numbers changed goes here instead of being
 *   fitted at once; fit them together with `fitLegends` (each fit measures the page's layout, twice
 *   for a whole row of legends instead of twice for each: ~30 ms of the overview's first drawing)
 */
export function updateLegend(el, scale, note, digits = 3, unfitted) {
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
  if (el.classList.contains('legend-compact')) {
    if (unfitted) unfitted.push(el);
    else fitLegends([el]);
  }
  const label = `${el.dataset.label}: ${COLORMAPS[scale.cmap]?.label ?? scale.cmap} from ${lo} to ${hi}`;
  if (el.getAttribute('aria-label') !== label) el.setAttribute('aria-label', label);
}

/**
 * Keep compact legends' numbers inside their bars (measured only when they change): first without
 * the middle tick and in a smaller font, then, for a range symmetric about zero, as one "±max". All
 * the legends are changed, then all measured, so the page is laid out twice however many there are.
 * @param {HTMLElement[]} els legends from `updateLegend`
 */
export function fitLegends(els) {
  const overflows = (/** @type {HTMLElement} */ el) => {
    const ticks = /** @type {HTMLElement} */ (el.querySelector('.legend-ticks'));
    return ticks.scrollWidth > ticks.clientWidth;
  };
  for (const el of els) el.classList.remove('legend-tight');
  const wide = els.filter(overflows);
  for (const el of wide) el.classList.add('legend-tight');
  for (const el of wide.filter(overflows)) {
    const lo = /** @type {Element} */ (el.querySelector('[data-lo]'));
    const hi = /** @type {Element} */ (el.querySelector('[data-hi]'));
    const top = hi.textContent ?? '';
    if (lo.textContent === `−${top}`) {
      setText(lo, '');
      setText(hi, `±${top}`);
    }
  }
}
