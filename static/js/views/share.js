// @ts-check
/**
 * Sharing a model read-only by link, in the model card (views/models.js): offered when the server
 * runs with workspaces (bootstrap `workspaces`) and the model is the viewer's own. The button asks
 * the server for a new token (`POST /models/{id}/share`) and shows the link to copy.
 */
import { h, setText } from '../dom.js';

/** @param {any} ctx */
export function mount(ctx) {
  const { api, actions, boot } = ctx;
  const button = h('button', { type: 'button', class: 'btn btn-ghost btn-small', dataset: { action: 'share-model' },
    'aria-label': 'Share this model read-only by link', hidden: true }, 'Share');
  const link = h('input', { type: 'text', readonly: true, class: 'share-link', dataset: { share: 'link' }, 'aria-label': 'Share link' });
  const copy = h('button', { type: 'button', class: 'btn btn-small', dataset: { action: 'copy-share-link' }, 'aria-label': 'Copy the share link' }, 'Copy');
  const status = h('p', { class: 'hint', 'aria-live': 'polite', dataset: { share: 'status' } });
  const box = h('div', { class: 'share', dataset: { view: 'share' }, hidden: true },
    h('div', { class: 'row' }, link, copy),
    h('p', { class: 'hint' }, 'Anyone with the link can look at this model but not change it. Sharing again makes a new link, and the old one stops working.'),
    status);
  const view = { button, box, link, status, enabled: !!boot.workspaces, modelId: '' };

  button.addEventListener('click', async () => {
    const id = view.modelId;
    button.disabled = true;
    try {
      const r = await api.shareModel(id);
      if (view.modelId !== id) return;
      link.value = api.shareLink(id, r.token);
      setText(status, '');
      box.hidden = false;
      link.focus();
      link.select();
    } catch (err) {
      actions.fail(err);
    } finally {
      button.disabled = false;
    }
  });
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(link.value);
      setText(status, 'Link copied.');
    } catch {
      link.select();
      setText(status, 'Your browser did not let the page copy: the link is selected, copy it with Ctrl+C (⌘C on a Mac).');
    }
  });
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {Record<string, any>} model the current model
 */
export function render(view, model) {
  view.button.hidden = !view.enabled || !!model.read_only;
  if (model.id === view.modelId) return;
  view.modelId = model.id; // a link shown is for the model it was made for
  view.box.hidden = true;
  view.link.value = '';
  setText(view.status, '');
}
