// @ts-check
/**
 * The page's one message line: info that fades, errors that stay until replaced or closed.
 */
import { ApiError } from './api.js';

/**
 * @param {import('./state.js').Store} store
 */
export function createNotices(store) {
  let messageSeq = 0;

  /**
   * Show a message; info messages fade after a few seconds, errors stay until replaced or closed.
   * @param {'error'|'info'} kind
   * @param {string} text
   */
  function notify(kind, text) {
    const id = ++messageSeq;
    store.set({ message: { kind, text, id } });
    if (kind === 'info') setTimeout(() => store.get().message?.id === id && store.set({ message: null }), 5000);
  }

  /** An action went well: an error shown for an earlier one is old news. */
  function succeeded() {
    if (store.get().message?.kind === 'error') store.set({ message: null });
  }

  /** @param {unknown} err a failed request (the server's message is shown) or any error */
  function fail(err) {
    if (err instanceof ApiError && err.abandoned) return; // about a model this page has just deleted
    const text = err instanceof ApiError ? err.detail : err instanceof Error ? err.message : String(err);
    notify('error', text);
  }

  return { notify, succeeded, fail };
}
