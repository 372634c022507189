// @ts-check
/**
 * Layer and channel detail: the selected map enlarged (hover reads values and outlines the
 * receptive field on the input), beside the weights that produced it: a filter's slices per input
 * channel and its bias, or a vector unit's weights folded back onto the map they read, plus the
 * per-channel numbers of layers that adjust the map after it (a normalizing layer's scale and shift).
 * Everything is chosen by the layers' kinds and weight shapes, and the words come from the registry.
 */
import { COLORMAPS } from '../colormap.js';
import { drawMap, drawVector, unitAt } from '../canvas.js';
import { h, replaceChildren, setText } from '../dom.js';
import { fmt, fmtPct, fmtShape, layerTitle, prettyClass } from '../format.js';
import { createLegend, updateLegend } from '../legend.js';
import { scaleFor } from '../scale.js';
import { crispSize, drawColourFilter, drawSlices, drawWeightVector, maxAbs } from '../slices.js';
import { hideTooltip, showTooltip } from '../tooltip.js';
import { createUnit, renderUnit } from './unit/panel.js';
import { adjustingLayers, filterLayers, flattenSource, producingConv, producingDense, receptiveRect, scoreBefore, shapeOf, unitValue } from '../units.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const title = h('h3', { class: 'detail-title' });
  const canvas = h('canvas', { class: 'map detail-canvas', 'aria-label': 'Enlarged map' });
  const mark = h('span', { class: 'unit-mark', hidden: true, 'aria-hidden': 'true' });
  const legend = createLegend('Colour scale of the enlarged map');
  const stats = h('p', { class: 'detail-stats' });
  const wTitle = h('h3', { class: 'detail-title' }, 'Weights');
  const wNote = h('p', { class: 'detail-note' });
  const adjust = h('p', { class: 'detail-note detail-adjust', hidden: true });
  const colour = h('canvas', { class: 'map', 'aria-label': 'The filter in colour' });
  const colourFig = h('figure', { class: 'slice slice-colour', hidden: true }, colour, h('figcaption', {}, 'in colour'));
  const slices = h('div', { class: 'slices' });
  const wLegend = createLegend('Colour scale of the weights');
  const about = h('p', { class: 'detail-about' });
  const empty = h('p', { class: 'empty' }, 'Click any map in the overview to see it here, next to the weights that made it.');
  const body = h('div', { class: 'detail' },
    h('section', { class: 'detail-map' }, title, h('div', { class: 'detail-stage' }, h('span', { class: 'detail-frame' }, canvas, mark)), legend, stats),
    h('section', { class: 'detail-weights' }, wTitle, wNote, adjust, h('div', { class: 'slices-row' }, colourFig, slices), wLegend, about));
  const unit = createUnit(ctx);
  root.append(empty, body, unit.el);
  canvas.addEventListener('pointermove', (ev) => onMove(view, ev));
  canvas.addEventListener('pointerleave', () => {
    hideTooltip();
    ctx.actions.hover(null);
  });
  const view = { root, ctx, unit, title, canvas, mark, legend, stats, wTitle, wNote, adjust, colour, colourFig, slices, wLegend, about, empty, body, requested: '' };
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (state.tab !== 'detail') return;
  if (!['tab', 'selection', 'forward', 'stats', 'colour', 'locked', 'filters', 'model'].some((k) => changed.has(k))) return;
  const { model, forward, selection: sel } = state;
  const show = !!(model && forward && sel && sel.layer >= 0 && sel.layer < model.layers.length);
  view.empty.hidden = show;
  view.body.hidden = !show;
  renderUnit(view.unit, show ? state : { model: null, selection: null });
  if (!show || !model || !forward || !sel) return;
  const info = model.layers[sel.layer];
  const out = forward.layers.find((l) => l.index === sel.layer)?.output;
  if (!out) return;
  setText(view.about, (state.boot.layer_types || []).find((/** @type {any} */ t) => t.type === info.type)?.explanation || '');
  const stats = /** @type {import('../scale.js').Stats} */ (state.stats);
  if (out.shape.length === 4) {
    const [, , hh, ww] = out.shape;
    const sc = scaleFor(stats, state.locked, state.colour, sel.layer, sel.channel);
    const off = sel.channel * hh * ww;
    drawMap(view.canvas, out.data, off, hh, ww, sc.lo, sc.hi, sc.cmap);
    view.mark.hidden = true;
    const px = crispSize(Math.max(hh, ww), 160, 280);
    view.canvas.style.width = `${Math.round((px * ww) / Math.max(hh, ww))}px`;
    view.canvas.style.height = `${Math.round((px * hh) / Math.max(hh, ww))}px`;
    updateLegend(view.legend, sc);
    const st = stats.layers.get(sel.layer);
    let sum = 0;
    for (let i = off; i < off + hh * ww; i++) sum += out.data[i];
    setText(view.title, `${layerTitle(info)} ${info.index} · channel ${sel.channel} · ${hh}×${ww}`);
    setText(view.stats, `min ${fmt(st?.min[sel.channel])} · max ${fmt(st?.max[sel.channel])} · mean ${fmt(sum / (hh * ww))}`);
  } else {
    const sc = scaleFor(stats, state.locked, state.colour, sel.layer, 0);
    const n = out.data.length;
    const cols = Math.ceil(Math.sqrt(n));
    drawVector(view.canvas, out.data, 0, n, cols, sc.lo, sc.hi, sc.cmap);
    const px = crispSize(cols, 120, 240);
    const cell = px / cols;
    view.canvas.style.width = `${px}px`;
    view.canvas.style.height = `${Math.round(cell * Math.ceil(n / cols))}px`;
    // The selected unit, outlined in the grid.
    view.mark.hidden = sel.channel >= n;
    view.mark.style.transform = `translate(${(sel.channel % cols) * cell}px, ${Math.floor(sel.channel / cols) * cell}px)`;
    view.mark.style.width = view.mark.style.height = `${cell}px`;
    updateLegend(view.legend, sc);
    const value = unitValue(out, sel.channel, -1, 0);
    if (info.kind === 'output') {
      const cls = model.classes[sel.channel];
      const score = scoreBefore(model, forward, sel.layer, sel.channel);
      setText(view.title, `${layerTitle(info)} ${info.index} · ${n} units · unit ${sel.channel}${cls !== undefined ? ` (${prettyClass(cls)})` : ''}`);
      setText(view.stats, `probability ${fmtPct(value)}${score !== null ? ` · score before ${layerTitle(info).toLowerCase()} ${fmt(score, 4)}` : ''}`);
    } else {
      setText(view.title, `${layerTitle(info)} ${info.index} · ${n} units · unit ${sel.channel}`);
      setText(view.stats, `unit ${sel.channel} = ${fmt(value, 4)}`);
    }
  }
  renderWeights(view, state, sel, info);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {{layer: number, channel: number}} sel
 * @param {any} info
 */
function renderWeights(view, state, sel, info) {
  const model = /** @type {Record<string, any>} */ (state.model);
  const isMap = info.output_shape.length === 3;
  const src = isMap ? producingConv(model, sel.layer) : producingDense(model, sel.layer);
  const adjusting = adjustingLayers(model, sel.layer);
  /** @param {number} i */
  const loaded = (i) => (state.filtersStep === model.step ? state.filters.get(i) : undefined);
  const wanted = src === null ? adjusting : [src, ...adjusting];
  const missing = wanted.filter((i) => !loaded(i));
  const key = `${model.id}:${model.step}:${wanted.join(',')}`;
  if (missing.length && view.requested !== key) {
    view.requested = key;
    view.ctx.actions.loadFilters(missing);
  }
  renderAdjusting(view, sel, adjusting.map((i) => ({ info: model.layers[i], f: loaded(i) })), isMap);
  view.colourFig.hidden = true;
  if (src === null) {
    setText(view.wTitle, 'Weights');
    const flat = info.kind === 'reshape' && flattenSource(model, sel.layer) === sel.layer - 1;
    setText(view.wNote, isMap ? 'This map is not made by a filter.' : flat ? flattenNote(model, sel, info) : 'This unit has no weights of its own.');
    replaceChildren(view.slices);
    view.wLegend.hidden = true;
    return;
  }
  const f = loaded(src);
  setText(view.wTitle, isMap ? `Filter ${sel.channel} of ${layerTitle(model.layers[src])} ${src}` : `Weights into unit ${sel.channel} of ${layerTitle(model.layers[src])} ${src}`);
  if (!f) {
    setText(view.wNote, 'Loading the weights…');
    return;
  }
  if (f.error) {
    setText(view.wNote, f.error);
    replaceChildren(view.slices);
    view.wLegend.hidden = true;
    return;
  }
  const srcInfo = model.layers[src];
  const via = src !== sel.layer ? ` (made by ${layerTitle(srcInfo)} ${src}, then ${model.layers.slice(src + 1, sel.layer + 1).map(layerTitle).join(', ')})` : '';
  const cmap = COLORMAPS[state.colour.cmap]?.kind === 'diverging' ? state.colour.cmap : state.colour.diverging;
  const bias = f.bias ? ` · bias ${fmt(f.bias[sel.channel], 3)}` : '';
  view.wLegend.hidden = false;
  if (f.shape.length === 4) {
    const [, c, kh, kw] = f.shape;
    const off = sel.channel * c * kh * kw;
    const m = maxAbs(f.data, off, c * kh * kw);
    setText(view.wNote, `${c} input channel${c > 1 ? 's' : ''} × ${kh}×${kw}${bias}${via}`);
    const px = c > 16 ? 44 : crispSize(Math.max(kh, kw), 56, 84);
    drawSlices(view.slices, f.data, off, c, kh, kw, m, cmap, px, (i) => `in ${i}`);
    if (c === 3 && src === filterLayers(model)[0]) {
      view.colourFig.hidden = false;
      drawColourFilter(view.colour, f.data, off, kh, kw, m, px);
    }
    updateLegend(view.wLegend, { lo: -m, hi: m, cmap });
    return;
  }
  const [, d] = f.shape;
  const off = sel.channel * d;
  const m = maxAbs(f.data, off, d);
  const from = flattenSource(model, src - 1);
  if (from !== null) {
    const [c, hh, ww] = shapeOf(model, from);
    setText(view.wNote, `${d} weights, shown as the ${c} map${c > 1 ? 's' : ''} of ${from < 0 ? 'the input' : `${layerTitle(model.layers[from])} ${from}`} they read (${fmtShape([c, hh, ww])})${bias}${via}`);
    const px = c > 16 ? 48 : crispSize(Math.max(hh, ww), 56, 96);
    drawSlices(view.slices, f.data, off, c, hh, ww, m, cmap, px, (i) => `from ch ${i}`);
  } else {
    setText(view.wNote, `${d} weights${bias}${via}`);
    const tiles = view.slices.querySelectorAll('canvas');
    if (tiles.length !== 1) replaceChildren(view.slices, h('figure', { class: 'slice' }, h('canvas', { class: 'map', 'aria-label': 'Weights' }), h('figcaption', {}, `${d} inputs`)));
    drawWeightVector(/** @type {HTMLCanvasElement} */ (view.slices.querySelector('canvas')), f.data, off, d, m, cmap, 160);
  }
  updateLegend(view.wLegend, { lo: -m, hi: m, cmap });
}

/**
 * What a unit of a flattening layer is: one value of the map before it.
 * @param {Record<string, any>} model
 * @param {{layer: number, channel: number}} sel
 * @param {any} info the flattening layer
 */
function flattenNote(model, sel, info) {
  const [, hh, ww] = shapeOf(model, sel.layer - 1);
  const ch = Math.floor(sel.channel / (hh * ww));
  const pos = sel.channel % (hh * ww);
  return `${layerTitle(info)} has no weights: unit ${sel.channel} is channel ${ch}, row ${Math.floor(pos / ww)}, column ${pos % ww} of the layer before.`;
}

/**
 * The learned numbers of channel `sel.channel` in layers that adjust the selected map after the
 * layer that made it: one weight and one bias per channel (weights of rank 1), e.g. a normalizing
 * layer's scale and shift. Layers whose weights have another shape are left out.
 * @param {ReturnType<typeof mount>} view
 * @param {{layer: number, channel: number}} sel
 * @param {Array<{info: any, f: import('../state.js').Filters | undefined}>} layers
 * @param {boolean} isMap
 */
function renderAdjusting(view, sel, layers, isMap) {
  const c = sel.channel;
  const what = isMap ? 'map' : 'unit';
  const lines = layers.map(({ info, f }) => {
    const name = `${layerTitle(info)} ${info.index}`;
    if (!f) return `${name}: loading its weights…`;
    if (f.error || f.shape.length !== 1 || c >= f.shape[0]) return '';
    const scales = info.kind === 'normalize';
    const w = `${scales ? 'scale' : 'weight'} w[${c}] = ${fmt(f.data[c], 4)}`;
    const b = f.bias ? `, ${scales ? 'shift' : 'bias'} b[${c}] = ${fmt(f.bias[c], 4)}` : '';
    return scales
      ? `${name} rescales each ${what} with numbers it learned for it: ${w}${b}${f.bias ? ' (each value becomes w × normalized value + b)' : ''}.`
      : `${name} has learned numbers for each ${what}: ${w}${b}.`;
  }).filter(Boolean);
  view.adjust.hidden = !lines.length;
  setText(view.adjust, lines.join(' '));
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {PointerEvent} ev
 */
function onMove(view, ev) {
  const { model, forward, selection: sel } = view.ctx.store.get();
  if (!model || !forward || !sel) return;
  const out = forward.layers.find((/** @type {any} */ l) => l.index === sel.layer)?.output;
  if (!out) return;
  const { row, col } = unitAt(view.canvas, ev);
  const vector = out.shape.length === 2;
  const unit = vector ? row * view.canvas.width + col : sel.channel;
  if (vector && unit >= out.data.length) return;
  const value = unitValue(out, unit, vector ? -1 : row, col);
  const rect = receptiveRect(model, sel.layer, unit, vector ? -1 : row, col);
  showTooltip([vector ? `unit ${unit}` : `(row ${row}, col ${col})`, `value ${fmt(value, 4)}`], ev.clientX, ev.clientY);
  view.ctx.actions.hover({ layer: sel.layer, channel: unit, row: vector ? -1 : row, col, value, rect });
}
