// @ts-check
/**
 * Keyboard use of repeated tiles. Each grid of tiles is one Tab stop (a roving tabindex: only the
 * last focused tile, else the pressed or selected one, else the first, has tabindex 0); arrow keys
 * move inside. The overview's columns move with `gridKeys`; other grids by `lineKeys` (Left/Right
 * to the neighbour, Up/Down to the nearest tile in the row above or below, Home/End).
 */

/**
 * Grids made roving by `roveGrids` (one table, read once at start). `arrows`: move with `lineKeys`
 * (the overview moves focus itself, with `gridKeys`); `role`: set on the grid (a row of controls
 * that is one Tab stop is a WAI-ARIA toolbar, so screen readers announce the arrow keys).
 * @type {Array<{grid: string, tile: string, arrows: boolean, role?: string, label?: string}>}
 */
const GRIDS = [
  { grid: '.transport-buttons', tile: 'button', arrows: true, role: 'toolbar' },
  { grid: '[data-view="input"] .input-actions', tile: 'input[type="file"], button', arrows: true, role: 'toolbar', label: 'Give the network an image' },
  { grid: '[data-view="input"] .samples', tile: 'button.sample', arrows: true },
  { grid: '.stage .learn-switch', tile: 'button.learn-mode', arrows: true, role: 'toolbar' },
  { grid: '[data-view="overview"] .ov-track', tile: 'canvas.map, .prob-btn', arrows: false },
  { grid: '[data-view="filters"] .gallery', tile: '[data-filter]', arrows: true },
];

/**
 * @param {KeyboardEvent} ev
 * @param {HTMLElement[][]} columns tiles per column, in order
 * @param {(column: number, index: number) => void} pick
 */
export function gridKeys(ev, columns, pick) {
  const tile = /** @type {HTMLElement} */ (ev.target);
  const ci = columns.findIndex((col) => col.includes(tile));
  if (ci < 0) return;
  const k = columns[ci].indexOf(tile);
  if (ev.key === 'Enter' || ev.key === ' ') {
    ev.preventDefault();
    pick(ci, k);
    return;
  }
  const moves = /** @type {Record<string, [number, number]>} */ ({ ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] });
  const mv = moves[ev.key];
  if (!mv) return;
  ev.preventDefault();
  let target = null;
  if (mv[1]) target = columns[ci][k + mv[1]];
  else {
    for (let j = ci + mv[0]; j >= 0 && j < columns.length && !target; j += mv[0]) {
      const next = columns[j];
      if (next.length) target = next[Math.min(k, next.length - 1)];
    }
  }
  target?.focus();
}

/**
 * Arrow keys in a wrapped row or a list of tiles: Left/Right the previous/next tile, Up/Down the
 * nearest tile (by its centre) in the next row up or down, Home/End the first/last.
 * @param {KeyboardEvent} ev
 * @param {HTMLElement[]} tiles in reading order
 */
export function lineKeys(ev, tiles) {
  const i = tiles.indexOf(/** @type {HTMLElement} */ (ev.target));
  if (i < 0) return;
  /** @type {HTMLElement | undefined} */
  let target;
  if (ev.key === 'Home' || ev.key === 'End') target = tiles[ev.key === 'Home' ? 0 : tiles.length - 1];
  else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') target = tiles[i + (ev.key === 'ArrowLeft' ? -1 : 1)];
  else if (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') {
    const down = ev.key === 'ArrowDown';
    const r = tiles[i].getBoundingClientRect();
    const cx = r.left + r.width / 2;
    let best = Infinity;
    for (const t of tiles) {
      const q = t.getBoundingClientRect();
      const dy = down ? q.top - (r.bottom - 1) : (r.top + 1) - q.bottom;
      if (dy < 0) continue;
      const score = dy * 1e4 + Math.abs(q.left + q.width / 2 - cx);
      if (score < best) [best, target] = [score, t];
    }
  } else return;
  ev.preventDefault();
  target?.focus();
}

/**
 * Make the enabled tiles matching `tile` inside `grid` one Tab stop; follows tiles added, replaced,
 * enabled or disabled later.
 * @param {HTMLElement} grid
 * @param {string} tile a selector
 * @param {boolean} arrows handle the arrow keys with `lineKeys`
 */
export function roving(grid, tile, arrows) {
  /** @type {HTMLElement | null} */
  let current = null;
  const tiles = () => /** @type {HTMLElement[]} */ (Array.from(grid.querySelectorAll(tile)));
  const enabled = () => tiles().filter((t) => !t.matches(':disabled'));
  const settle = () => {
    const all = tiles();
    const live = all.filter((t) => !t.matches(':disabled'));
    if (!current || !live.includes(current)) current = live.find((t) => t.matches('[aria-pressed="true"], .is-selected')) || live[0] || null;
    for (const t of all) {
      const want = t === current ? '0' : '-1';
      if (t.getAttribute('tabindex') !== want) t.setAttribute('tabindex', want);
    }
  };
  grid.addEventListener('focusin', (ev) => {
    const t = ev.target instanceof Element ? ev.target.closest(tile) : null;
    if (t instanceof HTMLElement && t !== current && grid.contains(t)) {
      current = t;
      settle();
    }
  });
  if (arrows) grid.addEventListener('keydown', (ev) => lineKeys(ev, enabled()));
  new MutationObserver(settle).observe(grid, { childList: true, subtree: true, attributes: true, attributeFilter: ['disabled'] });
  settle();
}

/**
 * Make every grid of `GRIDS` found under `doc` roving (after views are mounted; again after more
 * are: a grid already roving is marked `data-roving` and left as it is).
 * @param {ParentNode} [doc]
 */
export function roveGrids(doc = document) {
  for (const g of GRIDS) {
    const el = doc.querySelector(g.grid);
    if (!(el instanceof HTMLElement) || el.dataset.roving) continue;
    el.dataset.roving = 'true';
    if (g.role) el.setAttribute('role', g.role);
    if (g.label) el.setAttribute('aria-label', g.label);
    roving(el, g.tile, g.arrows);
  }
}
