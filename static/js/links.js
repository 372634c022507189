// @ts-check
/**
 * Addresses of server resources the browser loads itself (an <img> src, an <a download> href), for
 * api.js. A page opened by a share link (`?share=<token>`, route.js) adds the token to each, as
 * api.js sends it as `X-Share-Token` on its own requests: the server reads a shared model, and its
 * dataset, by either.
 */

/**
 * @param {string} base e.g. "/api/v1"
 * @param {string} [share] the share-link token the page was opened with
 */
export function createLinks(base, share = '') {
  const enc = encodeURIComponent;
  /** The URL with the share token, when there is one. @param {string} path */
  const url = (path) => `${base}${path}${share ? `${path.includes('?') ? '&' : '?'}share=${enc(share)}` : ''}`;
  const model = (/** @type {string} */ id) => `/models/${enc(id)}`;
  return {
    /** @param {string} name @param {string} split @param {number} index */
    sampleUrl: (name, split, index) => url(`/datasets/${enc(name)}/samples/${enc(split)}/${index}.png`),
    imageUrl: (/** @type {string} */ id) => url(`/images/${enc(id)}`),
    checkpointUrl: (/** @type {string} */ id) => url(`${model(id)}/checkpoint`),
    /** Every step, evaluation and event as CSV (`GET /models/{id}/history?format=csv`). @param {string} id */
    historyCsvUrl: (id) => url(`${model(id)}/history?format=csv`),
    /**
     * The page's address that opens model `id` read-only with share token `token`.
     * @param {string} id @param {string} token
     */
    shareLink: (id, token) => `${location.origin}/?model=${enc(id)}&share=${enc(token)}`,
  };
}
