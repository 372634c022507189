// @ts-check
/**
 * The Learn mode's frame: a panel of steps (one per idea of a beginner's guide to CNNs), each on the
 * live model and image. A list of steps, Back/Next buttons, Left/Right and PageUp/PageDown keys, and a
 * deep link in the URL hash (see hash.js) that opens one step on one model and image.
 *
 * A step is a module exporting `{id, title, mount(root, ctx), render(view, state, changed)}`, listed
 * in steps.js. Its ctx is the page's ctx plus `link`: `link.params` (the step's options from the hash)
 * and `link.set(patch)` (write options back, without a new history entry).
 */
import { h, setText } from '../../dom.js';
import { formatHash, parseHash, sameInput } from './hash.js';
import { STEPS } from './steps.js';

const FORM = new Set(['INPUT', 'SELECT', 'TEXTAREA']);

/**
 * @param {HTMLElement} root the Learn container (hidden until a step is opened)
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const toggle = document.querySelector('[data-learn-toggle]');
  const title = h('h2', { class: 'lm-title', dataset: { learn: 'title' }, tabindex: '-1' });
  const count = h('span', { class: 'lm-count', dataset: { learn: 'count' } });
  const prev = h('button', { type: 'button', dataset: { learn: 'prev' }, text: '← Back', on: { click: () => move(-1) } });
  const next = h('button', { type: 'button', dataset: { learn: 'next' }, text: 'Next →', on: { click: () => move(1) } });
  const close = h('button', { type: 'button', class: 'lm-close', dataset: { learn: 'close' }, text: 'Close', on: { click: () => open(null) } });
  const items = STEPS.map((st, i) => h('button', { type: 'button', class: 'lm-step', dataset: { learnStep: st.id },
    text: `${i + 1}. ${st.title}`, on: { click: () => open(st.id) } }));
  const body = h('div', { class: 'lm-body' });
  root.append(
    h('div', { class: 'lm-head' }, count, title, h('div', { class: 'lm-nav' }, prev, next, close)),
    h('div', { class: 'lm-main' }, h('nav', { class: 'lm-list', 'aria-label': 'Learn steps' }, h('ol', {}, items.map((b) => h('li', {}, b)))), body),
  );
  root.hidden = true;
  root.setAttribute('aria-live', 'polite');

  /** @type {Map<string, {el: HTMLElement, view: any}>} */
  const mountedSteps = new Map();
  const view = {
    root, title, count, prev, next, items, body, mountedSteps, ctx,
    link: parseHash(location.hash),
    /** the link names a model or input the page has not loaded yet */
    pending: false,
    requested: false,
    /** @type {string | null} */
    shown: null,
  };

  const link = {
    get params() {
      return view.link.params;
    },
    /** @param {Record<string, string | number | null>} patch */
    set(patch) {
      const params = { ...view.link.params };
      for (const [k, v] of Object.entries(patch)) if (v === null) delete params[k]; else params[k] = String(v);
      view.link = { ...view.link, params };
      history.replaceState(null, '', formatHash(view.link));
    },
  };
  const stepCtx = { ...ctx, link };

  /** @param {string | null} id a step id, or null to close the mode */
  function open(id) {
    const state = ctx.store.get();
    const changed = id !== view.link.step;
    view.link = id ? { step: id, model: state.model?.id ?? view.link.model, input: state.input ?? view.link.input,
      params: changed ? {} : view.link.params } : { step: null, model: null, input: null, params: {} };
    const hash = id ? formatHash(view.link) : '';
    if (id) location.hash = hash;
    else history.pushState(null, '', location.pathname + location.search);
    apply();
  }

  /** @param {number} by */
  function move(by) {
    const i = STEPS.findIndex((st) => st.id === view.shown);
    const j = Math.max(0, Math.min(STEPS.length - 1, i + by));
    if (j !== i) open(STEPS[j].id);
  }

  function apply() {
    view.link = parseHash(location.hash);
    const step = view.link.step ? STEPS.find((st) => st.id === view.link.step) || STEPS[0] : null;
    root.hidden = !step;
    toggle?.setAttribute('aria-expanded', String(Boolean(step)));
    if (!step) {
      view.shown = null;
      return;
    }
    const state = ctx.store.get();
    const { model, input } = view.link;
    view.pending = Boolean((model && state.model?.id !== model) || (input && !sameInput(state.input, input)));
    view.requested = false;
    for (const [id, m] of mountedSteps) m.el.hidden = id !== step.id;
    if (!mountedSteps.has(step.id)) {
      const el = h('section', { class: 'lm-step-body', dataset: { learnBody: step.id } });
      body.append(el);
      mountedSteps.set(step.id, { el, view: step.mount(el, stepCtx) });
    }
    const i = STEPS.indexOf(step);
    setText(title, step.title);
    setText(count, `Step ${i + 1} of ${STEPS.length}`);
    prev.disabled = i === 0;
    next.disabled = i === STEPS.length - 1;
    for (const b of items) b.setAttribute('aria-current', String(b.dataset.learnStep === step.id));
    view.shown = step.id;
    renderStep(view, state, new Set(Object.keys(state)));
  }

  toggle?.addEventListener('click', () => open(view.shown ? null : STEPS[0].id));
  window.addEventListener('hashchange', apply);
  root.addEventListener('keydown', (ev) => {
    const target = /** @type {HTMLElement} */ (ev.target);
    if (FORM.has(target.tagName) || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const by = { ArrowLeft: -1, PageUp: -1, ArrowRight: 1, PageDown: 1 }[ev.key];
    if (!by) return;
    ev.preventDefault();
    move(by);
  });
  apply();
  return view;
}

/**
 * Render the shown step, unless the deep link's model or image is still being loaded.
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
function renderStep(view, state, changed) {
  if (!view.shown || view.pending) return;
  const m = view.mountedSteps.get(view.shown);
  const step = STEPS.find((st) => st.id === view.shown);
  if (m && step) step.render(m.view, state, changed);
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!view.shown) return;
  const { link } = view;
  if (view.pending) {
    const modelOk = !link.model || state.model?.id === link.model;
    const inputOk = !link.input || sameInput(state.input, link.input);
    if (modelOk && inputOk) {
      view.pending = false;
      renderStep(view, state, new Set(Object.keys(state)));
    } else if (!state.loading && state.model && !view.requested) {
      view.requested = true;
      const { actions } = view.ctx;
      const done = modelOk ? actions.runInput(link.input) : actions.loadModel(link.model, link.input ?? undefined);
      Promise.resolve(done).catch((/** @type {any} */ err) => actions.fail(err)).finally(() => {
        if (!view.pending) return;
        view.pending = false;
        renderStep(view, view.ctx.store.get(), new Set(Object.keys(view.ctx.store.get())));
      });
    }
    return;
  }
  if ((changed.has('model') || changed.has('input')) && state.model && state.input
      && (state.model.id !== link.model || !sameInput(state.input, link.input))) {
    view.link = { ...link, model: state.model.id, input: state.input };
    history.replaceState(null, '', formatHash(view.link));
  }
  renderStep(view, state, changed);
}
