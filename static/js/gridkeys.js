// @ts-check
/**
 * Keyboard use of a grid of focusable tiles in columns (the overview): Enter or Space picks the
 * focused tile, arrow keys move up and down a column and across columns.
 */

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
