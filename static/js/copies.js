// @ts-check
/**
 * Training a ready-trained (read-only) model trains a copy. The copy the person already has and has
 * not trained since it was made (same source, same step: the server marks a copy's `copied_from`)
 * is reused; otherwise the page asks once, inline in the message strip, naming the copy it will make.
 * The server makes names distinct ("… (my copy) (2)"), and the question names what it will be.
 */

/**
 * The name the server gives a new model called `name` (app/services/models.py `distinct_name`).
 * @param {string} name
 * @param {Array<{name: string}>} models
 * @returns {string}
 */
export function distinctName(name, models) {
  const taken = new Set(models.map((m) => m.name));
  let unique = name.slice(0, 100);
  for (let n = 2; taken.has(unique); n += 1) unique = `${name.slice(0, 92)} (${n})`;
  return unique;
}

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 * @param {{loadModel: (id: string, opts?: {input?: import('./state.js').InputRef}) => Promise<void>,
 *   refreshModels: () => Promise<void>, notify: (kind: 'error'|'info', text: string) => void, fail: (err: unknown) => void}} deps
 */
export function createCopies(store, api, deps) {
  /** Read-only models whose copying the person agreed to in this page (they are not asked again). */
  const agreed = new Set();
  /** @type {((yes: boolean) => void) | null} */
  let pending = null;

  /**
   * Show the question in the store (views/ask.js shows it) until it is answered.
   * @param {string} text
   * @returns {Promise<boolean>}
   */
  function ask(text) {
    pending?.(false);
    return new Promise((resolve) => {
      pending = (yes) => {
        pending = null;
        store.set({ ask: null });
        resolve(yes);
      };
      store.set({ ask: { text, yes: 'Train the copy', no: 'Not now' } });
    });
  }

  return {
    /**
     * The person's answer to the question on screen.
     * @param {boolean} yes
     */
    answer(yes) {
      pending?.(yes);
    },

    /**
     * Make a writable copy of the read-only `model` the current model: the person's untrained copy,
     * or a new one once they agree.
     * @param {Record<string, any>} model
     * @returns {Promise<boolean>} true when the current model is now that copy
     */
    async copyToTrain(model) {
      try {
        const list = await api.listModels();
        const models = Array.isArray(list) ? list : list.models || [];
        store.set({ models });
        const input = store.get().dataset?.name === model.dataset ? store.get().input ?? undefined : undefined;
        const mine = models.filter((m) => !m.read_only && m.copied_from === model.id && m.step === model.step && m.dataset === model.dataset).at(-1);
        if (mine) {
          await deps.loadModel(mine.id, { input });
          deps.notify('info', `Training your copy “${mine.name}”; “${model.name}” stays as it is.`);
          return true;
        }
        const base = `${model.name} (my copy)`;
        if (!agreed.has(model.id)) {
          const what = model.shared ? 'shared with you read-only' : 'ready-trained';
          const yes = await ask(`“${model.name}” is ${what} and stays as it is; training it makes your copy, “${distinctName(base, models)}”.`);
          if (!yes || store.get().model?.id !== model.id) return false;
          agreed.add(model.id);
        }
        const copy = await api.createModel({ from: model.id, name: base });
        await deps.loadModel(copy.id, { input });
        deps.refreshModels();
        deps.notify('info', `Training “${copy.name}”, your copy of “${model.name}”.`);
        return true;
      } catch (err) {
        deps.fail(err);
        return false;
      }
    },
  };
}
