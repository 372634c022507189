// @ts-check
/**
 * The model and dataset library: import a dataset (.zip of class folders), import a checkpoint
 * (.npz) as a new model. Results go to the store; errors show the server's message.
 */

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 * @param {import('./actions.js').Actions} actions
 */
export function createLibrary(store, api, actions) {
  const limit = () => Number(store.get().boot.limits?.max_upload_bytes) || Infinity;

  /**
   * A file the server would refuse for its size, said before sending it.
   * @param {Blob} file
   * @param {number} max
   */
  function tooBig(file, max) {
    if (file.size <= max) return false;
    actions.notify('error', `This file is ${(file.size / 1048576).toFixed(1)} MB; the server takes at most ${(max / 1048576).toFixed(0)} MB.`);
    return true;
  }

  return {
    /**
     * @param {File} file a .zip of class folders
     * @param {{name: string, channels: number, height: number, width: number}} opts
     * @returns {Promise<boolean>}
     */
    async uploadDataset(file, opts) {
      try {
        const ds = await api.uploadDataset(file, Object.fromEntries(Object.entries(opts).map(([k, v]) => [k, String(v)])));
        const list = await api.listDatasets();
        store.set({ datasets: Array.isArray(list) ? list : list.datasets || [] });
        const skipped = ds.skipped?.length ? ` (${ds.skipped.length} files skipped, e.g. ${ds.skipped[0].file}: ${ds.skipped[0].reason})` : '';
        const c = ds.chosen; // the shape used, and why (taken from the images unless given)
        const shape = c ? `, ${c.channels === 1 ? 'grey' : 'RGB'} ${c.height}×${c.width} (${c.why})` : '';
        actions.notify('info', `Dataset “${ds.name}” is ready: ${ds.classes?.length ?? '?'} classes${shape}${skipped}.`);
        return true;
      } catch (err) {
        actions.fail(err);
        return false;
      }
    },

    /** @param {File} file a .npz checkpoint */
    async importCheckpoint(file) {
      try {
        const m = await api.importCheckpoint(file);
        await actions.loadModel(m.id);
        actions.refreshModels();
        actions.notify('info', `Imported “${m.name}”.`);
      } catch (err) {
        actions.fail(err);
      }
    },

    /** @param {Blob} file an image the user picked */
    imageTooBig: (file) => tooBig(file, limit()),
  };
}

/** @typedef {ReturnType<typeof createLibrary>} Library */
