// @ts-check
/**
 * The network overview: one column per layer from the input to the class probabilities, every
 * channel a crisp thumbnail. Columns are built once per model and redrawn in place.
 */
import { drawInput, drawMap, drawVector, unitAt } from '../canvas.js';
import { debounce, h, replaceChildren } from '../dom.js';
import { fmt, fmtShape, layerTitle } from '../format.js';
import { gridKeys } from '../gridkeys.js';
import { chooseSize, COL_GAP, planColumn } from '../layout.js';
import { createLegend, fitLegends, updateLegend } from '../legend.js';
import { createProbs, markProb, probLines, updateProbs } from '../probs.js';
import { markFrozen } from '../frozenmark.js';
import { mountSwitch } from './learning/switch.js';
import { scaleFor } from '../scale.js';
import { hideTooltip, showTooltip } from '../tooltip.js';
import { receptiveLabel, receptiveLine, receptiveRect, scoreBefore, unitValue } from '../units.js';

const HEAD = 108; // column header + legend
const NARROW_LEGEND = 96; // px: a column this narrow shows only its legend's min and max

/**
 * @typedef {{layer: number, kind: string, el: HTMLElement, canvases: HTMLCanvasElement[], legend: HTMLElement | null,
 *   probs: HTMLElement | null, plan: import('../layout.js').ColumnPlan, shape: number[]}} Column
 * @typedef {{root: HTMLElement, track: HTMLElement, empty: HTMLElement, ctx: any, key: string, columns: Column[], learning: import('./learning/switch.js').Learning}} View
 */

/**
 * @param {HTMLElement} root
 * @param {{store: import('../state.js').Store, actions: any}} ctx
 * @returns {View}
 */
export function mount(root, ctx) {
  const track = h('div', { class: 'ov-track' });
  const empty = h('p', { class: 'ov-empty' }, 'Loading the network…');
  root.append(empty, track);
  /** @type {View} */
  const view = { root, track, empty, ctx, key: '', columns: [], learning: mountSwitch(root, ctx, () => draw(view, ctx.store.get())) };
  track.addEventListener('pointermove', (ev) => onMove(view, ev));
  track.addEventListener('pointerleave', () => {
    hideTooltip();
    ctx.actions.hover(null);
  });
  track.addEventListener('click', (ev) => {
    const t = tileOf(view, ev);
    if (t) ctx.actions.select(t.layer, t.channel, true);
  });
  track.addEventListener('keydown', (ev) => gridKeys(ev, view.columns.map(tilesOf), (ci, k) => {
    const col = view.columns[ci];
    ctx.actions.select(col.kind === 'probs' ? probLayer(view) : col.layer, k, true);
  }));
  // Keyboard focus shows what hovering shows, for the unit at the map's centre.
  track.addEventListener('focusin', (ev) => {
    const c = ev.target;
    if (!(c instanceof HTMLCanvasElement || (c instanceof HTMLElement && c.matches('.prob-btn')))) return;
    const r = c.getBoundingClientRect();
    onMove(view, /** @type {any} */ ({ target: c, clientX: r.left + r.width / 2, clientY: r.top + r.height / 2 }));
  });
  track.addEventListener('focusout', () => {
    hideTooltip();
    ctx.actions.hover(null);
  });
  const relayout = debounce(() => {
    view.key = '';
    render(view, ctx.store.get(), new Set(['model']));
  }, 120);
  let lastW = root.clientWidth; // the first observation (at once, on observe) rebuilds only if the width changed since
  new ResizeObserver(() => {
    if (Math.abs(root.clientWidth - lastW) > 8) {
      lastW = root.clientWidth;
      relayout();
    }
  }).observe(root);
  return view;
}

/**
 * @param {View} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  const { model, forward } = state;
  if (!model || !forward) {
    view.empty.hidden = false;
    view.empty.textContent = state.loading ? 'Loading the network…' : 'No model loaded.';
    return;
  }
  view.empty.hidden = true;
  const key = `${model.id}|${model.layers.map((/** @type {any} */ l) => l.output_shape.join('x')).join(',')}`;
  const rebuilt = key !== view.key;
  if (rebuilt) {
    build(view, state);
    view.key = key;
  }
  if (rebuilt || ['forward', 'stats', 'colour', 'locked'].some((k) => changed.has(k))) draw(view, state);
  else if (state.colour.mode === 'channel' && (changed.has('hover') || changed.has('selection'))) drawLegends(view, state);
  if (rebuilt || changed.has('selection')) markSelection(view, state);
  if (rebuilt || changed.has('model')) markFrozen(view.columns, model);
}

/**
 * @param {View} view
 * @param {import('../state.js').State} state
 */
function build(view, state) {
  const model = /** @type {Record<string, any>} */ (state.model);
  const [c0, h0, w0] = model.spec.input_shape;
  /** @type {Array<{layer: number, spec: import('../layout.js').ColumnSpec, info: any}>} */
  const specs = [{ layer: -1, spec: { kind: 'input', c: c0, h: h0, w: w0 }, info: null }];
  model.layers.forEach((/** @type {any} */ info, /** @type {number} */ i) => {
    const shape = info.output_shape;
    const last = i === model.layers.length - 1;
    /** @type {import('../layout.js').ColumnSpec} */
    const spec = shape.length === 3 ? { kind: 'maps', c: shape[0], h: shape[1], w: shape[2] }
      : last && info.kind === 'output' ? { kind: 'probs', k: shape[0] } : { kind: 'vector', d: shape[0] };
    specs.push({ layer: i, spec, info });
  });
  if (specs[specs.length - 1].spec.kind !== 'probs') specs.push({ layer: model.layers.length, spec: { kind: 'probs', k: 0 }, info: null });
  view.root.style.height = '';
  const cssH = view.root.clientHeight;
  const availH = Math.max(120, cssH - HEAD - 24);
  const s = chooseSize(specs.map((x) => x.spec), view.root.clientWidth - 24, availH);
  view.columns = specs.map(({ layer, spec, info }) => buildColumn(layer, spec, info, planColumn(spec, s, availH), state));
  replaceChildren(view.track, view.columns.map((c) => c.el));
  view.track.style.gap = `${COL_GAP}px`;
  // Fit the stage to the network (fixed until the next model or resize: no jumps while training).
  const needed = view.track.offsetHeight + (view.root.offsetHeight - view.root.clientHeight);
  if (needed < cssH) view.root.style.height = `${needed}px`;
}

/**
 * @param {number} layer
 * @param {import('../layout.js').ColumnSpec} spec
 * @param {any} info model.layers entry (null for the input and an appended probability column)
 * @param {import('../layout.js').ColumnPlan} plan
 * @param {import('../state.js').State} state
 * @returns {Column}
 */
function buildColumn(layer, spec, info, plan, state) {
  const model = /** @type {Record<string, any>} */ (state.model);
  const title = info ? layerTitle(info) : spec.kind === 'input' ? 'Input' : 'Probabilities';
  const shape = info ? info.output_shape : spec.kind === 'input' ? model.spec.input_shape : [model.classes.length];
  const rf = info ? receptiveLabel(model, info.index) : null; // the same words as every unit's tooltip
  const head = h(
    'div',
    { class: 'ov-head' },
    h('div', { class: 'ov-title' }, title, info ? h('span', { class: 'ov-index' }, ` ${info.index}`) : null),
    h('div', { class: 'ov-shape', title: `output shape ${fmtShape(shape)}` }, shape.length === 3 ? [`${shape[0]}×`, h('wbr'), `${shape[1]}×${shape[2]}`] : fmtShape(shape)),
    h('div', { class: 'ov-rf', title: rf ? rf.title : '' }, rf ? rf.text : spec.kind === 'input' ? (shape[0] === 3 ? 'RGB' : 'grey') : ''),
  );
  const el = h('div', { class: `ov-col ov-${spec.kind}`, dataset: { layer: String(layer) }, role: 'group', 'aria-label': `${info ? `${title} ${info.index}` : title}, output ${fmtShape(shape)}` }, head);
  el.style.width = `${plan.width}px`;
  /** @type {Column} */
  const col = { layer, kind: spec.kind, el, canvases: [], legend: null, probs: null, plan, shape };
  if (spec.kind === 'probs') {
    col.probs = createProbs(model.classes);
    el.append(h('div', { class: 'ov-legend-space' }), col.probs);
    return col;
  }
  col.legend = spec.kind === 'input' ? null : createLegend(`Colour scale of ${title} ${layer}`, `legend-compact${plan.width < NARROW_LEGEND ? ' legend-narrow' : ''}`);
  el.append(col.legend || h('div', { class: 'legend legend-compact legend-empty' }, '0 to 1'));
  const maps = h('div', { class: 'ov-maps' });
  const count = spec.kind === 'maps' ? spec.c : 1;
  maps.style.gridTemplateColumns = `repeat(${plan.cols}, ${plan.tileW}px)`;
  for (let c = 0; c < count; c++) {
    const label = spec.kind === 'maps' ? `${title} ${layer}, channel ${c}` : spec.kind === 'input' ? 'Input image' : `${title} ${layer}, ${spec.kind === 'vector' ? spec.d : ''} units`;
    const canvas = h('canvas', { class: 'map', tabindex: '0', role: 'button', 'aria-label': label, dataset: { layer: String(layer), channel: String(c) } });
    canvas.style.width = `${plan.tileW}px`;
    canvas.style.height = `${plan.tileH}px`;
    col.canvases.push(canvas);
    maps.append(canvas);
  }
  el.append(maps);
  return col;
}

/**
 * @param {View} view
 * @param {import('../state.js').State} state
 */
function draw(view, state) {
  const forward = /** @type {import('../state.js').Forward} */ (state.forward);
  const stats = state.stats;
  if (!stats || view.learning.draw(view.columns, state)) return; // gradients mode: views/learning draws
  const outputs = new Map(forward.layers.map((l) => [l.index, l.output]));
  for (const col of view.columns) {
    if (col.kind === 'input') drawInput(col.canvases[0], forward.input);
    else if (col.kind === 'probs' && col.probs) updateProbs(col.probs, forward.probabilities, forward.prediction.index, truthIndex(state));
    else {
      const t = outputs.get(col.layer);
      if (!t) continue;
      if (col.kind === 'maps') {
        const [, c, hh, ww] = t.shape;
        for (let ch = 0; ch < c && ch < col.canvases.length; ch++) {
          const sc = scaleFor(stats, state.locked, state.colour, col.layer, ch);
          drawMap(col.canvases[ch], t.data, ch * hh * ww, hh, ww, sc.lo, sc.hi, sc.cmap);
        }
      } else {
        const sc = scaleFor(stats, state.locked, state.colour, col.layer, 0);
        drawVector(col.canvases[0], t.data, 0, t.data.length, col.plan.gridCols, sc.lo, sc.hi, sc.cmap);
      }
    }
  }
  drawLegends(view, state);
}

/**
 * @param {View} view
 * @param {import('../state.js').State} state
 */
function drawLegends(view, state) {
  if (!state.stats) return;
  const perChannel = state.colour.mode === 'channel';
  const unfitted = /** @type {HTMLElement[]} */ ([]);
  for (const col of view.columns) {
    if (!col.legend) continue;
    let ch = 0;
    if (perChannel && col.kind === 'maps') {
      if (state.hover?.layer === col.layer) ch = state.hover.channel;
      else if (state.selection?.layer === col.layer) ch = state.selection.channel;
    }
    const sc = scaleFor(state.stats, state.locked, state.colour, col.layer, ch);
    updateLegend(col.legend, sc, undefined, 2, unfitted);
    col.legend.title = perChannel && col.kind === 'maps' ? `Range of channel ${ch} (hover a map to see its own)` : 'Range of the whole layer';
  }
  fitLegends(unfitted);
}

/** @param {import('../state.js').State} state */
function truthIndex(state) {
  const label = state.forward?.label ?? /** @type {any} */ (state.input)?.label;
  return typeof label === 'number' ? label : null;
}

/**
 * @param {View} view
 * @param {import('../state.js').State} state
 */
function markSelection(view, state) {
  const sel = state.selection;
  const probs = probLayer(view);
  for (const col of view.columns) {
    if (col.probs) markProb(col.probs, sel && sel.layer === probs ? sel.channel : null);
    col.canvases.forEach((c, ch) => {
      const on = !!sel && sel.layer === col.layer && (col.kind !== 'maps' || sel.channel === ch);
      c.classList.toggle('is-selected', on);
    });
  }
}

/** The focusable tiles of a column: its maps, or its class buttons. @param {Column} col @returns {HTMLElement[]} */
const tilesOf = (col) => (col.probs ? Array.from(col.probs.querySelectorAll('.prob-btn')) : col.canvases);

/**
 * The layer whose units the class rows stand for: the last (an output layer, or the scores before one).
 * @param {View} view
 */
const probLayer = (view) => (view.ctx.store.get().model?.layers.length ?? 0) - 1;

/**
 * The thumbnail (and unit) under an event, if any; a class row counts as a unit of `probLayer`.
 * @param {View} view
 * @param {MouseEvent} ev
 */
function tileOf(view, ev) {
  const btn = /** @type {HTMLElement} */ (ev.target).closest('.prob-btn');
  if (btn instanceof HTMLElement) {
    const col = view.columns.find((c) => c.kind === 'probs');
    return col ? { canvas: null, col, layer: probLayer(view), channel: Number(btn.dataset.unit), row: -1, x: -1 } : null;
  }
  const canvas = /** @type {HTMLElement} */ (ev.target).closest('canvas.map');
  if (!(canvas instanceof HTMLCanvasElement)) return null;
  const layer = Number(canvas.dataset.layer);
  const col = view.columns.find((c) => c.layer === layer);
  if (!col) return null;
  const { row, col: x } = unitAt(canvas, ev);
  if (col.kind === 'vector') {
    const unit = row * col.plan.gridCols + x;
    return unit < col.shape[0] ? { canvas, col, layer, channel: unit, row: -1, x: -1 } : null;
  }
  return { canvas, col, layer, channel: Number(canvas.dataset.channel), row, x };
}

/**
 * @param {View} view
 * @param {PointerEvent} ev
 */
function onMove(view, ev) {
  const t = tileOf(view, ev);
  const state = view.ctx.store.get();
  if (!t || !state.forward || !state.model) {
    hideTooltip();
    if (state.hover) view.ctx.actions.hover(null);
    return;
  }
  const title = t.layer < 0 ? 'Input' : `${layerTitle(state.model.layers[t.layer])} ${t.layer}`;
  /** @type {string[]} */
  let lines;
  let value;
  if (t.col.kind === 'probs') {
    value = state.forward.probabilities[t.channel] ?? 0;
    lines = probLines(state.model.classes[t.channel] ?? String(t.channel), t.channel, title, value, scoreBefore(state.model, state.forward, t.layer, t.channel));
  } else if (t.layer < 0) {
    const [, c, hh, ww] = state.forward.input.shape;
    const vals = Array.from({ length: c }, (_, k) => state.forward?.input.data[k * hh * ww + t.row * ww + t.x] ?? 0);
    value = vals[0];
    lines = [`Input pixel (row ${t.row}, col ${t.x})`, c === 3 ? `R ${fmt(vals[0])}  G ${fmt(vals[1])}  B ${fmt(vals[2])}` : `value ${fmt(vals[0])}`];
  } else {
    const out = state.forward.layers.find((l) => l.index === t.layer)?.output;
    if (!out) return;
    value = unitValue(out, t.channel, t.row, t.x);
    lines = t.row < 0 ? [`${title} · unit ${t.channel}`, `value ${fmt(value, 4)}`]
      : [`${title} · channel ${t.channel}`, `(row ${t.row}, col ${t.x}) = ${fmt(value, 4)}`];
  }
  const rect = receptiveRect(state.model, t.layer, t.channel, t.row, t.x);
  if (rect && t.layer >= 0 && t.col.kind !== 'probs') lines.push(receptiveLine(state.model, t.layer, rect));
  showTooltip(lines, ev.clientX, ev.clientY);
  view.ctx.actions.hover({ layer: t.layer, channel: t.channel, row: t.row, col: t.x, value, rect });
}
