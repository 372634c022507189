// @ts-check
/**
 * The 3×3 grid of a unit's top images: each the crop of the receptive field where the unit fired
 * most, with the deconvnet projection of that one activation (what in the crop drove it) shown on
 * hover, or for all at once with the toggle.
 */
import { h, replaceChildren } from '../../dom.js';
import { fmt } from '../../format.js';

/**
 * @typedef {{index: number, row: number, col: number, value: number | null, box: number[], crop: string, projection: string}} TopItem
 */

/** @param {string} b64 */
const pngUrl = (b64) => `data:image/png;base64,${b64}`;

/** A grid and its toggle; `showItems` fills it. */
export function createGrid() {
  const toggle = h('input', { type: 'checkbox', dataset: { lookfor: 'projections' } });
  const toggleLabel = h('label', { class: 'field-inline lookfor-toggle', hidden: true }, toggle, 'Show what it reacts to (deconvnet)');
  const el = h('div', { class: 'lookfor-grid', dataset: { lookfor: 'grid' }, role: 'list' });
  toggle.addEventListener('change', () => flip(el, toggle.checked));
  return { el, toggle, toggleLabel };
}

/**
 * @param {HTMLElement} grid
 * @param {boolean} projected
 */
function flip(grid, projected) {
  for (const img of grid.querySelectorAll('img')) {
    const d = /** @type {HTMLImageElement} */ (img).dataset;
    /** @type {HTMLImageElement} */ (img).src = projected ? d.projection || '' : d.crop || '';
  }
}

/**
 * @param {ReturnType<typeof createGrid>} g
 * @param {TopItem[]} items best first
 */
export function showItems(g, items) {
  g.toggleLabel.hidden = !items.length;
  const figures = items.map((it, i) => {
    const [top, left, bottom, right] = it.box;
    const crop = pngUrl(it.crop);
    const projection = pngUrl(it.projection);
    const img = h('img', { src: g.toggle.checked ? projection : crop, alt: `Image ${it.index}, rows ${top}–${bottom - 1}, columns ${left}–${right - 1}`,
      dataset: { crop, projection } });
    const fig = h('figure', { class: 'lookfor-item', role: 'listitem', dataset: { lookfor: 'item' },
      title: `#${i + 1}: image ${it.index}, peak at row ${it.row}, column ${it.col}` },
    img, h('figcaption', {}, it.value === null ? '—' : fmt(it.value, 3)));
    fig.addEventListener('pointerenter', () => { img.src = g.toggle.checked ? crop : projection; });
    fig.addEventListener('pointerleave', () => { img.src = g.toggle.checked ? projection : crop; });
    return fig;
  });
  replaceChildren(g.el, figures);
}

/** @param {ReturnType<typeof createGrid>} g */
export function clearGrid(g) {
  replaceChildren(g.el);
  g.toggleLabel.hidden = true;
}
