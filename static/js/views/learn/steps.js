// @ts-check
/**
 * The Learn mode's steps, in order: one module per idea, each exporting `{id, title, mount, render}`
 * (see panel.js). Later steps plug in by adding their module here.
 */
import * as beyond from './beyond.js';
import * as conv from './conv.js';
import * as deeper from './deeper.js';
import * as hyper from './hyper.js';
import * as learning from './learning.js';
import * as ops from './ops.js';
import * as sandbox from './sandbox.js';
import * as softmax from './softmax.js';
import * as testing from './testing.js';

/**
 * @typedef {{id: string, title: string, mount: (root: HTMLElement, ctx: any) => any,
 *   render: (view: any, state: import('../../state.js').State, changed: Set<string>) => void}} Step
 */

/** @type {Step[]} */
export const STEPS = [conv, sandbox, deeper, ops, softmax, learning, testing, hyper, beyond];
