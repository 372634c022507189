// @ts-check
/**
 * The model picker in the top bar, with the model's dataset, size and status.
 */
import { h, replaceChildren, setText } from '../dom.js';
import { fmtInt } from '../format.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const select = h('select', { id: 'model-select', class: 'model-select', 'aria-label': 'Model' });
  select.addEventListener('change', () => ctx.actions.switchModel(select.value));
  const info = h('span', { class: 'model-info' });
  const badge = h('span', { class: 'badge', hidden: true, title: 'A ready-trained model: training it trains a copy' }, 'ready-trained');
  root.append(h('label', { class: 'visually-hidden', for: 'model-select' }, 'Model'), select, badge, info);
  return { root, select, info, badge, key: '' };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('models') && !changed.has('model')) return;
  const { model } = state;
  const models = state.models.some((m) => m.id === model?.id) || !model ? state.models : [model, ...state.models];
  const key = models.map((m) => `${m.id}:${m.name}`).join('|') + (model?.id ?? '');
  if (key !== view.key) {
    view.key = key;
    replaceChildren(view.select, models.map((m) => h('option', { value: m.id, selected: m.id === model?.id }, `${m.name}${m.read_only ? ' (ready-trained)' : ''}`)));
  }
  if (model && view.select.value !== model.id) view.select.value = model.id;
  if (!model) return;
  view.badge.hidden = !model.read_only;
  setText(view.badge, model.shared ? 'shared read-only' : 'ready-trained');
  view.badge.title = model.shared ? 'Shared with you by link: training it trains your copy' : 'A ready-trained model: training it trains a copy';
  setText(view.info, `${model.dataset} · ${model.classes.length} classes · ${fmtInt(model.parameters)} parameters`);
}
