// @ts-check
/**
 * Long server jobs with honest progress: the POST that does the work runs while a GET of the same
 * resource is polled for `{status, done, total}`; a POST that finds the job already running
 * (another tab started it) keeps polling until the GET says it is done.
 */

const POLL_MS = 300;

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run `start()` and report `poll()`'s progress until a body with status "done" arrives.
 * @param {() => Promise<any>} start the POST
 * @param {() => Promise<any>} poll the GET
 * @param {(done: number, total: number) => void} onProgress
 * @param {() => boolean} [stale] true once the answer is no longer wanted (stops polling)
 * @returns {Promise<any>} the body with status "done" (or whatever arrived when it became stale)
 */
export async function withProgress(start, poll, onProgress, stale = () => false) {
  let finished = false;
  /** @type {any} */
  let result = null;
  const work = start().then((body) => {
    finished = true;
    result = body;
  }, (err) => {
    finished = true;
    throw err;
  });
  const watcher = (async () => {
    while (!finished && !stale()) {
      await sleep(POLL_MS);
      if (finished || stale()) return;
      const s = await poll().catch(() => null);
      if (s && s.total) onProgress(s.done, s.total);
    }
  })();
  await work;
  await watcher;
  while (result && result.status === 'running' && !stale()) {
    await sleep(POLL_MS);
    result = await poll();
    if (result.total) onProgress(result.done, result.total);
    if (result.status === 'none' || result.status === 'failed') throw new Error(result.detail || 'The search stopped before it finished; try again.');
  }
  return result;
}
