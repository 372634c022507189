// @ts-check
/**
 * The view in the address bar, so reload, back/forward and a pasted link reopen what was on screen:
 *
 *   ?model=tiny-vgg-shapes&input=sample:test:3&layer=4&channel=2&tab=filters&colour=per-layer
 *
 * `input` is `sample:{split}:{index}` or `image:{id}` (an uploaded image); `colour` is the scale mode
 * (per-map, per-layer, global) and `cmap` the colour map when it is not the automatic one. `share` is
 * a share link's token (the model opens read-only; api.js sends it with every request): every address
 * written keeps it while the address has it.
 *
 * History: changing the model, the input or the open tab pushes an entry (Back returns to it);
 * selecting another map (layer, channel) or changing the colours replaces the current entry, so
 * clicking through maps does not bury the previous model or image under dozens of Back presses.
 * A link to a model or image that is gone says so and shows the default model / its first sample.
 */
import { firstSample } from './actions.js';

/** Scale modes as the address spells them and as the store does. */
const MODES = /** @type {const} */ ([['per-map', 'channel'], ['per-layer', 'layer'], ['global', 'global']]);
const ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const INT = /^(0|[1-9][0-9]{0,8})$/;
const SHARE = /^[A-Za-z0-9_-]{1,200}$/;

/**
 * @typedef {{model?: string, input?: import('./state.js').InputRef, layer?: number, channel?: number,
 *   tab?: string, colour?: string, cmap?: string, share?: string}} Route
 */

/**
 * Read a view from a query string; anything malformed is left out (never an error).
 * @param {string} search `location.search`, with or without its `?`
 * @returns {Route}
 */
export function parseRoute(search) {
  const q = new URLSearchParams(search);
  /** @type {Route} */
  const r = {};
  const model = q.get('model');
  if (model && ID.test(model)) r.model = model;
  const input = (q.get('input') || '').split(':');
  if (input[0] === 'sample' && (input[1] === 'test' || input[1] === 'train') && INT.test(input[2] ?? '') && input.length === 3) {
    r.input = { kind: 'sample', split: input[1], index: Number(input[2]) };
  } else if (input[0] === 'image' && ID.test(input[1] ?? '') && input.length === 2) {
    r.input = { kind: 'image', id: input[1], name: 'linked image' };
  }
  for (const key of /** @type {const} */ (['layer', 'channel'])) {
    const v = q.get(key);
    if (v && INT.test(v)) r[key] = Number(v);
  }
  const tab = q.get('tab');
  if (tab && /^[a-z][a-z0-9-]{0,31}$/.test(tab)) r.tab = tab;
  const mode = MODES.find(([name]) => name === q.get('colour'));
  if (mode) r.colour = mode[1];
  const cmap = q.get('cmap');
  if (cmap && /^[a-z0-9_-]{1,32}$/.test(cmap)) r.cmap = cmap;
  const share = q.get('share');
  if (share && SHARE.test(share)) r.share = share;
  return r;
}

/**
 * The query string of what the page shows ('' before a model is loaded).
 * @param {import('./state.js').State} state
 * @param {string} [share] the share-link token to keep (last, after `cmap`)
 * @returns {string} e.g. "?model=a&input=sample:test:3&layer=0&channel=2&tab=detail&colour=per-layer"
 */
export function routeOf(state, share) {
  if (!state.model) return '';
  /** @type {string[][]} */
  const parts = [['model', state.model.id]];
  const i = state.input;
  if (i) parts.push(['input', i.kind === 'sample' ? `sample:${i.split}:${i.index}` : `image:${i.id}`]);
  if (state.selection) parts.push(['layer', String(state.selection.layer)], ['channel', String(state.selection.channel)]);
  parts.push(['tab', state.tab], ['colour', MODES.find(([, mode]) => mode === state.colour.mode)?.[0] ?? 'per-layer']);
  if (state.colour.cmap !== 'auto') parts.push(['cmap', state.colour.cmap]);
  if (share && SHARE.test(share)) parts.push(['share', share]);
  return `?${parts.map(([k, v]) => `${k}=${encodeURIComponent(v).replace(/%3A/g, ':')}`).join('&')}`;
}

/** The part of a query string whose change is worth a Back press: model, input, tab. */
function pushKey(/** @type {string} */ search) {
  const q = new URLSearchParams(search);
  return ['model', 'input', 'tab'].map((k) => q.get(k) ?? '').join('|');
}

/** @param {import('./state.js').InputRef | null | undefined} ref */
const inputKey = (ref) => (!ref ? '' : ref.kind === 'sample' ? `s:${ref.split}:${ref.index}` : `i:${ref.id}`);

/**
 * Keep the address and the view in step (see the module comment).
 * @param {import('./state.js').Store} store
 * @param {import('./actions.js').Actions} actions
 * @param {Window} [win]
 */
export function createRouter(store, actions, win = window) {
  /** While a view from the address is being opened, the store's changes are not written back. */
  let restoring = 0;
  /** The address has been written once (the first write replaces the entry the page was opened with). */
  let written = false;
  /** The address for `state`, keeping the share token the current address has. @param {import('./state.js').State} state */
  const addressOf = (state) => routeOf(state, parseRoute(win.location.search).share);

  /** Write the address for the current state: push a new entry or replace this one. */
  function write() {
    const state = store.get();
    const search = addressOf(state);
    if (restoring || !search || state.loading || search === win.location.search) return;
    const url = `${win.location.pathname}${search}${win.location.hash}`;
    if (written && pushKey(search) !== pushKey(win.location.search)) win.history.pushState(null, '', url);
    else win.history.replaceState(null, '', url);
    written = true;
  }

  /**
   * After the model is loaded (`linked`: the one the route names): its input (when the link's is
   * gone, say so and show the first sample), then the map, tab and colours the route names where
   * this model and page have them.
   * @param {Route} r
   * @param {boolean} linked
   */
  async function applyRest(r, linked) {
    let state = store.get();
    const model = state.model;
    if (linked && model && r.input && inputKey(r.input) !== inputKey(state.input) && !(await actions.runInput(r.input))) {
      const what = r.input.kind === 'image' ? 'The image in this link is no longer on the server' : `Sample ${r.input.split} #${r.input.index} is not in this dataset`;
      actions.notify('info', `${what}: showing the first sample instead.`);
      const first = firstSample(store.get().dataset);
      if (inputKey(first) !== inputKey(store.get().input)) await actions.runInput(first, false);
    }
    state = store.get();
    const shape = linked && r.layer !== undefined ? model?.layers[r.layer]?.output_shape : undefined;
    if (shape && (r.channel ?? 0) < shape[0]) actions.select(/** @type {number} */ (r.layer), r.channel ?? 0);
    const tabs = Array.from(win.document.querySelectorAll('[role="tab"][data-tab]'), (t) => /** @type {HTMLElement} */ (t).dataset.tab);
    if (r.tab && tabs.includes(r.tab)) actions.setTab(r.tab);
    /** @type {Partial<import('./scale.js').ColourSettings>} */
    const colour = {};
    if (r.colour && r.colour !== state.colour.mode) colour.mode = /** @type {any} */ (r.colour);
    if (r.cmap && r.cmap !== state.colour.cmap) colour.cmap = r.cmap;
    if (Object.keys(colour).length) actions.setColour(colour);
  }

  /**
   * Open the view a route names; the address then says what is actually shown (replacing the entry).
   * @param {Route} r
   * @param {boolean} first the page's first view (actions.start picks the model, or its fallback)
   */
  async function open(r, first) {
    restoring += 1;
    try {
      if (first) {
        await actions.start({ model: r.model, input: r.input });
      } else if (r.model && r.model !== store.get().model?.id) {
        await actions.loadModel(r.model, r.input).catch(() => undefined); // said below
      }
      const model = store.get().model;
      const linked = !r.model || model?.id === r.model;
      if (!linked) actions.notify('info', `The model “${r.model}” in this link is no longer on the server: showing “${model?.name ?? 'no model'}” instead.`);
      await applyRest(r, linked);
    } finally {
      restoring -= 1;
    }
    const search = addressOf(store.get());
    if (!restoring && search) {
      if (search !== win.location.search) win.history.replaceState(null, '', `${win.location.pathname}${search}${win.location.hash}`);
      written = true;
    }
  }

  return {
    /** Open the view in the address (the page's first load), then follow changes and Back/Forward. */
    start() {
      store.subscribe((_state, changed) => {
        if (['model', 'input', 'selection', 'tab', 'colour', 'loading'].some((k) => changed.has(k))) write();
      });
      win.addEventListener('popstate', () => open(parseRoute(win.location.search), false));
      return open(parseRoute(win.location.search), true);
    },
  };
}
