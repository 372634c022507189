// @ts-check
/**
 * The only module that talks to the server: REST v1 over fetch and the live-training WebSocket.
 * Every error becomes an ApiError carrying the server's `detail` text. A page opened by a share link
 * sends its token (`X-Share-Token`) on every request; links.js builds the URLs the browser loads itself.
 */
import { decodeExplanation, decodeForward, inputBody } from './answers.js';
import { createLinks } from './links.js';
import { BINARY_MEDIA, decodeBinary, decodeTensor } from './tensor.js';

/** The live socket's close code when its model is deleted (`DELETE /api/v1/models/{id}`; reason "model deleted"). */
export const CLOSE_MODEL_DELETED = 4410;

/**
 * @typedef {import('./state.js').InputRef} InputRef
 * @typedef {import('./state.js').Forward} Forward
 */

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status (0 when the server could not be reached)
   * @param {string} detail the server's message
   * @param {any} [body] the whole error body (e.g. a spec error's `layer_index`)
   */
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body;
    /** true for a request abandoned because its model was deleted: nobody needs to hear of it */
    this.abandoned = false;
  }
}

/**
 * Turn any FastAPI error body into one line of text.
 * @param {any} body
 * @param {number} status
 */
function detailText(body, status) {
  const d = body && body.detail;
  if (typeof d === 'string') return d;
  if (Array.isArray(d)) return d.map((e) => (e && e.msg ? `${(e.loc || []).slice(1).join('.')}: ${e.msg}` : String(e))).join('; ');
  return `the server answered ${status}`;
}

/**
 * Create the API client.
 * @param {string} base e.g. "/api/v1"
 * @param {string} [share] the share-link token the page was opened with (route.js)
 */
export function createApi(base, share = '') {
  /** Requests in flight per model id, so deleting a model can abandon them before the server answers 404. */
  /** @type {Map<string, Set<AbortController>>} */
  const inflight = new Map();
  /** Models this page deleted: nothing more is asked about them. */
  /** @type {Set<string>} */
  const deleted = new Set();
  const gone = () => Object.assign(new ApiError(404, 'This model has been deleted.'), { abandoned: true });
  /** The model a path is about, or null. @param {string} path */
  const modelOf = (path) => {
    const m = /^\/models\/([^/?]+)/.exec(path);
    return m && m[1] !== 'import' ? decodeURIComponent(m[1]) : null;
  };

  /**
   * fetch, tracked under the model the path names, and abandoned if the page deletes that model.
   * @param {string} path @param {RequestInit} init
   */
  async function send(path, init) {
    const mid = init.method === 'DELETE' ? null : modelOf(path);
    if (mid !== null && deleted.has(mid)) throw gone();
    const ctl = new AbortController();
    const set = mid === null ? null : inflight.get(mid) || new Set();
    if (mid !== null && set) inflight.set(mid, set.add(ctl));
    try {
      const headers = share ? { ...init.headers, 'X-Share-Token': share } : init.headers;
      return await fetch(base + path, { ...init, headers, signal: ctl.signal });
    } catch {
      if (ctl.signal.aborted) throw gone();
      throw new ApiError(0, 'The server cannot be reached. Is it still running?');
    } finally {
      set?.delete(ctl);
      if (mid !== null && set?.size === 0) inflight.delete(mid);
    }
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{json?: any, form?: FormData, binary?: boolean}} [opts] `binary`: ask for the binary tensor form
   *   (a route that has it answers so, with its tensors already decoded; decodeTensor passes them through)
   */
  async function request(method, path, opts = {}) {
    /** @type {RequestInit} */
    const init = { method, headers: { Accept: opts.binary ? `${BINARY_MEDIA}, application/json;q=0.9` : 'application/json' } };
    if (opts.json !== undefined) {
      init.body = JSON.stringify(opts.json);
      init.headers = { ...init.headers, 'Content-Type': 'application/json' };
    } else if (opts.form) init.body = opts.form;
    const res = await send(path, init);
    const binary = res.ok && (res.headers.get('Content-Type') || '').startsWith(BINARY_MEDIA);
    const body = res.status === 204 ? null : binary ? decodeBinary(await res.arrayBuffer()) : await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, detailText(body, res.status), body);
    return body;
  }

  const enc = encodeURIComponent;
  const model = (/** @type {string} */ id) => `/models/${enc(id)}`;

  return {
    ...createLinks(base, share),
    listModels: () => request('GET', '/models'),
    getModel: (/** @type {string} */ id) => request('GET', model(id)),
    /** @param {Record<string, any>} body {"preset"|"spec"|"from", "dataset"?, "name"?, ...} */
    createModel: (body) => request('POST', '/models', { json: body }),
    /** @param {string} id @param {Record<string, any>} patch */
    patchModel: (id, patch) => request('PATCH', model(id), { json: patch }),
    /**
     * Delete a model. Requests about it still in flight are abandoned first (they would meet the
     * deletion as 404s), and nothing more is asked about it unless the deletion is refused.
     * @param {string} id
     */
    async deleteModel(id) {
      deleted.add(id);
      for (const ctl of inflight.get(id) || []) ctl.abort();
      try {
        return await request('DELETE', model(id));
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) deleted.delete(id);
        throw err;
      }
    },
    getDataset: (/** @type {string} */ name) => request('GET', `/datasets/${enc(name)}`),
    listDatasets: () => request('GET', '/datasets'),
    colormaps: () => request('GET', '/colormaps'),
    /** @param {Blob} file */
    uploadImage(file) {
      const form = new FormData();
      form.append('file', file, file instanceof File ? file.name : 'drawing.png');
      return request('POST', '/images', { form });
    },
    /** @param {Blob} file a .zip of class folders @param {Record<string, string>} fields name, channels, height, width */
    uploadDataset(file, fields) {
      const form = new FormData();
      form.append('file', file, file instanceof File ? file.name : 'dataset.zip');
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      return request('POST', '/datasets', { form });
    },
    /** @param {Blob} file a .npz checkpoint */
    importCheckpoint(file) {
      const form = new FormData();
      form.append('file', file, file instanceof File ? file.name : 'model.npz');
      return request('POST', '/models/import', { form });
    },
    /** @param {string} id @param {InputRef} ref @returns {Promise<Forward>} */
    async forward(id, ref) {
      return decodeForward(await request('POST', `${model(id)}/forward`, { json: inputBody(ref), binary: true }));
    },
    /** One image file (a webcam frame) through the model, not stored. @param {string} id @param {Blob} file @returns {Promise<Forward>} */
    async forwardFile(id, file) {
      const form = new FormData();
      form.append('file', file, 'frame.jpg');
      return decodeForward(await request('POST', `${model(id)}/forward`, { form, binary: true }));
    },
    /** @param {string} id @param {number} layer */
    async filters(id, layer) {
      const r = await request('GET', `${model(id)}/layers/${layer}/filters`);
      const bias = r.bias && typeof r.bias === 'object' && !Array.isArray(r.bias) ? decodeTensor(r.bias).data : r.bias ? Float32Array.from(r.bias) : null;
      return { ...decodeTensor(r), bias };
    },
    /** @param {string} id @param {Record<string, any>} body */
    train: (id, body) => request('POST', `${model(id)}/train`, { json: body }),
    /** @param {string} id @param {string} split */
    evaluate: (id, split) => request('POST', `${model(id)}/evaluate`, { json: { split } }),
    history: (/** @type {string} */ id) => request('GET', `${model(id)}/history`),
    /** The history with each step's per-layer figures. @param {string} id */
    layerHistory: (id) => request('GET', `${model(id)}/history?layers=true`),
    /** Inside the learning step for one image and label. @param {string} id @param {InputRef} ref @param {number} label */
    gradients: (id, ref, label) => request('POST', `${model(id)}/gradients?dtype=float16`, { json: { ...inputBody(ref), label } }),
    /** A new read-only share link's token (workspaces on; the previous link stops working). @param {string} id */
    shareModel: (id) => request('POST', `${model(id)}/share`),
    /** @param {string} id @param {Record<string, any>} [body] */
    reset: (id, body = {}) => request('POST', `${model(id)}/reset`, { json: body }),
    /** @param {any} spec */
    validateSpec: (spec) => request('POST', '/specs/validate', { json: { spec } }),
    /** @param {string} id @param {InputRef} ref @param {Record<string, any>} params method, target, layer, patch, stride, checks, ... */
    async explain(id, ref, params) {
      return decodeExplanation(await request('POST', `${model(id)}/explain`, { json: { ...inputBody(ref), ...params }, binary: true }));
    },
    /**
     * The same explanation streamed as NDJSON: `onProgress({done, total, pass})` while occlusion runs.
     * @param {string} id @param {InputRef} ref @param {Record<string, any>} params
     * @param {(p: {done: number, total: number, pass: number}) => void} onProgress
     */
    async explainStream(id, ref, params, onProgress) {
      const res = await send(`${model(id)}/explain/stream`, { method: 'POST', body: JSON.stringify({ ...inputBody(ref), ...params }),
        headers: { Accept: 'application/x-ndjson', 'Content-Type': 'application/json' } });
      if (!res.ok || !res.body) {
        const body = await res.json().catch(() => null);
        throw new ApiError(res.status, detailText(body, res.status), body);
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new ApiError(0, 'The explanation stopped before it was finished.');
        buf += value;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line) continue;
          const msg = JSON.parse(line);
          if (msg.result) return decodeExplanation(msg.result);
          if (msg.error) throw new ApiError(422, msg.error);
          onProgress(msg);
        }
      }
    },
    /** What a unit looks for (GET: status, progress or the top 9). @param {string} id @param {number} layer @param {number} channel */
    unitTop: (id, layer, channel) => request('GET', `${model(id)}/layers/${layer}/channels/${channel}/top`),
    /** Search the dataset for the unit's top 9. @param {string} id @param {number} layer @param {number} channel */
    findUnitTop: (id, layer, channel) => request('POST', `${model(id)}/layers/${layer}/channels/${channel}/top`),
    /** @param {string} id @param {number} layer @param {number} channel */
    dreamStatus: (id, layer, channel) => request('GET', `${model(id)}/layers/${layer}/channels/${channel}/maximize`),
    /** Activation maximization. @param {string} id @param {number} layer @param {number} channel @param {{seed?: number, steps?: number}} body */
    dream: (id, layer, channel, body) => request('POST', `${model(id)}/layers/${layer}/channels/${channel}/maximize`, { json: body }),
    /**
     * Learn mode: one filter of a conv layer at an output row (or one position): windows, products, sums, activations.
     * @param {string} id @param {InputRef} ref @param {{layer: number, filter: number, row: number, col?: number}} q
     */
    learnConv: (id, ref, q) => request('POST', `${model(id)}/learn/conv`, { json: { ...inputBody(ref), ...q } }),
    /**
     * Learn mode: dropout in training mode on one image's maps (a seeded mask, the scaled and the evaluation output).
     * @param {string} id @param {InputRef} ref @param {{layer: number, rate: number, seed: number}} q
     */
    async learnDropout(id, ref, q) {
      const r = await request('POST', `${model(id)}/learn/dropout`, { json: { ...inputBody(ref), ...q } });
      return { ...r, before: decodeTensor(r.before), keep: decodeTensor(r.keep), train: decodeTensor(r.train), evaluation: decodeTensor(r.evaluation) };
    },
    /** Inside the learning step, in float32 (the update arithmetic needs every digit). @param {string} id @param {InputRef} ref @param {number} label */
    gradients32: (id, ref, label) => request('POST', `${model(id)}/gradients`, { json: { ...inputBody(ref), label } }),
    /** Learn mode: in-memory copies trained side by side per learning rate. @param {string} id @param {{steps: number, rates?: number[]}} q */
    learnLr: (id, q) => request('POST', `${model(id)}/learn/lr-experiment`, { json: q }),
    /** Learn mode: Grad-CAM and the box around its hot region. @param {string} id @param {InputRef} ref @param {{threshold: number, target?: number}} q */
    async learnLocalize(id, ref, q) {
      const r = await request('POST', `${model(id)}/learn/localize`, { json: { ...inputBody(ref), ...q } });
      return { ...r, map: decodeTensor(r.map) };
    },
    /** @param {string} id @param {number} count */
    async trainBatch(id, count) {
      const r = await request('GET', `${model(id)}/train/batch?count=${count}&dtype=float16`);
      return { ...r, images: decodeTensor(r.images) };
    },

    /**
     * Open the live-training socket. Messages sent before it opens are queued. Activations arrive as
     * binary frames (`?format=binary`), handed on decoded like every JSON message.
     * @param {string} id
     * @param {{onMessage: (msg: any) => void, onClose: (ev: CloseEvent) => void}} handlers
     */
    live(id, handlers) {
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      const ws = new WebSocket(`${scheme}://${location.host}${base}${model(id)}/live?format=binary`);
      ws.binaryType = 'arraybuffer';
      /** @type {string[]} */
      const queue = [];
      ws.addEventListener('open', () => {
        for (const m of queue.splice(0)) ws.send(m);
      });
      ws.addEventListener('message', (ev) => {
        let msg;
        try {
          msg = ev.data instanceof ArrayBuffer ? decodeBinary(ev.data) : JSON.parse(ev.data);
        } catch {
          return;
        }
        handlers.onMessage(msg);
      });
      ws.addEventListener('close', (ev) => {
        if (ev.code === CLOSE_MODEL_DELETED) { // deleted elsewhere: abandon what is still asked about it
          deleted.add(id);
          for (const ctl of inflight.get(id) || []) ctl.abort();
        }
        handlers.onClose(ev);
      });
      return {
        /** @param {Record<string, any>} msg */
        send(msg) {
          const text = JSON.stringify(msg);
          if (ws.readyState === WebSocket.OPEN) ws.send(text);
          else if (ws.readyState === WebSocket.CONNECTING) queue.push(text);
        },
        close: () => ws.close(),
        get open() {
          return ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING;
        },
      };
    },
  };
}

/** @typedef {ReturnType<typeof createApi>} Api */
