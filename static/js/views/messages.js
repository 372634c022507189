// @ts-check
/**
 * The message strip: the server's error text (as text, never HTML) or a short notice.
 */
import { h, setText } from '../dom.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const text = h('span', { class: 'message-text', dataset: { messageText: '' } });
  const close = h('button', { type: 'button', class: 'message-close', 'aria-label': 'Dismiss message' }, '×');
  const box = h('div', { class: 'message', hidden: true, dataset: { message: '' } }, text, close);
  close.addEventListener('click', () => ctx.store.set({ message: null }));
  root.append(box);
  return { root, box, text };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('message')) return;
  const m = state.message;
  view.box.hidden = !m;
  if (!m) return;
  view.box.className = `message message-${m.kind}`;
  view.box.dataset.kind = m.kind;
  view.box.setAttribute('role', m.kind === 'error' ? 'alert' : 'status');
  setText(view.text, m.text);
}
