// @ts-check
/**
 * The learning-step part of the training tab: per-layer curves and the last step's insides.
 */
import { mountCurves, renderCurves } from './curves.js';
import { mountLastStep, renderLastStep } from './laststep.js';

/**
 * @param {HTMLElement} root the training tab's panel
 * @param {any} ctx
 */
export function mount(root, ctx) {
  return { curves: mountCurves(root, ctx), step: mountLastStep(root, ctx) };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 */
export function render(view, state) {
  renderCurves(view.curves, state);
  renderLastStep(view.step, state);
}
