// @ts-check
/**
 * The model-randomization sanity check: the map on this model beside the same method's map on a
 * copy with freshly initialized weights, and their rank correlation (Adebayo et al. 2018).
 */
import { drawMap } from '../../canvas.js';
import { h, setText } from '../../dom.js';
import { fmt } from '../../format.js';
import { mapScale } from './methods.js';

/** A hidden block; `renderSanity` fills it. */
export function createSanity() {
  const mine = h('canvas', { class: 'explain-map', 'aria-label': 'The map on this model' });
  const random = h('canvas', { class: 'explain-map', 'aria-label': 'The map on random weights' });
  const corr = h('p', { class: 'explain-corr', dataset: { explain: 'correlation' } });
  const note = h('p', { class: 'hint' });
  const el = h('div', { class: 'explain-sanity', hidden: true, dataset: { explain: 'sanity-result' } },
    h('h3', { class: 'subhead' }, 'Sanity check'),
    h('div', { class: 'explain-pair' },
      h('figure', {}, mine, h('figcaption', {}, 'This model')),
      h('figure', {}, random, h('figcaption', {}, 'Random weights'))),
    corr, note);
  return { el, mine, random, corr, note };
}

/**
 * @param {ReturnType<typeof createSanity>} s
 * @param {any} ex the explanation shown (null: none)
 * @param {any} _state
 */
export function renderSanity(s, ex, _state) {
  const r = ex?.checks?.randomization;
  s.el.hidden = !r;
  if (!r) return;
  for (const [canvas, map] of /** @type {Array<[HTMLCanvasElement, any]>} */ ([[s.mine, ex.map], [s.random, r.map]])) {
    const [hh, ww] = map.shape;
    const sc = mapScale(map.data, ex.signed);
    drawMap(canvas, map.data, 0, hh, ww, sc.lo, sc.hi, sc.cmap);
  }
  const rho = r.rank_correlation;
  setText(s.corr, `Rank correlation ${fmt(rho, 2)}`);
  s.corr.dataset.value = String(rho);
  setText(s.note, `${Math.abs(rho) >= 0.5 ? 'High: the map barely changed' : 'Low: the map changed'} when the weights were thrown away. `
    + 'A map that stays the same on random weights shows the image more than what the model learned.');
}
