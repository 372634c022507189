// @ts-check
/**
 * The overview's mark on a frozen layer's column: a small lock badge in the header's top corner
 * (positioned, so it never moves the column's maps).
 */
import { h, s } from './dom.js';

const WORDS_MIN_W = 70; // px: a narrower column shows only the lock

/**
 * @param {Array<{layer: number, el: HTMLElement, plan: {width: number}}>} columns
 * @param {Record<string, any>} model
 */
export function markFrozen(columns, model) {
  for (const col of columns) {
    const info = model.layers[col.layer];
    const frozen = !!info && info.parameters > 0 && info.trainable === false;
    col.el.classList.toggle('is-frozen', frozen);
    const head = col.el.querySelector('.ov-head');
    let badge = head?.querySelector('.ov-frozen');
    if (frozen && head && !badge) {
      badge = h('span', { class: 'ov-frozen', title: 'Frozen: training leaves these weights unchanged', role: 'img', 'aria-label': 'frozen' },
        s('svg', { viewBox: '0 0 12 12', width: '10', height: '10', 'aria-hidden': 'true' },
          s('rect', { x: '2', y: '5.5', width: '8', height: '5.5', rx: '1' }),
          s('path', { d: 'M3.8 5.5V4a2.2 2.2 0 0 1 4.4 0v1.5', fill: 'none' })),
        col.plan.width >= WORDS_MIN_W ? h('span', {}, 'frozen') : null);
      head.append(badge);
    } else if (!frozen && badge) badge.remove();
  }
}
