// @ts-check
/**
 * Managing the current model: freeze layers for transfer learning, delete it. Results go to the
 * store from the server's answer; a refusal (e.g. a shipped model cannot be deleted) shows the
 * server's message.
 */

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 * @param {import('./actions.js').Actions} actions
 * @param {import('./training.js').Trainer} trainer
 */
export function createManager(store, api, actions, trainer) {
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
     * Delete the current model, then show the shipped default model, or the first one left. The
     * server ends a live session on the model itself (even one still training), so the answer is
     * at once: this page only stops listening to its socket first, without waiting for it to close.
     * @returns {Promise<boolean>}
     */
    async deleteModel() {
      const model = store.get().model;
      if (!model || model.read_only) return false;
      if (trainer.socketModel() === model.id) trainer.detach();
      /** @param {boolean} busy while true, nothing asks the server about the model (its next mini-batch, say) */
      const setBusy = (busy) => store.set({ training: { ...store.get().training, busy } });
      setBusy(true);
      try {
        await api.deleteModel(model.id);
        if (!(await actions.showAnotherModel())) return false;
        actions.notify('info', `Deleted “${model.name}”.`);
        return true;
      } catch (err) {
        actions.fail(err);
        return false;
      } finally {
        setBusy(false);
      }
    },
  };
}

/** @typedef {ReturnType<typeof createManager>} Manager */
