// @ts-check
/**
 * Tiny DOM helpers. Text always goes in as text nodes (never innerHTML): user text is never HTML.
 */

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * @typedef {Record<string, any>} Attrs
 * Keys: `class`, `text`, `dataset` (object), `on` (event name -> listener), `props` (assigned as
 * element properties, e.g. value/checked), anything else is an attribute (true -> empty, false/null -> omitted).
 */

/**
 * @param {Element} el
 * @param {Attrs} attrs
 */
function applyAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', String(value));
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(/** @type {HTMLElement} */ (el).dataset, value);
    else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === 'props') Object.assign(el, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

/**
 * Create an HTML element.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs} [attrs]
 * @param {...(Node|string|number|null|undefined|false|Array<any>)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * Create an SVG element.
 * @param {string} tag
 * @param {Attrs} [attrs]
 * @param {...(Node|string|null|undefined|false|Array<any>)} children
 * @returns {SVGElement}
 */
export function s(tag, attrs = {}, ...children) {
  const el = /** @type {SVGElement} */ (document.createElementNS(SVG_NS, tag));
  applyAttrs(el, attrs);
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {Array<any>} children
 */
function append(el, children) {
  for (const c of children.flat(3)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

/**
 * Replace every child of `el`.
 * @param {Element} el
 * @param {...(Node|string|null|undefined|false|Array<any>)} children
 */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Set text only when it changed (avoids needless layout work in hot paths).
 * @param {Element} el
 * @param {string} text
 */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * A labelled form field: `<label><span>text</span> control</label>`.
 * @param {string} text
 * @param {HTMLElement} control
 * @param {string} [cls]
 */
export function field(text, control, cls = 'field') {
  return h('label', { class: cls }, h('span', { class: 'field-label' }, text), control);
}

/**
 * Debounce a function.
 * @template {(...args: any[]) => void} F
 * @param {F} fn
 * @param {number} ms
 * @returns {F & {cancel: () => void}}
 */
export function debounce(fn, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const wrapped = /** @type {any} */ ((/** @type {any[]} */ ...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  });
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}
