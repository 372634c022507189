// @ts-check
/**
 * The overview's "Activations | Gradients" switch. In gradients mode every map shows dL/d(output)
 * of its layer for the current image and the chosen label (one symmetric scale per layer, blue
 * below zero, red above), and hovering a unit tells its gradient.
 */
import { drawVector, drawMap, unitAt } from '../../canvas.js';
import { h, replaceChildren, setText } from '../../dom.js';
import { fmt, prettyClass } from '../../format.js';
import { fitLegends, updateLegend } from '../../legend.js';
import { showTooltip } from '../../tooltip.js';
import { createSource, sure } from './data.js';

/**
 * @typedef {{el: HTMLElement, mode: () => string, draw: (columns: any[], state: import('../../state.js').State) => boolean}} Learning
 */

/**
 * Put the switch just above `root` (the overview's scroller, whose height is fitted to the network);
 * `redraw` repaints the overview.
 * @param {HTMLElement} root
 * @param {{store: import('../../state.js').Store, api: any, actions: any}} ctx
 * @param {() => void} redraw
 * @returns {Learning}
 */
export function mountSwitch(root, ctx, redraw) {
  let mode = 'activations';
  let classesKey = '';
  const source = createSource(ctx.api, redraw, (e) => ctx.actions.notify?.('error', `Gradients: ${e.message || e}`));
  const buttons = ['activations', 'gradients'].map((m) => h('button', {
    type: 'button', class: 'btn btn-small learn-mode', 'aria-pressed': String(m === mode), dataset: { learning: m },
  }, m === 'activations' ? 'Activations' : 'Gradients'));
  const label = h('select', { 'aria-label': 'Class the loss is taken against', dataset: { learning: 'label' } });
  const note = h('span', { class: 'learn-note', 'aria-live': 'polite' });
  const labelBox = h('label', { class: 'field-inline learn-label', hidden: true }, h('span', {}, 'Loss for'), label);
  const el = h('div', { class: 'learn-switch', role: 'group', 'aria-label': 'What the maps show' }, ...buttons, labelBox, note);
  for (const b of buttons) {
    b.addEventListener('click', () => {
      mode = b.dataset.learning || 'activations';
      for (const o of buttons) o.setAttribute('aria-pressed', String(o === b));
      labelBox.hidden = mode !== 'gradients';
      setText(note, mode === 'gradients' ? 'Loading gradients…' : '');
      root.dataset.showing = mode;
      redraw();
    });
  }
  label.addEventListener('change', () => {
    source.setLabel(label.value === '' ? null : Number(label.value));
    redraw();
  });
  if (root.parentElement) root.before(el);
  else root.prepend(el);
  root.dataset.showing = mode;

  /** @type {any} */
  let last = null;
  root.addEventListener('pointermove', (ev) => {
    if (mode !== 'gradients' || !last) return;
    const canvas = /** @type {HTMLElement} */ (ev.target).closest?.('canvas.map');
    if (!(canvas instanceof HTMLCanvasElement) || canvas.closest('.ov-input')) return;
    const layer = last.layers[Number(canvas.dataset.layer)];
    if (!layer) return;
    const t = layer.gradient;
    const { row, col } = unitAt(canvas, ev);
    let v;
    let where;
    if (t.shape.length === 3) {
      const ch = Number(canvas.dataset.channel);
      v = t.data[ch * t.shape[1] * t.shape[2] + row * t.shape[2] + col];
      where = `channel ${ch} (row ${row}, col ${col})`;
    } else {
      const cols = Math.ceil(Math.sqrt(t.shape[0]));
      const unit = Math.min(t.shape[0] - 1, row * (canvas.width || cols) + col);
      v = t.data[unit];
      where = `unit ${unit}`;
    }
    if (v === undefined) return;
    showTooltip([`Layer ${layer.index} · ${where}`, `gradient dL/d(out) = ${fmt(v, 4)}`,
      v > 0 ? 'growing this value would raise the loss' : v < 0 ? 'growing this value would lower the loss' : 'no effect on the loss'],
    ev.clientX, ev.clientY);
  });

  /**
   * Draw the gradients into the overview's columns; false in activations mode (the overview draws).
   * @param {any[]} columns
   * @param {import('../../state.js').State} state
   */
  function draw(columns, state) {
    const model = state.model;
    if (model && model.classes.join('|') !== classesKey) {
      classesKey = model.classes.join('|');
      replaceChildren(label, h('option', { value: '' }, 'its true class'),
        ...model.classes.map((/** @type {string} */ c, /** @type {number} */ i) => h('option', { value: String(i) }, prettyClass(c))));
      source.setLabel(null);
    }
    if (mode !== 'gradients') return false;
    const data = source.get(state);
    last = data;
    if (!data) return true;
    const cmap = state.colour.diverging || 'rdbu';
    const unfitted = /** @type {HTMLElement[]} */ ([]);
    for (const col of columns) {
      const layer = col.layer >= 0 ? data.layers[col.layer] : null;
      if (!layer || (col.kind !== 'maps' && col.kind !== 'vector')) continue;
      const t = layer.gradient;
      const m = layer.max_abs || 1e-12;
      if (col.kind === 'maps') {
        const [c, hh, ww] = t.shape;
        for (let ch = 0; ch < c && ch < col.canvases.length; ch++) drawMap(col.canvases[ch], t.data, ch * hh * ww, hh, ww, -m, m, cmap);
      } else drawVector(col.canvases[0], t.data, 0, t.data.length, col.plan.gridCols, -m, m, cmap);
      if (col.legend) updateLegend(col.legend, { lo: -m, hi: m, cmap }, undefined, 2, unfitted);
    }
    fitLegends(unfitted);
    const cls = prettyClass(data.classes[data.label] ?? String(data.label));
    setText(note, `How the loss for "${cls}" (${fmt(data.loss ?? NaN)}) changes if each value grows: red raises it, blue lowers it.${sure(data)}`);
    return true;
  }

  return { el, mode: () => mode, draw };
}
