// @ts-check
/**
 * The filters gallery: one conv layer at a time, every filter large enough to read. First-layer
 * filters of RGB models are shown in colour; deeper filters as a row of slices per input channel,
 * all on one symmetric diverging scale per layer; a dense layer as one matrix picture (a row per unit,
 * a column per input). Hovering a cell shows its weight. While training plays they refresh about once a second.
 */
import { COLORMAPS } from '../colormap.js';
import { h, replaceChildren, setText } from '../dom.js';
import { fmt, layerTitle } from '../format.js';
import { createLegend, updateLegend } from '../legend.js';
import { cellAt, crispSize, drawColourFilter, drawMatrix, drawSlices, maxAbs } from '../slices.js';
import { hideTooltip, showTooltip } from '../tooltip.js';
import { filterLayers, flattenSource, shapeOf } from '../units.js';

const REFRESH_MS = 1000;

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const picker = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Conv layer' });
  const note = h('p', { class: 'detail-note' });
  const legend = createLegend('Colour scale of the filters');
  const gallery = h('div', { class: 'gallery' });
  const empty = h('p', { class: 'empty', hidden: true }, 'This network has no layers with weights to show.');
  const matrix = h('canvas', { class: 'map weight-matrix', dataset: { matrix: '' }, 'aria-label': 'The weights as a matrix: a row per unit, a column per input' });
  const matrixBox = h('div', { class: 'matrix-box', hidden: true }, matrix);
  matrixBox.style.overflowX = 'auto';
  root.append(h('div', { class: 'panel-head' }, h('h3', {}, 'Filters'), picker), h('div', { class: 'filters-meta' }, note, legend), gallery, matrixBox, empty);
  /** @param {Event} ev */
  const pick = (ev) => {
    const el = /** @type {HTMLElement} */ (ev.target).closest('[data-filter]');
    if (el instanceof HTMLElement) ctx.actions.select(view.layer, Number(el.dataset.filter), true);
  };
  gallery.addEventListener('click', pick);
  gallery.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      pick(ev);
    }
  });
  const view = { root, ctx, picker, note, legend, gallery, matrix, matrixBox, empty, layer: -1, key: '', lastFetch: 0, drawnKey: '', timer: /** @type {any} */ (0) };
  gallery.addEventListener('pointermove', (ev) => hoverFilter(view, ev));
  matrix.addEventListener('pointermove', (ev) => hoverMatrix(view, ev));
  for (const el of [gallery, matrix]) el.addEventListener('pointerleave', hideTooltip);
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  const { model } = state;
  if (!model || state.tab !== 'filters') return;
  const convs = [...filterLayers(model), ...denseLayers(model)];
  const key = `${model.id}|${convs.join(',')}`;
  if (key !== view.key) {
    view.key = key;
    view.layer = convs[0] ?? -1;
    replaceChildren(view.picker, convs.map((/** @type {number} */ i) => {
      const id = `filters-layer-${i}`;
      const input = h('input', { type: 'radio', name: 'filters-layer', id, value: String(i), class: 'visually-hidden', checked: i === view.layer });
      input.addEventListener('change', () => {
        view.layer = i;
        view.drawnKey = '';
        render(view, view.ctx.store.get(), new Set(['filters']));
      });
      return [input, h('label', { for: id, class: 'seg' }, `${layerTitle(model.layers[i])} ${i}${model.layers[i].output_shape.length === 1 ? ' (matrix)' : ''}`)];
    }));
  }
  view.empty.hidden = convs.length > 0;
  if (view.layer < 0) return;
  const f = state.filtersStep === model.step ? state.filters.get(view.layer) : undefined;
  if (!f) {
    const now = performance.now();
    if (now - view.lastFetch > (state.training.playing ? REFRESH_MS : 0)) {
      view.lastFetch = now;
      view.ctx.actions.loadFilters([view.layer]);
    } else if (!view.timer) {
      view.timer = setTimeout(() => {
        view.timer = 0;
        render(view, view.ctx.store.get(), new Set(['filters']));
      }, REFRESH_MS);
    }
    if (!view.gallery.children.length) setText(view.note, 'Loading the filters…');
    return;
  }
  const drawnKey = `${model.id}:${state.filtersStep}:${view.layer}:${state.colour.cmap}`;
  if (drawnKey === view.drawnKey) return;
  view.drawnKey = drawnKey;
  if (f.error) {
    setText(view.note, f.error);
    return;
  }
  const dense = f.shape.length === 2;
  view.gallery.hidden = dense;
  view.matrixBox.hidden = !dense;
  if (dense) drawDense(view, state, f);
  else draw(view, state, f);
}

/** Weighted layers with vector outputs (dense), shown as matrices. @param {Record<string, any>} model */
function denseLayers(model) {
  return model.layers.filter((/** @type {any} */ l) => l.kind === 'weighted' && l.output_shape.length === 1).map((/** @type {any} */ l) => l.index);
}

/** The weights shown, when they are the current layer's. @param {ReturnType<typeof mount>} view */
function shown(view) {
  const state = view.ctx.store.get();
  const f = state.model && state.filtersStep === state.model.step ? state.filters.get(view.layer) : undefined;
  return f && !f.error ? { f, model: state.model } : null;
}

/**
 * The weight under the pointer in a filter's slice (or its colour picture: the three channels).
 * @param {ReturnType<typeof mount>} view
 * @param {PointerEvent} ev
 */
function hoverFilter(view, ev) {
  const canvas = /** @type {HTMLElement} */ (ev.target).closest('canvas');
  const row = canvas?.closest('[data-filter]');
  const s = shown(view);
  if (!(canvas instanceof HTMLCanvasElement) || !(row instanceof HTMLElement) || !s || s.f.shape.length !== 4) return hideTooltip();
  const [, c, kh, kw] = s.f.shape;
  const cell = cellAt(canvas, ev, kh, kw);
  if (!cell) return hideTooltip();
  const i = Number(row.dataset.filter);
  const at = (/** @type {number} */ k) => s.f.data[((i * c + k) * kh + cell.row) * kw + cell.col];
  const colour = canvas.classList.contains('filter-colour');
  const k = colour ? 0 : Array.from(row.querySelectorAll('.slices canvas')).indexOf(canvas);
  const where = `(row ${cell.row}, col ${cell.col})`;
  showTooltip(colour ? [`Filter #${i} ${where}`, `R ${fmt(at(0), 4)}  G ${fmt(at(1), 4)}  B ${fmt(at(2), 4)}`]
    : [`Filter #${i} · input channel ${k} ${where}`, `weight ${fmt(at(k), 4)}`], ev.clientX, ev.clientY);
}

/**
 * The weight under the pointer in a dense layer's matrix, and where its input comes from.
 * @param {ReturnType<typeof mount>} view
 * @param {PointerEvent} ev
 */
function hoverMatrix(view, ev) {
  const s = shown(view);
  if (!s || s.f.shape.length !== 2) return hideTooltip();
  const [units, d] = s.f.shape;
  const cell = cellAt(view.matrix, ev, units, d);
  if (!cell) return hideTooltip();
  const lines = [`${layerTitle(s.model.layers[view.layer])} ${view.layer} · unit ${cell.row} ← input ${cell.col}`, `weight ${fmt(s.f.data[cell.row * d + cell.col], 4)}`];
  const src = flattenSource(s.model, view.layer - 1);
  if (src !== null) {
    const [, hh, ww] = shapeOf(s.model, src);
    lines.push(`input ${cell.col} is channel ${Math.floor(cell.col / (hh * ww))}, row ${Math.floor((cell.col % (hh * ww)) / ww)}, col ${cell.col % ww} of ${src < 0 ? 'the image' : `layer ${src}`}`);
  }
  showTooltip(lines, ev.clientX, ev.clientY);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {import('../state.js').Filters} f
 */
function drawDense(view, state, f) {
  const model = /** @type {Record<string, any>} */ (state.model);
  const [units, d] = f.shape;
  const m = maxAbs(f.data, 0, f.data.length);
  const cmap = COLORMAPS[state.colour.cmap]?.kind === 'diverging' ? state.colour.cmap : state.colour.diverging;
  setText(view.note, `${layerTitle(model.layers[view.layer])} ${view.layer}: ${units} units × ${d} inputs, a row per unit and a column per input, step ${model.step}. Hover a cell for its weight.`);
  updateLegend(view.legend, { lo: -m, hi: m, cmap });
  drawMatrix(view.matrix, f.data, units, d, m, cmap, Math.max(200, view.root.clientWidth - 32));
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {import('../state.js').Filters} f
 */
function draw(view, state, f) {
  const model = /** @type {Record<string, any>} */ (state.model);
  const [n, c, kh, kw] = f.shape;
  const m = maxAbs(f.data, 0, f.data.length);
  const cmap = COLORMAPS[state.colour.cmap]?.kind === 'diverging' ? state.colour.cmap : state.colour.diverging;
  const colour = c === 3 && view.layer === filterLayers(model)[0];
  const px = colour ? crispSize(Math.max(kh, kw), 64, 96) : crispSize(Math.max(kh, kw), c > 16 ? 36 : 44, c > 16 ? 48 : 64);
  setText(view.note, `${layerTitle(model.layers[view.layer])} ${view.layer}: ${n} filters, each ${c} channel${c > 1 ? 's' : ''} × ${kh}×${kw}, step ${model.step}.${colour ? ' Shown in colour (the channels are red, green, blue), then per channel.' : ''} Click a filter for its map.`);
  updateLegend(view.legend, { lo: -m, hi: m, cmap });
  if (view.gallery.children.length !== n || view.gallery.dataset.shape !== f.shape.join('x')) {
    view.gallery.dataset.shape = f.shape.join('x');
    replaceChildren(view.gallery, Array.from({ length: n }, (_, i) =>
      h('div', { class: 'filter-row', role: 'button', tabindex: '0', dataset: { filter: String(i) }, 'aria-label': `Filter ${i}: show its map` },
        h('span', { class: 'filter-index' }, `#${i}`),
        colour ? h('canvas', { class: 'map filter-colour', 'aria-hidden': 'true' }) : null,
        h('div', { class: 'slices' }))));
  }
  view.gallery.classList.toggle('is-colour', colour);
  Array.from(view.gallery.children).forEach((row, i) => {
    const off = i * c * kh * kw;
    const cc = row.querySelector('canvas.filter-colour');
    if (cc instanceof HTMLCanvasElement) drawColourFilter(cc, f.data, off, kh, kw, m, px);
    drawSlices(/** @type {HTMLElement} */ (row.querySelector('.slices')), f.data, off, c, kh, kw, m, cmap, colour ? Math.round(px * 0.4) : px, (k) => (colour ? 'RGB'[k] : `${k}`));
  });
}
