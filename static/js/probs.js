// @ts-check
/**
 * The class-probability bar chart: one labelled bar per class, the prediction highlighted.
 * Built once per model, updated in place (no layout jumps while training).
 */
import { h, setText } from './dom.js';
import { fmtPct, prettyClass } from './format.js';

/**
 * @param {string[]} classes
 * @param {string} [label]
 */
export function createProbs(classes, label = 'Class probabilities') {
  const list = h('ol', { class: 'probs', 'aria-label': label });
  for (const name of classes) {
    list.append(
      h(
        'li',
        { class: 'prob' },
        h('span', { class: 'prob-name', title: prettyClass(name) }, prettyClass(name)),
        h('span', { class: 'prob-track' }, h('span', { class: 'prob-fill' })),
        h('span', { class: 'prob-value' }, '–'),
      ),
    );
  }
  return list;
}

/**
 * @param {HTMLElement} list from createProbs
 * @param {number[]} probabilities
 * @param {number} predicted index of the predicted class
 * @param {number | null} [truth] index of the true class when known
 */
export function updateProbs(list, probabilities, predicted, truth = null) {
  const items = list.children;
  for (let i = 0; i < items.length; i++) {
    const li = /** @type {HTMLElement} */ (items[i]);
    const p = probabilities[i] ?? 0;
    /** @type {HTMLElement} */ (li.querySelector('.prob-fill')).style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    setText(/** @type {Element} */ (li.querySelector('.prob-value')), fmtPct(p));
    li.classList.toggle('is-pred', i === predicted);
    li.classList.toggle('is-truth', i === truth);
    const name = /** @type {HTMLElement} */ (li.querySelector('.prob-name')).textContent;
    const suffix = i === predicted ? ' (prediction)' : '';
    li.setAttribute('aria-label', `${name}: ${fmtPct(p)}${suffix}`);
  }
}
