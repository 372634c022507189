// @ts-check
/**
 * The architecture editor: the layer stack as an editable list (add, remove, reorder, change any
 * field), with output shapes, parameter counts and receptive fields recomputed by the server as
 * you type, and its spec errors shown on the offending layer. Field widgets come from the
 * bootstrap's layer types, never from a list in this file.
 */
import { h, replaceChildren, setText } from '../dom.js';
import { fmt, fmtInt, fmtShape } from '../format.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const { editor, boot } = ctx;
  const types = /** @type {any[]} */ (boot.layer_types || []);
  const typeOptions = () => types.map((t) => h('option', { value: t.type, title: t.doc }, t.type));
  const list = h('ol', { class: 'arch-list', 'aria-label': 'Layers' });
  const summary = h('p', { class: 'arch-summary', 'aria-live': 'polite' });
  const error = h('p', { class: 'arch-error-global', role: 'alert', hidden: true });
  const inputs = [0, 1, 2].map((axis) => {
    const el = h('input', { type: 'number', min: '1', class: 'num-input', 'aria-label': ['Input channels', 'Input height', 'Input width'][axis] });
    el.addEventListener('change', () => editor.setInput(axis, Math.round(Number(el.value))));
    return el;
  });
  const addType = h('select', { 'aria-label': 'Type of layer to add' }, typeOptions());
  const add = h('button', { type: 'button', class: 'btn', dataset: { action: 'add-layer' } }, 'Add layer');
  add.addEventListener('click', () => editor.add(ctx.store.get().draft?.layers.length ?? 0, addType.value));
  const revert = h('button', { type: 'button', class: 'btn btn-ghost' }, 'Revert to the current model');
  revert.addEventListener('click', () => editor.load(true));
  const dataset = h('select', { 'aria-label': 'Dataset for the new model' });
  const create = h('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'create-from-spec' } }, 'Create this model');
  create.addEventListener('click', () => editor.create(dataset.value));

  list.addEventListener('change', (ev) => onEdit(view, ev));
  list.addEventListener('input', (ev) => onEdit(view, ev));
  list.addEventListener('click', (ev) => {
    const btn = /** @type {HTMLElement} */ (ev.target).closest('button[data-op]');
    if (!(btn instanceof HTMLButtonElement)) return;
    const i = Number(btn.closest('li')?.dataset.index);
    const op = btn.dataset.op;
    if (op === 'up') editor.move(i, -1);
    else if (op === 'down') editor.move(i, 1);
    else if (op === 'remove') editor.remove(i);
    else if (op === 'insert') editor.add(i + 1, addType.value);
  });

  root.append(h('div', { class: 'arch' },
    h('div', { class: 'arch-top' },
      h('div', { class: 'arch-input' }, h('span', { class: 'field-label' }, 'Input (C×H×W)'), inputs),
      summary,
      h('div', { class: 'row' }, revert)),
    error,
    h('div', { class: 'arch-header', 'aria-hidden': 'true' },
      h('span', {}, '#'), h('span', {}, 'Layer'), h('span', {}, 'Settings'), h('span', {}, 'Output'), h('span', {}, 'Params'), h('span', {}, 'RF'), h('span', {})),
    list,
    h('div', { class: 'arch-bottom' },
      h('div', { class: 'row' }, addType, add),
      h('div', { class: 'row' }, h('label', { class: 'field-inline' }, h('span', {}, 'Dataset'), dataset), create))));
  const view = { root, ctx, types, typeOptions, list, summary, error, inputs, dataset, create, shapeKey: '' };
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (changed.has('datasets')) {
    const keep = view.dataset.value || state.model?.dataset;
    replaceChildren(view.dataset, state.datasets.map((d) => h('option', { value: d.name || d }, d.name || d)));
    if (keep) view.dataset.value = keep;
  }
  if (changed.has('model') || changed.has('tab')) {
    if (state.tab === 'architecture' || state.draft) view.ctx.editor.load();
    if (state.model && changed.has('model')) view.dataset.value = state.model.dataset;
  }
  const draft = state.draft;
  if (!draft || !(changed.has('draft') || changed.has('validation'))) return;
  const key = draft.layers.map((l) => `${l.key}:${l.type}`).join(',');
  if (key !== view.shapeKey) {
    view.shapeKey = key;
    replaceChildren(view.list, draft.layers.map((l, i) => row(view, l, i, draft.layers.length)));
  }
  draft.input_shape.forEach((v, axis) => {
    const el = view.inputs[axis];
    if (document.activeElement !== el) el.value = String(v);
  });
  const val = state.validation;
  const res = val.result;
  Array.from(view.list.children).forEach((li, i) => {
    const el = /** @type {HTMLElement} */ (li);
    el.dataset.index = String(i);
    setText(/** @type {Element} */ (el.querySelector('.arch-idx')), String(i));
    const info = val.error && val.layer !== null && i >= val.layer ? null : res?.layers?.[i];
    setText(/** @type {Element} */ (el.querySelector('.arch-out')), info ? fmtShape(info.output_shape) : '–');
    setText(/** @type {Element} */ (el.querySelector('.arch-params')), info ? fmtInt(info.parameters) : '–');
    setText(/** @type {Element} */ (el.querySelector('.arch-rf')), info ? fmt(info.receptive_field.size) : '–');
    const bad = !!val.error && val.layer === i;
    el.classList.toggle('has-error', bad);
    const err = /** @type {HTMLElement} */ (el.querySelector('.arch-error'));
    err.hidden = !bad;
    if (bad) setText(err, /** @type {string} */ (val.error));
    el.classList.toggle('is-stale', !!val.error && val.layer !== null && i > val.layer);
  });
  const globalErr = !!val.error && (val.layer === null || val.layer >= draft.layers.length);
  view.error.hidden = !globalErr;
  if (globalErr) setText(view.error, /** @type {string} */ (val.error));
  view.create.disabled = !!val.error || val.pending;
  setText(view.summary, val.pending ? 'Checking…' : val.error ? 'This network cannot be built yet.'
    : res ? `${draft.layers.length} layers · ${fmtInt(res.parameters)} parameters · output ${fmtShape(res.output_shape)}` : '');
}

/**
 * One editable layer row.
 * @param {ReturnType<typeof mount>} view
 * @param {import('../editor.js').DraftLayer} layer
 * @param {number} i
 * @param {number} n
 */
function row(view, layer, i, n) {
  const t = view.types.find((x) => x.type === layer.type);
  const type = h('select', { class: 'arch-type', dataset: { role: 'type' }, 'aria-label': `Layer ${i} type` }, view.typeOptions());
  type.value = layer.type;
  const fields = (t?.fields || []).map((/** @type {any} */ f) => fieldInput(f, layer.values[f.name], i));
  const btn = (/** @type {string} */ op, /** @type {string} */ text, /** @type {string} */ label, disabled = false) =>
    h('button', { type: 'button', class: 'icon-btn', dataset: { op }, 'aria-label': `${label} layer ${i}`, title: label, disabled }, text);
  return h('li', { class: 'arch-row', dataset: { index: String(i) } },
    h('span', { class: 'arch-idx' }, String(i)),
    h('span', { class: 'arch-kind' }, type),
    h('span', { class: 'arch-fields' }, fields.length ? fields : h('span', { class: 'muted' }, 'no settings')),
    h('span', { class: 'arch-out' }, '–'),
    h('span', { class: 'arch-params' }, '–'),
    h('span', { class: 'arch-rf' }, '–'),
    h('span', { class: 'arch-ops' }, btn('up', '↑', 'Move up', i === 0), btn('down', '↓', 'Move down', i === n - 1), btn('insert', '+', 'Insert after'), btn('remove', '×', 'Remove')),
    h('p', { class: 'arch-error', role: 'alert', hidden: true }));
}

/**
 * A widget for one field, chosen from its annotation.
 * @param {{name: string, annotation: string, min?: number, max?: number, default?: any, required?: boolean}} f
 * @param {any} value
 * @param {number} i
 */
function fieldInput(f, value, i) {
  const label = `${f.name.replace(/_/g, ' ')}`;
  const aria = `Layer ${i} ${label}`;
  let input;
  if (f.annotation === 'bool') {
    input = h('input', { type: 'checkbox', 'aria-label': aria, props: { checked: value ?? f.default ?? false } });
  } else if (f.annotation.includes('Literal')) {
    input = h('input', { type: 'text', class: 'num-input', 'aria-label': aria, placeholder: 'n, same, valid', props: { value: value ?? f.default ?? '' } });
  } else {
    input = h('input', {
      type: 'number', class: 'num-input', 'aria-label': aria, min: f.min, max: f.max,
      step: f.annotation.startsWith('float') ? 'any' : '1', placeholder: f.annotation.includes('None') ? 'auto' : '',
      props: { value: value ?? f.default ?? '' },
    });
  }
  input.dataset.field = f.name;
  input.dataset.annotation = f.annotation;
  return h('label', { class: 'arch-field' }, h('span', {}, label), input);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {Event} ev
 */
function onEdit(view, ev) {
  const el = /** @type {HTMLInputElement | HTMLSelectElement} */ (ev.target);
  const li = el.closest('li');
  if (!li) return;
  const i = Number(li.dataset.index);
  const { editor } = view.ctx;
  if (el.dataset.role === 'type') {
    if (ev.type === 'change') editor.setType(i, el.value);
    return;
  }
  const name = el.dataset.field;
  if (!name) return;
  const ann = el.dataset.annotation || '';
  if (el instanceof HTMLInputElement && el.type === 'checkbox') editor.setField(i, name, el.checked);
  else if (el.value.trim() === '') editor.setField(i, name, ann.includes('None') ? null : undefined);
  else if (ann.includes('Literal') && !/^-?\d+(\.\d+)?$/.test(el.value.trim())) editor.setField(i, name, el.value.trim());
  else editor.setField(i, name, Number(el.value));
}
