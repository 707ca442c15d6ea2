// The per-thread side of the stand-in: which VU this thread is (none on the
// runner's main thread, which is k6's "init" instance that only reads
// options), the current iteration's execution info, the samples the VU
// emitted, and the synchronous bridge for HTTP requests.
//
// A VU is a worker thread (as in k6, every VU runs its own copy of the
// script's init code). The script's default function is synchronous, so a
// request blocks the VU: the VU posts the request to the main thread, which
// does the I/O for all VUs, and waits with Atomics.wait until the main thread
// has posted the answer on the VU's response port.
import { receiveMessageOnPort } from 'node:worker_threads';

export const vu = {
  active: false, // true inside a VU worker
  id: 0,
  port: null, // parentPort
  responsePort: null,
  flag: null, // Int32Array over a SharedArrayBuffer: 0 waiting, 1 answered
  samples: [], // [metricName, type, isTime, value, tags] since the last flush
  checks: [], // [name, ok]
  tags: {}, // exec.vu.metrics.tags
  ctx: null, // the current iteration: { scenario, executor, iterationInTest, ... }
  iterationInInstance: -1,
  startTime: 0,
};

export function inVU() {
  return vu.active;
}

export function requireVU(what) {
  if (!vu.active) {
    throw new Error(`${what} is not supported in the init context (k6 allows it only in VU code: default function, setup, teardown)`);
  }
}

/** Tags every sample of this VU gets: the scenario, exec.vu.metrics.tags, then the caller's. */
export function sampleTags(tags) {
  const base = vu.ctx?.scenario ? { scenario: vu.ctx.scenario } : {};
  return { ...base, ...vu.tags, ...(tags ?? {}) };
}

export function emit(name, type, isTime, value, tags) {
  vu.samples.push([name, type, isTime, Number(value), sampleTags(tags)]);
}

export function emitCheck(name, ok, tags) {
  emit('checks', 'rate', false, ok ? 1 : 0, { ...(tags ?? {}), check: name });
  vu.checks.push([name, ok]);
}

/** Takes the samples and checks emitted since the last call. */
export function flush() {
  const out = { samples: vu.samples, checks: vu.checks };
  vu.samples = [];
  vu.checks = [];
  return out;
}

/** Synchronous round trip to the main thread (HTTP). */
export function callMain(msg, timeoutMs) {
  requireVU('a request');
  Atomics.store(vu.flag, 0, 0);
  vu.port.postMessage({ ...msg, tags: sampleTags(msg.tags) });
  const r = Atomics.wait(vu.flag, 0, 0, timeoutMs);
  if (r === 'timed-out') throw new Error(`no answer from the runner within ${timeoutMs} ms`);
  const got = receiveMessageOnPort(vu.responsePort);
  Atomics.store(vu.flag, 0, 0);
  if (!got) throw new Error('runner bridge: answer missing');
  return got.message;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** k6's sleep(): blocks this VU (only this thread). */
export function sleepSeconds(s) {
  const ms = Number(s) * 1000;
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}
