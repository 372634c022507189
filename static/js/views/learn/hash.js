// @ts-check
/**
 * The Learn mode's deep link, kept in the URL hash:
 * `#learn=<step>&model=<id>&input=sample:<split>:<index> | image:<id>` plus any step options
 * (e.g. `&layer=0&filter=2&row=5&col=7`). The model and input are read by route.js's `parseRoute`
 * (the same spelling as the page's address, `?model=...&input=...`), so both links agree.
 */
import { parseRoute } from '../../route.js';

/**
 * @typedef {import('../../state.js').InputRef} InputRef
 * @typedef {{step: string | null, model: string | null, input: InputRef | null, params: Record<string, string>}} LearnLink
 */

/**
 * The link form of an input reference.
 * @param {InputRef | null} ref
 */
export function formatInput(ref) {
  if (!ref) return '';
  return ref.kind === 'sample' ? `sample:${ref.split}:${ref.index}` : `image:${ref.id}`;
}

/**
 * Read a hash ("#learn=conv&model=..."); `step` is null when the hash opens no Learn step.
 * @param {string} hash
 * @returns {LearnLink}
 */
export function parseHash(hash) {
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  /** @type {Record<string, string>} */
  const params = {};
  for (const [k, v] of q) if (!['learn', 'model', 'input'].includes(k)) params[k] = v;
  const r = parseRoute(q.toString());
  return { step: q.get('learn'), model: r.model ?? null, input: r.input ?? null, params };
}

/**
 * Write a link as a hash ("#learn=...&model=...&input=...&<params>").
 * @param {LearnLink} link
 */
export function formatHash(link) {
  const q = new URLSearchParams();
  if (link.step) q.set('learn', link.step);
  if (link.model) q.set('model', link.model);
  if (link.input) q.set('input', formatInput(link.input));
  for (const [k, v] of Object.entries(link.params)) if (v !== '' && v !== undefined) q.set(k, v);
  return `#${q.toString()}`;
}

/**
 * Is `ref` the same input as `other` (ignoring its label and name)?
 * @param {InputRef | null} ref
 * @param {InputRef | null} other
 */
export function sameInput(ref, other) {
  return formatInput(ref) === formatInput(other);
}
