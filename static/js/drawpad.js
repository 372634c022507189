// @ts-check
/**
 * A drawing pad for digits: white ink on black (like the digits dataset), pointer and touch input,
 * and a PNG of the drawing when a stroke ends.
 */
import { h } from './dom.js';

const SIDE = 224;

/**
 * @param {{onDrawn: (png: Blob) => void, onClear?: () => void}} opts `onDrawn`: after each stroke; `onClear`: after Clear
 */
export function createDrawPad(opts) {
  const canvas = h('canvas', { class: 'drawpad-canvas', width: String(SIDE), height: String(SIDE), 'aria-label': 'Drawing pad: draw with the mouse, a pen or a finger', role: 'img' });
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  const width = h('input', { type: 'range', min: '6', max: '36', value: '18', 'aria-label': 'Brush size' });
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, SIDE, SIDE);
  };
  clear();
  /** @type {{x: number, y: number} | null} */
  let last = null;
  let dirty = false;

  /** @param {PointerEvent} ev */
  const pos = (ev) => {
    const r = canvas.getBoundingClientRect();
    return { x: ((ev.clientX - r.left) / r.width) * SIDE, y: ((ev.clientY - r.top) / r.height) * SIDE };
  };
  /** @param {{x: number, y: number}} a @param {{x: number, y: number}} b */
  const line = (a, b) => {
    ctx.strokeStyle = '#fff';
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.lineWidth = Number(width.value);
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  };
  canvas.addEventListener('pointerdown', (ev) => {
    canvas.setPointerCapture(ev.pointerId);
    last = pos(ev);
    line(last, { x: last.x + 0.01, y: last.y });
    dirty = true;
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (!last) return;
    const p = pos(ev);
    line(last, p);
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    if (dirty) canvas.toBlob((b) => b && opts.onDrawn(b), 'image/png');
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);

  const el = h(
    'div',
    { class: 'drawpad' },
    canvas,
    h(
      'div',
      { class: 'drawpad-tools' },
      h('label', { class: 'field-inline' }, h('span', {}, 'Brush'), width),
      h('button', { type: 'button', class: 'btn btn-small', on: { click: () => { clear(); dirty = false; opts.onClear?.(); } } }, 'Clear'),
    ),
  );
  return { el, clear };
}
