// @ts-check
/**
 * The page's one floating tooltip (the `[data-tooltip]` element in the template). Text only.
 */

/** @returns {HTMLElement | null} */
function tip() {
  return document.querySelector('[data-tooltip]');
}

/**
 * Show lines of text near the pointer (kept inside the viewport).
 * @param {string[]} lines
 * @param {number} x client x
 * @param {number} y client y
 */
export function showTooltip(lines, x, y) {
  const el = tip();
  if (!el) return;
  const text = lines.join('\n');
  if (el.textContent !== text) el.textContent = text;
  el.hidden = false;
  const w = el.offsetWidth;
  const h = el.offsetHeight;
  const left = x + 14 + w > window.innerWidth - 4 ? x - w - 14 : x + 14;
  const top = y + 16 + h > window.innerHeight - 4 ? y - h - 12 : y + 16;
  el.style.transform = `translate(${Math.max(4, left)}px, ${Math.max(4, top)}px)`;
}

export function hideTooltip() {
  const el = tip();
  if (el) el.hidden = true;
}
