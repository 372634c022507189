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
  const typeOptions = () => types.map((t) => h('option', { value: t.type, title: t.explanation }, t.title || t.type));
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
  const view = { root, ctx, types, typeOptions, list, summary, error, inputs, dataset, create, rows: /** @type {Map<number, HTMLLIElement>} */ (new Map()) };
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
  if (changed.has('draft')) syncRows(view, draft);
  draft.input_shape.forEach((v, axis) => {
    const el = view.inputs[axis];
    if (document.activeElement !== el) el.value = String(v);
  });
  const val = state.validation;
  const res = val.result;
  Array.from(view.list.children).forEach((li, i) => {
    const el = /** @type {HTMLElement} */ (li);
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
 * Make the list show the draft: rows are kept by layer key (a row keeps its focus while you type
 * in it), built for new keys or a changed type, and every field not being typed in shows the
 * draft's value (so a revert or another model never leaves old numbers behind).
 * @param {ReturnType<typeof mount>} view
 * @param {import('../editor.js').Draft} draft
 */
function syncRows(view, draft) {
  const focused = document.activeElement instanceof HTMLElement && view.list.contains(document.activeElement) ? document.activeElement : null;
  const focusKey = focused ? Number(focused.closest('li')?.dataset.key) : NaN;
  const focusSel = focused ? focusSelector(focused) : '';
  const n = draft.layers.length;
  /** @type {Map<number, HTMLLIElement>} */
  const next = new Map();
  const items = draft.layers.map((layer, i) => {
    let li = view.rows.get(layer.key);
    if (!li || li.dataset.type !== layer.type) li = row(view, layer);
    next.set(layer.key, li);
    updateRow(li, layer, i, n);
    return li;
  });
  view.rows = next;
  const same = items.length === view.list.children.length && items.every((li, i) => view.list.children[i] === li);
  if (!same) replaceChildren(view.list, items);
  if (focused && document.activeElement !== focused) {
    // The row moved (focus went with the node) or was rebuilt for a new type: focus its twin.
    const twin = view.list.contains(focused) ? focused : focusSel ? next.get(focusKey)?.querySelector(focusSel) : null;
    if (twin instanceof HTMLElement) twin.focus();
  }
}

/**
 * A selector that finds the same control in a rebuilt row.
 * @param {HTMLElement} el
 */
function focusSelector(el) {
  for (const attr of ['role', 'field', 'op']) {
    const v = el.dataset[attr];
    if (v) return `[data-${attr}="${CSS.escape(v)}"]`;
  }
  return '';
}

/**
 * One editable layer row (its index-dependent parts are set by `updateRow`).
 * @param {ReturnType<typeof mount>} view
 * @param {import('../editor.js').DraftLayer} layer
 */
function row(view, layer) {
  const t = view.types.find((x) => x.type === layer.type);
  const type = h('select', { class: 'arch-type', dataset: { role: 'type' }, title: t?.explanation }, view.typeOptions());
  type.value = layer.type;
  const fields = (t?.fields || []).map((/** @type {any} */ f) => fieldInput(f));
  const btn = (/** @type {string} */ op, /** @type {string} */ text, /** @type {string} */ label) =>
    h('button', { type: 'button', class: 'icon-btn', dataset: { op, label }, title: label }, text);
  return h('li', { class: 'arch-row', dataset: { type: layer.type, key: String(layer.key) } },
    h('span', { class: 'arch-idx' }),
    h('span', { class: 'arch-kind' }, type),
    h('span', { class: 'arch-fields' }, fields.length ? fields : h('span', { class: 'muted' }, 'no settings')),
    h('span', { class: 'arch-out' }, '–'),
    h('span', { class: 'arch-params' }, '–'),
    h('span', { class: 'arch-rf' }, '–'),
    h('span', { class: 'arch-ops' }, btn('up', '↑', 'Move up'), btn('down', '↓', 'Move down'), btn('insert', '+', 'Insert after'), btn('remove', '×', 'Remove')),
    h('p', { class: 'arch-error', role: 'alert', hidden: true }));
}

/**
 * Put layer `i` of `n` into a row: index, labels, move buttons and the values of its fields.
 * @param {HTMLLIElement} li
 * @param {import('../editor.js').DraftLayer} layer
 * @param {number} i
 * @param {number} n
 */
function updateRow(li, layer, i, n) {
  li.dataset.index = String(i);
  setText(/** @type {Element} */ (li.querySelector('.arch-idx')), String(i));
  const type = /** @type {HTMLSelectElement} */ (li.querySelector('select[data-role="type"]'));
  type.setAttribute('aria-label', `Layer ${i} type`);
  if (document.activeElement !== type) type.value = layer.type;
  li.querySelectorAll('button[data-op]').forEach((b) => {
    const btn = /** @type {HTMLButtonElement} */ (b);
    btn.setAttribute('aria-label', `${btn.dataset.label} layer ${i}`);
    btn.disabled = (btn.dataset.op === 'up' && i === 0) || (btn.dataset.op === 'down' && i === n - 1);
  });
  li.querySelectorAll('input[data-field]').forEach((el) => {
    const input = /** @type {HTMLInputElement} */ (el);
    const name = /** @type {string} */ (input.dataset.field);
    input.setAttribute('aria-label', `Layer ${i} ${name.replace(/_/g, ' ')}`);
    if (document.activeElement === input) return;
    const value = layer.values[name] ?? (input.dataset.default !== undefined ? JSON.parse(input.dataset.default) : null);
    if (input.type === 'checkbox') input.checked = !!value;
    else if (input.value !== String(value ?? '')) input.value = String(value ?? '');
  });
}

/**
 * A field as the registry declares it: `kind` "int", "float" or "bool"; `min`/`max` inclusive;
 * `choices`: words accepted besides a number; `nullable`: null (an empty box) means automatic.
 * @typedef {{name: string, kind: 'int' | 'float' | 'bool', help?: string, required?: boolean, default?: any,
 *   min?: number, max?: number, choices?: string[], nullable?: boolean}} FieldDecl
 */

/**
 * A widget for one field, chosen from its declaration (its value and label are set by `updateRow`).
 * @param {FieldDecl} f
 */
function fieldInput(f) {
  const label = `${f.name.replace(/_/g, ' ')}`;
  const choices = f.choices || [];
  let input;
  if (f.kind === 'bool') {
    input = h('input', { type: 'checkbox' });
  } else if (choices.length) {
    input = h('input', { type: 'text', class: 'num-input', placeholder: [f.kind === 'int' ? 'n' : 'x', ...choices].join(', ') });
  } else {
    input = h('input', {
      type: 'number', class: 'num-input', min: f.min, max: f.max,
      step: f.kind === 'float' ? 'any' : '1', placeholder: f.nullable ? 'auto' : '',
    });
  }
  input.dataset.field = f.name;
  if (choices.length) input.dataset.choices = choices.join(' ');
  if (f.nullable) input.dataset.nullable = 'true';
  if (f.default !== undefined) input.dataset.default = JSON.stringify(f.default);
  return h('label', { class: 'arch-field', title: f.help || null }, h('span', {}, label), input);
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
  const text = el.value.trim();
  if (el instanceof HTMLInputElement && el.type === 'checkbox') editor.setField(i, name, el.checked);
  else if (text === '') editor.setField(i, name, el.dataset.nullable ? null : undefined);
  // A word goes to the server as typed: one of the choices, or a typo it names in its answer.
  else if (el.dataset.choices && !/^-?\d+(\.\d+)?$/.test(text)) editor.setField(i, name, text);
  else editor.setField(i, name, Number(text));
}
