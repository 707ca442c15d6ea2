// One VU of the stand-in runner: a worker thread that evaluates the script's
// init code (its own copy, as every k6 VU does) and then runs iterations (or
// setup()/teardown()) when the runner asks, reporting the samples emitted.
// It loads the script with its k6 imports already resolved to the shims
// (k6-hooks.mjs rewriteImports), so it registers no hooks itself.
import { parentPort, workerData } from 'node:worker_threads';
import { vu, flush } from './vu.mjs';

const { id, env, scriptUrl, responsePort, sab, startTime, setupData, options } = workerData;
globalThis.__ENV = env;
globalThis.__VU = id;
globalThis.__ITER = 0;
globalThis.__k6Options = options;
vu.active = true;
vu.id = id;
vu.port = parentPort;
vu.responsePort = responsePort;
vu.flag = new Int32Array(sab);
vu.startTime = startTime;

function describeError(e) {
  return { message: String(e?.stack ?? e), abort: Boolean(e?.k6Abort) };
}

let mod;
try {
  mod = await import(scriptUrl);
  parentPort.postMessage({ type: 'ready' });
} catch (e) {
  parentPort.postMessage({ type: 'init-error', error: describeError(e) });
}

let iterInInstance = 0;
if (mod) {
  parentPort.on('message', async (m) => {
    const t0 = performance.now();
    let result;
    let error;
    vu.ctx = m.ctx ?? null;
    try {
      if (m.type === 'iteration') {
        vu.iterationInInstance = iterInInstance;
        globalThis.__ITER = iterInInstance++;
        const r = mod[m.exec](setupData);
        if (r && typeof r.then === 'function') await r;
      } else if (m.type === 'setup') {
        result = await mod.setup();
        // k6 hands setup()'s data to the VUs as JSON.
        result = result === undefined ? undefined : JSON.parse(JSON.stringify(result));
      } else if (m.type === 'teardown') {
        await mod.teardown(m.data);
      }
    } catch (e) {
      error = describeError(e);
    }
    parentPort.postMessage({ type: 'done', duration: performance.now() - t0, result, error, ...flush() });
  });
}
