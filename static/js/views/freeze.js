// @ts-check
/**
 * Which layers train, for transfer learning: one checkbox per layer with weights (checked: it
 * trains, unchecked: frozen). A change sends the whole frozen list; the boxes follow the server's answer.
 */
import { h, replaceChildren, setText } from '../dom.js';
import { fmtInt, layerTitle } from '../format.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const list = h('ul', { class: 'freeze-list', 'aria-label': 'Layers that train' });
  const hint = h('p', { class: 'hint' });
  list.addEventListener('change', (ev) => {
    const model = ctx.store.get().model;
    if (!model || !(ev.target instanceof HTMLInputElement)) return;
    const boxes = /** @type {HTMLInputElement[]} */ (Array.from(list.querySelectorAll('input[data-freeze]')));
    for (const b of boxes) b.disabled = true; // one change at a time; the answer re-enables them
    ctx.manager.setFrozen(boxes.filter((b) => !b.checked).map((b) => Number(b.dataset.freeze)));
  });
  root.append(h('h4', { class: 'subhead' }, 'Layers that train'), hint, list);
  return { root, list, hint, key: '' };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('model') && !changed.has('training')) return;
  const { model, training } = state;
  if (!model) return;
  /** @type {any[]} */
  const weighted = model.layers.filter((/** @type {any} */ l) => l.parameters > 0);
  const key = `${model.id}|${weighted.map((l) => `${l.index}:${l.type}`).join(',')}`;
  if (key !== view.key) {
    view.key = key;
    replaceChildren(view.list, weighted.map((l) => h('li', {},
      h('label', { class: 'freeze-item', title: `${fmtInt(l.parameters)} parameters` },
        h('input', { type: 'checkbox', dataset: { freeze: String(l.index) } }),
        h('span', { class: 'freeze-name' }, `${layerTitle(l)} ${l.index}`),
        l.name && l.name !== l.type ? h('span', { class: 'freeze-sub' }, l.name) : null,
        h('span', { class: 'freeze-state', 'aria-hidden': 'true' })))));
  }
  const locked = model.read_only || training.playing || training.busy;
  for (const l of weighted) {
    const box = /** @type {HTMLInputElement | null} */ (view.list.querySelector(`input[data-freeze="${l.index}"]`));
    if (!box) continue;
    box.checked = l.trainable !== false;
    box.disabled = locked;
    box.setAttribute('aria-label', `${layerTitle(l)} ${l.index} trains`);
    const stateEl = box.parentElement?.querySelector('.freeze-state');
    if (stateEl) setText(stateEl, box.checked ? 'trains' : 'frozen');
    box.closest('li')?.classList.toggle('is-frozen', !box.checked);
  }
  setText(view.hint, model.read_only ? 'Copy this model to choose which layers train.'
    : training.playing || training.busy ? 'Pause training to change which layers train.'
      : 'Untick a layer to freeze its weights, e.g. to fine-tune only the last layers.');
}
