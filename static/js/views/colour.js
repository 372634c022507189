// @ts-check
/**
 * The stage bar above the overview: title, colour scale mode (per map, per layer, global), the
 * lock that keeps ranges fixed across steps and images, and the colour map.
 */
import { MAP_CHOICES } from '../colormap.js';
import { h } from '../dom.js';

const MODES = [['channel', 'Per map'], ['layer', 'Per layer'], ['global', 'Global']];

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const { actions } = ctx;
  const radios = MODES.map(([value, text]) => {
    const input = h('input', { type: 'radio', name: 'scale-mode', value, class: 'visually-hidden', id: `scale-${value}` });
    input.addEventListener('change', () => input.checked && actions.setColour({ mode: value }));
    return { value, input, label: h('label', { for: `scale-${value}`, class: 'seg' }, text) };
  });
  const lock = h('button', { type: 'button', class: 'btn btn-small btn-toggle', 'aria-pressed': 'false', title: 'Keep the current colour ranges across training steps and images' },
    'Lock range');
  lock.addEventListener('click', () => actions.setColour({ locked: lock.getAttribute('aria-pressed') !== 'true' }));
  const cmap = h('select', { 'aria-label': 'Colour map' }, MAP_CHOICES.map(([v, t]) => h('option', { value: v }, t)));
  cmap.addEventListener('change', () => actions.setColour({ cmap: cmap.value }));
  root.append(
    h('h2', { class: 'stage-title' }, 'Network'),
    h('p', { class: 'stage-hint' }, 'Hover a map for values and its receptive field; click it for details.'),
    h('div', { class: 'stage-controls' },
      h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Colour scale' },
        radios.flatMap((r) => [r.input, r.label])),
      lock,
      cmap),
  );
  return { root, radios, lock, cmap };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('colour')) return;
  const c = state.colour;
  for (const r of view.radios) r.input.checked = r.value === c.mode;
  view.lock.setAttribute('aria-pressed', String(c.locked));
  view.lock.classList.toggle('is-on', c.locked);
  view.cmap.value = c.cmap;
}
