// @ts-check
/**
 * Training from the page: single and N-step training over REST, play/pause over the live
 * WebSocket (progress, evaluations and the pinned image's activations stream back; activations come
 * as binary frames that api.js decodes into typed arrays, so decodeForward passes them through), hyperparameter
 * changes (marked on the curves), reset. A ready-trained (read-only) model is copied first. When
 * the server closes the socket because the model was deleted, the page says so and does not reconnect.
 */
import { decodeForward, inputBody } from './answers.js';
import { CLOSE_MODEL_DELETED } from './api.js';

const EVAL_EVERY = 100;
const ACTIVATIONS_MS = 250;

/**
 * @param {import('./state.js').Store} store
 * @param {import('./api.js').Api} api
 * @param {import('./actions.js').Actions} actions
 */
export function createTrainer(store, api, actions) {
  /** @type {ReturnType<import('./api.js').Api['live']> | null} */
  let socket = null;
  /** @type {string | null} */
  let socketModel = null;
  /** @type {Record<string, any>} */
  let pendingHyper = {};
  /** A play command is on its way: an earlier "not playing" state must not stop the page. */
  let awaitingPlay = false;
  /** The pinned input the server knows, as JSON. */
  let pinned = '';
  let batchLoading = false;
  let batchTried = '';

  /** @param {Partial<import('./state.js').State['training']>} patch */
  function setTraining(patch) {
    store.set({ training: { ...store.get().training, ...patch } });
  }

  /** @param {import('./state.js').StepPoint[]} points */
  function appendSteps(points) {
    const h = store.get().history;
    store.set({ history: { ...h, steps: h.steps.concat(points) } });
  }

  /** @param {number} step @param {Record<string, any>} changes */
  function markEvent(step, changes) {
    const h = store.get().history;
    store.set({ history: { ...h, events: h.events.concat([{ step, changes }]) } });
  }

  /** The current model, copied first when it is a read-only ready model. */
  async function trainable() {
    const model = store.get().model;
    if (!model) return null;
    if (!model.read_only) return model;
    if (!(await actions.copyToTrain(model))) return null; // asks once, reuses an untrained copy
    const copy = store.get().model;
    if (copy && Object.keys(pendingHyper).length) {
      try {
        store.set({ model: await api.patchModel(copy.id, { training: pendingHyper }) });
      } catch (err) {
        actions.fail(err);
      }
    }
    pendingHyper = {};
    return store.get().model;
  }

  function closeSocket() {
    socket?.close();
    socket = null;
    socketModel = null;
  }

  /** After training stopped: the model's step and epoch, the full history, fresh maps. */
  async function sync() {
    const model = store.get().model;
    if (!model) return;
    try {
      const fresh = await api.getModel(model.id);
      if (store.get().model?.id === model.id) store.set({ model: fresh });
    } catch (err) {
      actions.fail(err);
    }
    await Promise.all([actions.loadHistory(model.id), actions.refresh()]);
  }

  /** @param {any} msg */
  function onMessage(msg) {
    const model = store.get().model;
    if (!model || model.id !== socketModel) return;
    if (msg.type === 'progress') {
      const extra = { learning_rate: msg.learning_rate, epoch: msg.epoch };
      const last = store.get().history.steps.at(-1)?.step ?? -1;
      const steps = Array.isArray(msg.steps) && msg.steps.length ? msg.steps : [{ step: msg.step, loss: msg.loss, accuracy: msg.accuracy }];
      appendSteps(steps.filter((/** @type {any} */ p) => p.step > last).map((/** @type {any} */ p) => ({ ...extra, ...p })));
      store.set({ model: { ...model, step: msg.step, epoch: msg.epoch ?? model.epoch } });
      if (store.get().training.playing) setTraining({ stepsPerSecond: msg.steps_per_second ?? 0 });
    } else if (msg.type === 'evaluation') {
      const h = store.get().history;
      const { type, ...ev } = msg;
      store.set({ history: { ...h, evaluations: h.evaluations.concat([ev]) }, evaluation: ev });
    } else if (msg.type === 'activations') {
      actions.showForward(decodeForward(msg));
    } else if (msg.type === 'state') {
      if (msg.playing) awaitingPlay = false;
      if (awaitingPlay) return;
      const was = store.get().training.playing;
      setTraining({ playing: !!msg.playing, live: true, ...(msg.playing ? {} : { stepsPerSecond: 0 }) });
      if (typeof msg.step === 'number') {
        store.set({ model: { ...model, step: msg.step, epoch: msg.epoch ?? model.epoch, training: msg.hyperparameters ?? model.training } });
      }
      if (was && !msg.playing) sync();
    } else if (msg.type === 'error') {
      awaitingPlay = false;
      actions.fail(msg.detail || 'training failed');
    }
  }

  /**
   * @param {CloseEvent} ev
   * @param {ReturnType<import('./api.js').Api['live']>} closed the socket that closed
   */
  function onClose(ev, closed) {
    if (closed !== socket) return; // one the page let go of already (another model, or a deletion from here)
    const was = store.get().training.playing;
    const deleted = ev.code === CLOSE_MODEL_DELETED;
    const name = store.get().model?.name ?? 'The model';
    socket = null;
    socketModel = null;
    // busy while another model loads: nothing asks the server about the deleted one meanwhile
    setTraining({ playing: false, live: false, stepsPerSecond: 0, ...(deleted ? { busy: true } : {}) });
    if (deleted) {
      // Deleted elsewhere (another page or client): say so and show another model; never reconnect.
      actions.showAnotherModel().then((shown) => {
        setTraining({ busy: false });
        if (shown) actions.notify('error', `“${name}” was deleted, so its live training stopped.`);
      });
      return;
    }
    if (ev.code !== 1000 && ev.code !== 1005 && ev.reason) actions.notify('error', ev.reason);
    if (was) sync();
  }

  /** @param {string} id */
  function openSocket(id) {
    if (socket && socketModel === id && socket.open) return socket;
    closeSocket();
    socketModel = id;
    const opened = api.live(id, { onMessage, onClose: (ev) => onClose(ev, opened) });
    socket = opened;
    return socket;
  }

  return {
    /**
     * Train `n` mini-batches, then refresh the maps: one over REST, more live (with progress and
     * maps as they go, and Pause to stop early).
     * @param {number} n
     */
    async step(n) {
      const t = store.get().training;
      if (t.playing || t.busy) return;
      if (n > 1) return this.play(n);
      const model = await trainable();
      if (!model) return;
      setTraining({ busy: true });
      const t0 = performance.now();
      try {
        const r = await api.train(model.id, { steps: n });
        const first = r.step - r.loss.length + 1;
        appendSteps(r.loss.map((/** @type {number} */ loss, /** @type {number} */ i) => ({
          step: first + i, loss, accuracy: r.accuracy[i], learning_rate: r.learning_rate,
        })));
        const secs = (performance.now() - t0) / 1000;
        setTraining({ stepsPerSecond: r.loss.length / Math.max(secs, 1e-3) });
        store.set({ model: { ...store.get().model, step: r.step, epoch: r.epoch ?? model.epoch } });
        await sync();
      } catch (err) {
        actions.fail(err);
      } finally {
        setTraining({ busy: false });
      }
    },

    /**
     * Start live training with the pinned (current) image: until paused, or for `steps` steps.
     * @param {number} [steps]
     */
    async play(steps) {
      const t = store.get().training;
      if (t.playing || t.busy) return;
      const model = await trainable();
      if (!model) return;
      const input = store.get().input;
      const ws = openSocket(model.id);
      setTraining({ playing: true });
      awaitingPlay = true;
      pinned = input ? JSON.stringify(inputBody(input)) : '';
      ws.send({
        action: steps ? 'step' : 'play', ...(steps ? { steps } : {}), eval_every: EVAL_EVERY, activations_every_ms: ACTIVATIONS_MS, dtype: 'float16',
        ...(input ? { pin: inputBody(input) } : {}),
      });
    },

    pause() {
      if (socket) socket.send({ action: 'pause' });
      setTraining(socket ? { stepsPerSecond: 0 } : { playing: false, stepsPerSecond: 0 });
    },

    /** Follow a new input while playing (the live maps show it). */
    repin() {
      const { input, training } = store.get();
      if (!socket || !training.playing || !input || JSON.stringify(inputBody(input)) === pinned) return;
      pinned = JSON.stringify(inputBody(input));
      socket.send({ action: 'state', pin: inputBody(input) });
    },

    /**
     * Change hyperparameters: live while playing, else on the model; each change marks the curves.
     * @param {Record<string, any>} changes
     */
    async setHyper(changes) {
      const { model, training } = store.get();
      if (!model) return;
      if (model.read_only) {
        pendingHyper = { ...pendingHyper, ...changes };
        store.set({ model: { ...model, training: { ...model.training, ...changes } } });
        return;
      }
      if (socket && training.playing) {
        socket.send({ action: 'state', ...changes });
        store.set({ model: { ...model, training: { ...model.training, ...changes } } });
        markEvent(model.step, changes);
        return;
      }
      try {
        const updated = await api.patchModel(model.id, { training: changes });
        if (store.get().model?.id !== model.id) return;
        store.set({ model: { ...store.get().model, training: updated.training } });
        markEvent(model.step, changes);
      } catch (err) {
        actions.fail(err);
        store.set({ model: { ...store.get().model } });
      }
    },

    /** New random weights: the curves start again. */
    async reset() {
      const model = store.get().model;
      if (!model || model.read_only) return;
      if (store.get().training.playing) this.pause();
      setTraining({ stepsPerSecond: 0 });
      try {
        await api.reset(model.id);
        store.set({ evaluation: null });
        await actions.loadModel(model.id, store.get().input ?? undefined);
        actions.notify('info', 'The weights were reset to new random values.');
      } catch (err) {
        actions.fail(err);
      }
    },

    /** Fetch the next mini-batch the trainer will use (trainable models only). */
    async loadBatch() {
      const model = store.get().model;
      const key = model ? `${model.id}:${model.step}:${!!model.training?.augment}` : ''; // augmenting changes the batch
      if (!model || model.read_only || batchLoading || batchTried === key) return;
      batchLoading = true;
      batchTried = key;
      try {
        const r = await api.trainBatch(model.id, 16);
        if (store.get().model?.id === model.id) store.set({ batch: r });
      } catch (err) {
        actions.fail(err);
      } finally {
        batchLoading = false;
      }
    },

    /** Close the socket and stop listening to it (when the page switches model, or deletes this one). */
    detach() {
      closeSocket();
      setTraining({ playing: false, live: false, stepsPerSecond: 0 });
    },

    /** @returns {string | null} */
    socketModel: () => socketModel,
  };
}

/** @typedef {ReturnType<typeof createTrainer>} Trainer */
