// @ts-check
/**
 * The class-probability bar chart: one labelled bar per class, the prediction highlighted.
 * Built once per model, updated in place (no layout jumps while training). Each class is a button
 * (`data-unit` = class index) so the caller can make a softmax unit clickable and hoverable.
 */
import { h, setText } from './dom.js';
import { fmt, fmtPct, prettyClass } from './format.js';

/**
 * @param {string[]} classes
 * @param {string} [label]
 */
export function createProbs(classes, label = 'Class probabilities') {
  const list = h('ol', { class: 'probs', 'aria-label': label });
  classes.forEach((name, i) => {
    list.append(
      h(
        'li',
        { class: 'prob' },
        h(
          'button',
          { type: 'button', class: 'prob-btn', dataset: { unit: String(i) }, 'aria-pressed': 'false' },
          h('span', { class: 'prob-name', title: prettyClass(name) }, prettyClass(name)),
          h('span', { class: 'prob-track' }, h('span', { class: 'prob-fill' })),
          h('span', { class: 'prob-value' }, '–'),
        ),
      ),
    );
  });
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
    const suffix = `${i === predicted ? ' (prediction)' : ''}${i === truth ? ' (true class)' : ''}`;
    const label = `${name}: ${fmtPct(p)}${suffix}`;
    const btn = /** @type {HTMLElement} */ (li.querySelector('.prob-btn'));
    if (btn.getAttribute('aria-label') !== label) btn.setAttribute('aria-label', label);
  }
}

/**
 * Mark the selected class (null: none).
 * @param {HTMLElement} list from createProbs
 * @param {number | null} unit
 */
export function markProb(list, unit) {
  list.querySelectorAll('.prob-btn').forEach((b, i) => {
    b.setAttribute('aria-pressed', String(i === unit));
    b.parentElement?.classList.toggle('is-selected', i === unit);
  });
}

/**
 * Tooltip lines of class row `k`.
 * @param {string} name the class
 * @param {number} k
 * @param {string} layer e.g. "Softmax 7"
 * @param {number} p its probability
 * @param {number | null} score the input to softmax, when known
 */
export function probLines(name, k, layer, p, score) {
  return [`${prettyClass(name)} · unit ${k} of ${layer}`, `probability ${fmtPct(p)}`, ...(score === null ? [] : [`score before softmax ${fmt(score, 4)}`])];
}
