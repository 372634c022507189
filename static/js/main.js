// @ts-check
/**
 * Wiring only: read the bootstrap, create the store, API client and actions, mount every view and
 * render them on each batched change.
 */
import { createActions } from './actions.js';
import { createApi } from './api.js';
import { createEditor } from './editor.js';
import { roveGrids } from './gridkeys.js';
import { createLibrary } from './library.js';
import { createManager } from './manage.js';
import { createRouter } from './route.js';
import { createStore, initialState } from './state.js';
import { createTrainer } from './training.js';
import * as architecture from './views/architecture.js';
import * as ask from './views/ask.js';
import * as colour from './views/colour.js';
import * as detail from './views/detail.js';
import * as dock from './views/dock.js';
import * as evaluation from './views/evaluation.js';
import * as filters from './views/filters.js';
import * as input from './views/input.js';
import * as learn from './views/learn/panel.js';
import * as messages from './views/messages.js';
import * as modelbar from './views/modelbar.js';
import * as models from './views/models.js';
import * as overview from './views/overview.js';
import * as tabs from './views/tabs.js';
import * as training from './views/training.js';
import * as transport from './views/transport.js';
import * as webcam from './views/webcam.js';

const boot = JSON.parse(document.getElementById('bootstrap')?.textContent || '{}');
const store = createStore(initialState(boot));
const api = createApi(boot.api_base || '/api/v1');
const actions = createActions(store, api);
const trainer = createTrainer(store, api, actions);
const editor = createEditor(store, api, actions);
const library = createLibrary(store, api, actions);
const manager = createManager(store, api, actions, trainer);
const router = createRouter(store, actions);
const ctx = { store, api, actions, trainer, editor, library, manager, boot };

/** @type {Array<[string, {mount: (root: HTMLElement, ctx: any) => any, render: (view: any, state: any, changed: Set<string>) => void}]>} */
const VIEWS = [
  ['[data-view="messages"]', messages],
  ['[data-view="messages"]', ask], // a question with its answers, in the same strip
  ['[data-view="modelbar"]', modelbar],
  ['[data-view="transport"]', transport],
  ['[data-view="colour"]', colour],
  ['[data-view="dock"]', dock],
  ['[data-view="overview"]', overview],
  ['[data-view="input"]', input],
  ['[data-view="input"]', webcam], // its button joins the input panel's
  ['[data-tabs]', tabs],
  ['[data-view="detail"]', detail],
  ['[data-view="filters"]', filters],
  ['[data-view="models"]', models],
  ['[data-view="training"]', training],
  ['[data-view="architecture"]', architecture],
  ['[data-view="evaluation"]', evaluation],
  ['[data-view="learn"]', learn],
];

const mounted = VIEWS.flatMap(([selector, mod]) => {
  const root = document.querySelector(selector);
  return root instanceof HTMLElement ? [{ mod, view: mod.mount(root, ctx) }] : [];
});
roveGrids(); // each grid of tiles is one Tab stop, arrow keys inside

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
router.start(); // opens the view in the address (actions.start picks the model), then follows it
Object.defineProperty(window, 'cnnvis', { value: { store, actions, trainer }, enumerable: false });
