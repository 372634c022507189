// @ts-check
/**
 * Managing the current model: freeze layers for transfer learning, delete it. Results go to the
 * store from the server's answer; a refusal (e.g. 409 while training plays) shows the server's message.
 */
import { ApiError } from './api.js';

const CLOSE_WAIT_MS = 200;
const CLOSE_TRIES = 10;

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 * @param {import('./actions.js').Actions} actions
 * @param {import('./training.js').Trainer} trainer
 */
export function createManager(store, api, actions, trainer) {
  /** @param {number} ms */
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  return {
    /**
     * Freeze exactly these layers (by index); the others with weights train.
     * @param {number[]} frozen
     * @returns {Promise<boolean>}
     */
    async setFrozen(frozen) {
      const model = store.get().model;
      if (!model || model.read_only) return false;
      try {
        const updated = await api.patchModel(model.id, { frozen: [...frozen].sort((a, b) => a - b) });
        const now = store.get().model;
        if (now?.id !== model.id) return false;
        store.set({ model: { ...now, frozen: updated.frozen, layers: updated.layers } });
        actions.succeeded();
        actions.loadHistory(model.id); // the change is an event on the curves
        return true;
      } catch (err) {
        actions.fail(err);
        const now = store.get().model;
        if (now?.id === model.id) store.set({ model: { ...now } }); // the checkboxes show the model again
        return false;
      }
    },

    /**
     * Delete the current model (closing this page's live connection to it first), then show the
     * shipped default model, or the first one left.
     * @returns {Promise<boolean>}
     */
    async deleteModel() {
      const model = store.get().model;
      if (!model || model.read_only) return false;
      const hadSocket = trainer.socketModel() === model.id;
      if (hadSocket) await Promise.race([trainer.detach(), wait(CLOSE_WAIT_MS * CLOSE_TRIES)]);
      try {
        for (let tries = 0; ; tries++) {
          try {
            await api.deleteModel(model.id);
            break;
          } catch (err) {
            // The server lets go of a socket we just closed a moment later.
            if (!(hadSocket && err instanceof ApiError && err.status === 409 && tries < CLOSE_TRIES)) throw err;
            await wait(CLOSE_WAIT_MS);
          }
        }
      } catch (err) {
        actions.fail(err);
        return false;
      }
      try {
        const r = await api.listModels();
        const models = Array.isArray(r) ? r : r.models || [];
        store.set({ models });
        const boot = store.get().boot;
        const next = models.find((/** @type {any} */ m) => m.id === boot.default_model_id) || models[0];
        if (next) await actions.loadModel(next.id);
        else store.set({ model: null, forward: null, stats: null, selection: null });
        actions.notify('info', `Deleted “${model.name}”.`);
        return true;
      } catch (err) {
        actions.fail(err);
        return false;
      }
    },
  };
}

/** @typedef {ReturnType<typeof createManager>} Manager */
