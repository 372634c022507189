// @ts-check
/**
 * The model card of the training panel: which model trains, copying the ready-trained one, a new
 * model from a preset on a dataset, importing a dataset (.zip of class folders), and downloading or
 * importing a checkpoint, which of its layers train (views/freeze.js), sharing it by link
 * (views/share.js) and deleting it.
 */
import { twoClick } from '../confirm.js';
import { field, h, replaceChildren, setText } from '../dom.js';
import { fmtInt } from '../format.js';
import * as freeze from './freeze.js';
import * as share from './share.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const { actions, library, boot, api } = ctx;
  const note = h('p', { class: 'detail-note' });
  const copy = h('button', { type: 'button', class: 'btn', dataset: { action: 'copy' } }, 'Copy this model');
  copy.addEventListener('click', () => {
    const m = ctx.store.get().model;
    if (m) actions.createModel({ from: m.id, name: `${m.name} (my copy)` }, `Copied “${m.name}”: train away.`);
  });
  const remove = h('button', { type: 'button', class: 'btn btn-ghost btn-small btn-delete', dataset: { action: 'delete-model' } }, 'Delete');
  const confirm = twoClick(remove, {
    label: 'Delete', aria: 'Delete this model', armedLabel: 'Confirm delete',
    armedAria: 'Click again to delete this model and its weights for good', onConfirm: () => ctx.manager.deleteModel(),
  });
  const download = h('a', { class: 'btn btn-ghost', download: '', href: '#', 'aria-label': 'Download this model as a checkpoint' }, 'Download');
  const preset = h('select', {}, (boot.presets || []).map((/** @type {any} */ p) => h('option', { value: p.name, title: p.description }, p.title || p.name)));
  const dataset = h('select', {});
  preset.addEventListener('change', () => {
    const p = (boot.presets || []).find((/** @type {any} */ x) => x.name === preset.value);
    if (p?.default_dataset) dataset.value = p.default_dataset;
  });
  const create = h('button', { type: 'button', class: 'btn', dataset: { action: 'create' } }, 'Create');
  create.addEventListener('click', () => actions.createModel({ preset: preset.value, dataset: dataset.value, name: `${preset.selectedOptions[0]?.textContent} on ${dataset.value}` }));

  const zip = h('input', { type: 'file', accept: '.zip,application/zip', 'aria-label': 'Dataset .zip of class folders' });
  const dsName = h('input', { type: 'text', placeholder: 'name, e.g. leaves', 'aria-label': 'Dataset name', maxlength: '40' });
  const dsShape = h('select', { 'aria-label': 'Image size and colour' },
    h('option', { value: '' }, 'from the images'), h('option', { value: '3,64,64' }, 'RGB 64×64'), h('option', { value: '3,32,32' }, 'RGB 32×32'),
    h('option', { value: '1,28,28' }, 'grey 28×28'), h('option', { value: '1,64,64' }, 'grey 64×64'));
  const dsUpload = h('button', { type: 'button', class: 'btn btn-small' }, 'Import dataset');
  dsUpload.addEventListener('click', async () => {
    const f = zip.files?.[0];
    if (!f) return actions.notify('error', 'Choose a .zip of class folders first.');
    const [channels, height, width] = dsShape.value ? dsShape.value.split(',').map(Number) : [];
    dsUpload.disabled = true; // no size given: the server takes it from the images and says what it chose
    const ok = await library.uploadDataset(f, { name: dsName.value.trim() || f.name.replace(/\.zip$/i, '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-'), ...(channels ? { channels, height, width } : {}) });
    dsUpload.disabled = false;
    if (ok) zip.value = '';
  });
  const npz = h('input', { type: 'file', accept: '.npz', 'aria-label': 'Checkpoint file (.npz)' });
  npz.addEventListener('change', () => {
    const f = npz.files?.[0];
    if (f) library.importCheckpoint(f);
    npz.value = '';
  });

  const sharing = share.mount(ctx);
  const layers = h('div', { class: 'freeze', dataset: { view: 'freeze' } });
  const layersView = freeze.mount(layers, ctx);
  root.append(
    h('div', { class: 'panel-head' }, h('h3', {}, 'Model'), h('div', { class: 'row' }, sharing.button, remove)), note,
    h('div', { class: 'row' }, copy, download), sharing.box,
    layers,
    h('h4', { class: 'subhead' }, 'Or start a new one'),
    h('div', { class: 'row' }, field('Architecture', preset), field('Dataset', dataset), create),
    h('p', { class: 'hint' }, 'To build your own, edit the layers in the Architecture tab.'),
    h('details', { class: 'more' },
      h('summary', {}, 'Your own data and checkpoints'),
      h('div', { class: 'more-body' },
        h('p', { class: 'hint' }, 'A .zip with one folder of images per class (or train/ and test/ folders of class folders).'),
        zip, h('div', { class: 'row' }, dsName, dsShape, dsUpload),
        h('p', { class: 'hint' }, 'Import a checkpoint (.npz) saved from this app:'), npz)),
  );
  return { root, ctx, note, copy, download, remove, confirm, modelId: '', layersView, sharing, preset, dataset, api, datasetsKey: '' };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (changed.has('datasets')) {
    const names = state.datasets.map((d) => (typeof d === 'string' ? d : d.name));
    const key = names.join(',');
    if (key !== view.datasetsKey) {
      const keep = view.dataset.value;
      view.datasetsKey = key;
      replaceChildren(view.dataset, names.map((n) => h('option', { value: n }, n)));
      if (keep && names.includes(keep)) view.dataset.value = keep;
      else view.preset.dispatchEvent(new Event('change'));
    }
  }
  freeze.render(view.layersView, state, changed);
  const { model } = state;
  if (!model || !changed.has('model')) return;
  view.remove.hidden = !!model.read_only;
  share.render(view.sharing, model);
  if (model.id !== view.modelId) view.confirm.disarm(); // an armed Delete is for the model it was armed on
  view.modelId = model.id;
  setText(view.note, model.read_only
    ? `“${model.name}” is ${model.shared ? 'shared with you' : 'ready-trained'} and read-only. Press Step or Play and the page trains a copy, or copy it now.`
    : `Training “${model.name}” on ${model.dataset}: step ${fmtInt(model.step)}, epoch ${fmtInt(model.epoch ?? 0)}.`);
  view.download.setAttribute('href', view.api.checkpointUrl(model.id));
}
