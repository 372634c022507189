// @ts-check
/**
 * A button that asks for a second click before it throws something away: the first click arms it
 * (it says what the next click will do) for a few seconds, the second one acts.
 */
import { setText } from './dom.js';

/**
 * @param {HTMLButtonElement} button
 * @param {{label: string, aria: string, armedLabel: string, armedAria: string, onConfirm: () => void,
 *   needsConfirm?: () => boolean, ms?: number}} opts
 * @returns {{disarm: () => void, armed: () => boolean}}
 */
export function twoClick(button, opts) {
  let timer = 0;
  const disarm = () => {
    clearTimeout(timer);
    timer = 0;
    button.classList.remove('is-armed');
    setText(button, opts.label);
    button.setAttribute('aria-label', opts.aria);
  };
  button.addEventListener('click', () => {
    if (timer || (opts.needsConfirm && !opts.needsConfirm())) {
      disarm();
      opts.onConfirm();
      return;
    }
    timer = window.setTimeout(disarm, opts.ms ?? 4000);
    button.classList.add('is-armed');
    setText(button, opts.armedLabel);
    button.setAttribute('aria-label', opts.armedAria);
  });
  disarm();
  return { disarm, armed: () => timer !== 0 };
}
