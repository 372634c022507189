// @ts-check
/**
 * Wiring only: read the bootstrap, create the store, API client and actions, mount every view and
 * render them on each batched change.
 *
 * Two stages, so the overview is drawn sooner: the views the first drawing needs are imported here
 * (a page load fetched 74 modules before it could ask for the model; now about half as many). The
 * rest (`LATER`: hidden panels, the input panel with its explanations, the Learn mode, ...) are
 * imported with `import()` once the first model and input are loaded (`router.start()` settled),
 * and mounted together, in `VIEWS` order; a click on the Learn toggle or a Learn link in the
 * address loads them at once.
 */
import { createActions } from './actions.js';
import { createApi } from './api.js';
import { createEditor } from './editor.js';
import { roveGrids } from './gridkeys.js';
import { createLibrary } from './library.js';
import { createManager } from './manage.js';
import { createRouter, parseRoute } from './route.js';
import { createStore, initialState } from './state.js';
import { createTrainer } from './training.js';
import * as ask from './views/ask.js';
import * as colour from './views/colour.js';
import * as messages from './views/messages.js';
import * as modelbar from './views/modelbar.js';
import * as overview from './views/overview.js';
import * as tabs from './views/tabs.js';
import * as transport from './views/transport.js';

const boot = JSON.parse(document.getElementById('bootstrap')?.textContent || '{}');
const store = createStore(initialState(boot));
const api = createApi(boot.api_base || '/api/v1', parseRoute(location.search).share); // a share link's token
const actions = createActions(store, api);
const trainer = createTrainer(store, api, actions);
const editor = createEditor(store, api, actions);
const library = createLibrary(store, api, actions);
const manager = createManager(store, api, actions, trainer);
const router = createRouter(store, actions);
const ctx = { store, api, actions, trainer, editor, library, manager, boot };

/** @typedef {{mount: (root: HTMLElement, ctx: any) => any, render: (view: any, state: any, changed: Set<string>) => void}} View */

/**
 * Every view in render order: [root selector, the module, or a loader for a view of the second stage].
 * @type {Array<[string, View | (() => Promise<View>)]>}
 */
const VIEWS = [
  ['[data-view="messages"]', messages],
  ['[data-view="messages"]', ask], // a question with its answers, in the same strip
  ['[data-view="modelbar"]', modelbar],
  ['[data-view="transport"]', transport],
  ['[data-view="colour"]', colour],
  ['[data-view="dock"]', () => import('./views/dock.js')],
  ['[data-view="overview"]', overview],
  ['[data-view="input"]', () => import('./views/input.js')],
  ['[data-view="input"]', () => import('./views/webcam.js')], // its button joins the input panel's
  ['[data-tabs]', tabs],
  ['[data-view="detail"]', () => import('./views/detail.js')],
  ['[data-view="filters"]', () => import('./views/filters.js')],
  ['[data-view="models"]', () => import('./views/models.js')],
  ['[data-view="training"]', () => import('./views/training.js')],
  ['[data-view="architecture"]', () => import('./views/architecture.js')],
  ['[data-view="evaluation"]', () => import('./views/evaluation.js')],
  ['[data-view="learn"]', () => import('./views/learn/panel.js')],
];

/** @type {Array<{order: number, mod: View, view: any}>} mounted views, in `VIEWS` order */
const mounted = [];

/**
 * Mount one view (when its root is on the page) where `VIEWS` puts it among the mounted ones.
 * @param {number} order its index in `VIEWS`
 * @param {View} mod
 * @returns {{order: number, mod: View, view: any} | null} the mounted view
 */
function mountView(order, mod) {
  const root = document.querySelector(VIEWS[order][0]);
  if (!(root instanceof HTMLElement)) return null;
  const entry = { order, mod, view: mod.mount(root, ctx) };
  const at = mounted.findIndex((m) => m.order > order);
  mounted.splice(at < 0 ? mounted.length : at, 0, entry);
  return entry;
}

VIEWS.forEach(([, mod], order) => typeof mod !== 'function' && mountView(order, mod));
roveGrids(); // each grid of tiles is one Tab stop, arrow keys inside

const learnToggle = document.querySelector('[data-learn-toggle]');
let learnClicked = false; // the Learn toggle was pressed before its view was there
/** @type {Promise<void> | null} */
let later = null;

/** Import the second stage's views, then mount and render them together (once). */
function mountLater() {
  later ??= Promise.all(VIEWS.map(([, mod]) => (typeof mod === 'function' ? mod() : null))).then((mods) => {
    const all = new Set(Object.keys(store.get()));
    const fresh = mods.flatMap((mod, order) => (mod ? [mountView(order, mod)] : [])); // all mounted, then all rendered
    for (const entry of fresh) entry?.mod.render(entry.view, store.get(), all);
    roveGrids();
    document.documentElement.dataset.views = 'all';
    if (learnClicked) /** @type {HTMLElement} */ (learnToggle).click(); // the Learn view listens now
  }, (err) => {
    console.error('loading the page\'s views failed', err);
    actions.notify('error', 'Part of the page could not be loaded; reload the page to try again.');
  });
  return later;
}

learnToggle?.addEventListener('click', () => {
  if (document.documentElement.dataset.views === 'all') return;
  learnClicked = true;
  mountLater();
});
if (/(^#|&)learn=/.test(location.hash)) mountLater(); // a Learn link: its view is what was asked for
addEventListener('hashchange', () => /(^#|&)learn=/.test(location.hash) && mountLater());

let lastModel = /** @type {string | null} */ (null);
let lastInput = /** @type {any} */ (null);
store.subscribe((state, changed) => {
  for (const { mod, view } of mounted) {
    try {
      mod.render(view, state, changed);
    } catch (err) {
      console.error('render failed', err);
    }
  }
  const id = state.model?.id ?? null;
  if (id !== lastModel) {
    if (trainer.socketModel() && trainer.socketModel() !== id) trainer.detach();
    lastModel = id;
  }
  if (changed.has('input') && lastInput && state.input !== lastInput) trainer.repin();
  lastInput = state.input;
});

const all = new Set(Object.keys(store.get()));
for (const { mod, view } of mounted) mod.render(view, store.get(), all);
// opens the view in the address (actions.start picks the model), then follows it; the second stage
// follows the first model and input (or a second, if that takes long: a dataset being generated)
const started = router.start();
Promise.race([started, new Promise((resolve) => setTimeout(resolve, 1500))]).finally(mountLater);
Object.defineProperty(window, 'cnnvis', { value: { store, actions, trainer }, enumerable: false });
