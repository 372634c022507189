// @ts-check
/**
 * Training controls in the top bar: play/pause, step, step N, reset, and the step counter, epoch
 * and steps per second. Always on screen, so a class can watch the network while it learns.
 */
import { twoClick } from '../confirm.js';
import { h, setText } from '../dom.js';
import { fmt, fmtInt } from '../format.js';

/**
 * @param {HTMLElement} root
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const { trainer } = ctx;
  const play = h('button', { type: 'button', class: 'btn btn-primary btn-play', dataset: { action: 'play' }, 'aria-label': 'Play: train continuously' },
    h('span', { class: 'icon icon-play', 'aria-hidden': 'true' }), h('span', { class: 'btn-text' }, 'Play'));
  const step = h('button', { type: 'button', class: 'btn', dataset: { action: 'step' }, title: 'Train one mini-batch' }, 'Step');
  const count = h('input', { type: 'number', min: '1', max: '100000', value: '10', class: 'count-input', 'aria-label': 'Number of steps' });
  const stepN = h('button', { type: 'button', class: 'btn', dataset: { action: 'step-n' }, title: 'Train the given number of mini-batches' }, 'Step ×N');
  const reset = h('button', { type: 'button', class: 'btn btn-ghost', dataset: { action: 'reset' }, 'aria-label': 'Reset the weights' }, 'Reset');
  const steps = h('span', { class: 'counter-value', dataset: { counter: 'step' } }, '0');
  const epoch = h('span', { class: 'counter-value', dataset: { counter: 'epoch' } }, '0');
  const rate = h('span', { class: 'counter-value', dataset: { counter: 'rate' } }, '–');
  play.addEventListener('click', () => (ctx.store.get().training.playing ? trainer.pause() : trainer.play()));
  step.addEventListener('click', () => trainer.step(1));
  stepN.addEventListener('click', () => trainer.step(Math.max(1, Math.min(100000, Math.round(Number(count.value) || 1)))));
  count.addEventListener('keydown', (ev) => ev.key === 'Enter' && stepN.click());
  // Reset throws training away: a trained model asks for a second click within a few seconds.
  twoClick(reset, {
    label: 'Reset', aria: 'Reset the weights', armedLabel: 'Confirm reset',
    armedAria: 'Confirm reset: click again to replace the trained weights with new random ones',
    needsConfirm: () => (ctx.store.get().model?.step ?? 0) > 0, onConfirm: () => trainer.reset(),
  });
  root.append(
    h('div', { class: 'transport-buttons', role: 'group', 'aria-label': 'Training' }, play, step, h('span', { class: 'step-n' }, count, stepN), reset),
    h('div', { class: 'counters', 'aria-live': 'off' },
      h('span', { class: 'counter' }, h('span', { class: 'counter-label' }, 'step'), steps),
      h('span', { class: 'counter' }, h('span', { class: 'counter-label' }, 'epoch'), epoch),
      h('span', { class: 'counter' }, h('span', { class: 'counter-label' }, 'steps/s'), rate)),
  );
  return { root, play, step, stepN, count, reset, steps, epoch, rate, lastRate: 0, rateModel: '', rateStep: 0 };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('training') && !changed.has('model')) return;
  const { training, model } = state;
  const playing = training.playing;
  view.play.classList.toggle('is-playing', playing);
  setText(/** @type {Element} */ (view.play.querySelector('.btn-text')), playing ? 'Pause' : 'Play');
  view.play.setAttribute('aria-label', playing ? 'Pause training' : 'Play: train continuously');
  view.play.setAttribute('aria-pressed', String(playing));
  const idle = !!model && !playing && !training.busy;
  view.play.disabled = !model || training.busy;
  view.step.disabled = !idle;
  view.stepN.disabled = !idle;
  view.reset.disabled = !idle || !!model?.read_only;
  view.reset.title = model?.read_only ? 'Ready-trained models cannot be reset: train a copy' : 'New random weights';
  view.root.classList.toggle('is-busy', training.busy);
  if (!model) return;
  setText(view.steps, fmtInt(model.step ?? 0));
  setText(view.epoch, fmtInt(model.epoch ?? 0));
  // The last measured rate stays when training stops, marked as paused (another model or a reset starts afresh).
  if (view.rateModel !== model.id || (model.step ?? 0) < view.rateStep) Object.assign(view, { lastRate: 0, rateModel: model.id });
  view.rateStep = model.step ?? 0;
  if (training.stepsPerSecond) view.lastRate = training.stepsPerSecond;
  const paused = !playing && !training.busy && view.lastRate > 0;
  setText(view.rate, view.lastRate ? `${fmt(view.lastRate, 3)}${paused ? ' (paused)' : ''}` : '–');
  view.rate.title = paused ? 'the last measured rate; training is paused' : '';
  view.rate.dataset.paused = String(paused);
}
