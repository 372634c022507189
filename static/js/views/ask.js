// @ts-check
/**
 * A question the page asks before it acts (today: training a ready-trained model makes a copy,
 * copies.js), shown in the message strip with its two answers until one is clicked.
 */
import { h, setText } from '../dom.js';

/**
 * @param {HTMLElement} root the message strip
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const text = h('span', { class: 'message-text' });
  const yes = h('button', { type: 'button', class: 'btn btn-small', dataset: { answer: 'yes' } });
  const no = h('button', { type: 'button', class: 'btn btn-ghost btn-small', dataset: { answer: 'no' } });
  yes.addEventListener('click', () => ctx.actions.answerCopy(true));
  no.addEventListener('click', () => ctx.actions.answerCopy(false));
  const box = h('div', { class: 'message', role: 'alertdialog', 'aria-label': 'Train a copy?', hidden: true, dataset: { ask: 'copy' } },
    text, yes, no);
  box.addEventListener('keydown', (ev) => ev.key === 'Escape' && ctx.actions.answerCopy(false));
  root.append(box);
  return { box, text, yes, no };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('ask')) return;
  const { ask } = state;
  view.box.hidden = !ask;
  setText(view.text, ask?.text ?? '');
  setText(view.yes, ask?.yes ?? '');
  setText(view.no, ask?.no ?? '');
  if (ask) view.yes.focus();
}
