// @ts-check
/**
 * The dock's tab list (WAI-ARIA tabs: arrow keys move between tabs, Home/End jump).
 */

/**
 * @param {HTMLElement} root the element with role="tablist"
 * @param {any} ctx
 */
export function mount(root, ctx) {
  const tabs = /** @type {HTMLButtonElement[]} */ (Array.from(root.querySelectorAll('[role="tab"]')));
  root.addEventListener('click', (ev) => {
    const tab = /** @type {HTMLElement} */ (ev.target).closest('[role="tab"]');
    if (tab instanceof HTMLElement && tab.dataset.tab) ctx.actions.setTab(tab.dataset.tab);
  });
  root.addEventListener('keydown', (ev) => {
    const i = tabs.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    if (i < 0) return;
    const j = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
    if (j === undefined) return;
    ev.preventDefault();
    const next = tabs[(j + tabs.length) % tabs.length];
    next.focus();
    ctx.actions.setTab(next.dataset.tab);
  });
  return { root, tabs };
}

/**
 * @param {ReturnType<typeof mount>} view
 * @param {import('../state.js').State} state
 * @param {Set<string>} changed
 */
export function render(view, state, changed) {
  if (!changed.has('tab')) return;
  for (const tab of view.tabs) {
    const on = tab.dataset.tab === state.tab;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    const panel = document.getElementById(/** @type {string} */ (tab.getAttribute('aria-controls')));
    if (panel) panel.hidden = !on;
  }
}
