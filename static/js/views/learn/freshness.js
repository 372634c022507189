// @ts-check
/**
 * When a Learn step that asks the server about the live model and image must ask again: the model,
 * its step or the image changed since it last asked.
 */

/**
 * Record the model, step and image of `state` on `view.key`; true when they differ from the last
 * call's (or the model object was replaced), false when the step's numbers are still current or
 * there is no model, image and forward pass yet.
 * @param {{key: string}} view
 * @param {import('../../state.js').State} state
 * @param {Set<string>} changed
 */
export function needsFetch(view, state, changed) {
  const { model, input, forward } = state;
  if (!model || !input || !forward) return false;
  const key = `${model.id}|${model.step}|${JSON.stringify(input)}`;
  if (key === view.key && !changed.has('model')) return false;
  view.key = key;
  return true;
}
