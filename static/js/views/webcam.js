// @ts-check
/**
 * Webcam input: with the browser's permission, camera frames run through the model one at a time
 * (a square centre crop sent as a multipart forward, never stored). At most one request is in
 * flight; after each answer the next frame waits as long as that one took (so the server is busy at
 * most about half the time and the page stays smooth), between MIN_GAP_MS and MAX_GAP_MS. Freeze keeps
 * the last frame and its maps; hiding the tab or choosing another input stops the camera. A refused
 * permission or a missing camera shows a plain message.
 */
import { h, setText } from '../dom.js';
import { fmt } from '../format.js';
import { forwardStats } from '../scale.js';

const SIZE = 128; // px: the square sent; the server resizes it to the model's input
const MIN_GAP_MS = 60;
const MAX_GAP_MS = 1000;

/** @param {any} err */
function plainMessage(err) {
  const name = err?.name || '';
  if (name === 'NotAllowedError' || name === 'SecurityError') {
    return 'The camera was not allowed. To use it, allow the camera for this page in the browser (the camera icon in the address bar), then press Webcam again.';
  }
  if (name === 'NotFoundError' || name === 'OverconstrainedError' || name === 'DevicesNotFoundError') return 'No camera was found on this computer.';
  if (name === 'NotReadableError') return 'The camera is busy: another program may be using it.';
  return 'The webcam could not be started.';
}

/**
 * @param {HTMLElement} root the input panel (views/input.js mounts first): the button joins its actions
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const toggle = h('button', { type: 'button', class: 'btn', 'aria-pressed': 'false', 'aria-controls': 'webcam', dataset: { webcam: 'toggle' } }, 'Webcam');
  const freeze = h('button', { type: 'button', class: 'btn btn-small', 'aria-pressed': 'false', dataset: { webcam: 'freeze' } }, 'Freeze');
  const video = /** @type {HTMLVideoElement} */ (h('video', { class: 'webcam-video', 'aria-label': 'Camera preview', props: { muted: true, playsInline: true } }));
  const frames = h('span', { class: 'webcam-frames', dataset: { webcamFrames: '' } }, '0');
  const rate = h('span', { class: 'webcam-rate' }, '');
  const panel = h('div', { class: 'webcam', id: 'webcam', hidden: true },
    video, h('div', { class: 'webcam-bar' }, freeze, h('span', { class: 'webcam-count' }, frames, ' frames'), rate));
  const message = h('p', { class: 'webcam-message', role: 'status', hidden: true, dataset: { webcamMessage: '' } });
  (root.querySelector('.input-actions') || root).append(toggle);
  const after = root.querySelector('.dropzone');
  if (after) after.after(panel, message);
  else root.append(panel, message);
  const canvas = document.createElement('canvas');
  [canvas.width, canvas.height] = [SIZE, SIZE];
  const view = {
    root, ctx, toggle, freeze, video, frames, rate, panel, message, canvas, count: 0, frozen: false, sending: false,
    stream: /** @type {MediaStream | null} */ (null), timer: /** @type {any} */ (0), input: /** @type {any} */ (undefined),
  };
  toggle.addEventListener('click', () => (view.stream ? stop(view, true) : start(view)));
  freeze.addEventListener('click', () => {
    view.frozen = !view.frozen;
    freeze.setAttribute('aria-pressed', String(view.frozen));
    setText(freeze, view.frozen ? 'Resume' : 'Freeze');
    if (view.frozen) {
      video.pause();
      clearTimeout(view.timer); // no next frame; one already sent marks the panel idle when it lands
      if (!view.sending) view.panel.dataset.webcamState = 'idle';
    }
    else {
      video.play().catch(() => {});
      schedule(view, 0);
    }
  });
  document.addEventListener('visibilitychange', () => document.hidden && view.stream && stop(view, false));
  return view;
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (view.stream && changed.has('input') && state.input !== view.input) stop(view, false); // another input was chosen
  view.input = state.input;
}

/** @param {ReturnType<typeof mount>} view */
async function start(view) {
  view.message.hidden = true;
  if (!navigator.mediaDevices?.getUserMedia) {
    show(view, 'This browser offers no camera to this page (a camera needs https or localhost).');
    return;
  }
  try {
    view.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 320 }, height: { ideal: 240 } }, audio: false });
  } catch (err) {
    show(view, plainMessage(err));
    return;
  }
  view.video.srcObject = view.stream;
  await view.video.play().catch(() => {});
  [view.count, view.frozen] = [0, false];
  setText(view.frames, '0');
  setText(view.rate, '');
  setText(view.freeze, 'Freeze');
  view.freeze.setAttribute('aria-pressed', 'false');
  view.toggle.setAttribute('aria-pressed', 'true');
  setText(view.toggle, 'Stop webcam');
  view.panel.hidden = false;
  schedule(view, 0);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {boolean} restore run the chosen input again (the maps show it instead of the last frame)
 */
function stop(view, restore) {
  clearTimeout(view.timer);
  view.stream?.getTracks().forEach((t) => t.stop());
  view.stream = null;
  view.video.srcObject = null;
  view.panel.hidden = true;
  view.toggle.setAttribute('aria-pressed', 'false');
  setText(view.toggle, 'Webcam');
  const input = view.ctx.store.get().input;
  if (restore && input) view.ctx.actions.runInput(input);
}

/** @param {ReturnType<typeof mount>} view @param {string} text */
function show(view, text) {
  setText(view.message, text);
  view.message.hidden = false;
}

/** @param {ReturnType<typeof mount>} view @param {number} ms */
function schedule(view, ms) {
  clearTimeout(view.timer);
  view.timer = setTimeout(() => requestAnimationFrame(() => frame(view)), ms);
}

/**
 * Send one frame and show its forward pass, then schedule the next.
 * @param {ReturnType<typeof mount>} view
 */
async function frame(view) {
  const { store, api } = view.ctx;
  const model = store.get().model;
  if (!view.stream || view.frozen || !model) return;
  const v = view.video;
  if (v.readyState < 2 || !v.videoWidth) return schedule(view, 100);
  const side = Math.min(v.videoWidth, v.videoHeight);
  const g = /** @type {CanvasRenderingContext2D} */ (view.canvas.getContext('2d'));
  g.drawImage(v, (v.videoWidth - side) / 2, (v.videoHeight - side) / 2, side, side, 0, 0, SIZE, SIZE);
  const t0 = performance.now();
  view.sending = true;
  view.panel.dataset.webcamState = 'sending';
  try {
    const blob = await new Promise((ok, bad) => view.canvas.toBlob((b) => (b ? ok(b) : bad(new Error('no frame'))), 'image/jpeg', 0.9));
    const forward = await api.forwardFile(model.id, blob).finally(() => { view.sending = false; });
    const now = store.get().model;
    if (view.frozen) view.panel.dataset.webcamState = 'idle'; // frozen while it flew: nothing more is sent
    if (!view.stream || view.frozen || now?.id !== model.id) return view.stream && !view.frozen ? schedule(view, 0) : undefined;
    store.set({ forward, stats: forwardStats(forward, now), explanation: null });
  } catch (err) {
    view.ctx.actions.fail(err);
    stop(view, false);
    return;
  }
  const took = performance.now() - t0;
  const gap = Math.min(MAX_GAP_MS, Math.max(MIN_GAP_MS, took));
  view.count += 1;
  setText(view.frames, String(view.count));
  setText(view.rate, `≈ ${fmt(1000 / (took + gap), 2)} frames/s`);
  schedule(view, gap);
}
