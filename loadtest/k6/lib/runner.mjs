#!/usr/bin/env node
// A minimal stand-in for `k6 run`, for k6 scripts that use only what
// lib/k6/ provides ('k6', 'k6/metrics', 'k6/execution', 'k6/http' (response
// callbacks only), 'k6/x/remotewrite'):
//
//   node [--import ./lib/register.mjs] lib/runner.mjs SCRIPT.js [-e NAME=VALUE]... [--summary-export FILE] [--quiet]
//
// The script is a genuine k6 script: `export const options = { scenarios,
// thresholds }`, optional `setup()` / `teardown(data)`, and a synchronous
// `export default function (data)` (or the scenario's `exec` name). __ENV
// holds the environment plus the -e pairs. As in k6, the main thread only
// evaluates the init code to read the options; every VU is a worker thread
// with its own copy of the script (lib/vu-worker.mjs), and the VUs' requests
// are made by the main thread while the VU blocks (lib/vu.mjs).
//
// Executors (open model ones as in k6: an iteration that finds every VU busy
// is dropped and counted in dropped_iterations, never delayed):
//   constant-arrival-rate   { rate, timeUnit='1s', duration, maxVUs }
//   ramping-arrival-rate    { startRate=0, timeUnit='1s', stages: [{target, duration}], maxVUs }
//   constant-vus            { vus, duration }   (closed loop)
// Every scenario may have startTime, gracefulStop (default '30s') and exec.
//
// Exit codes as k6: 0 passed, 99 a threshold failed, 104 bad options,
// 107 the script threw outside an iteration; 130 interrupted (thresholds held
// so far).
import { pathToFileURL } from 'node:url';
import { writeFileSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker, MessageChannel } from 'node:worker_threads';
import { ensureHooks } from './register.mjs';
import { rewriteImports } from './k6-hooks.mjs';
import { Client } from './remotewrite.mjs';
import {
  builtin,
  parseDuration,
  startClock,
  stopClock,
  elapsedSeconds,
  evaluateThresholds,
  summarize,
  setCommonTags,
  aggregate,
  metricFor,
  addSample,
  countCheck,
} from './metrics.mjs';

const EXIT_THRESHOLDS = 99;
const EXIT_CONFIG = 104;
const EXIT_SCRIPT = 107;
const EXIT_ABORTED = 108;
const EXIT_INTERRUPTED = 130;

function usage(code) {
  process.stderr.write(
    'usage: node lib/runner.mjs SCRIPT.js [-e NAME=VALUE]... [--summary-export FILE] [--quiet]\n',
  );
  process.exit(code);
}

function parseArgs(argv) {
  const out = { script: null, env: {}, summaryExport: null, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-e' || a === '--env') {
      const kv = argv[++i] ?? usage(2);
      const j = kv.indexOf('=');
      if (j < 1) usage(2);
      out.env[kv.slice(0, j)] = kv.slice(j + 1);
    } else if (a.startsWith('--env=')) {
      const kv = a.slice(6);
      const j = kv.indexOf('=');
      if (j < 1) usage(2);
      out.env[kv.slice(0, j)] = kv.slice(j + 1);
    } else if (a === '--summary-export') {
      out.summaryExport = argv[++i] ?? usage(2);
    } else if (a.startsWith('--summary-export=')) {
      out.summaryExport = a.slice('--summary-export='.length);
    } else if (a === '-q' || a === '--quiet') {
      out.quiet = true;
    } else if (a === '-h' || a === '--help') {
      usage(0);
    } else if (!a.startsWith('-') && !out.script) {
      out.script = a;
    } else {
      process.stderr.write(`runner: unknown argument '${a}'\n`);
      usage(2);
    }
  }
  if (!out.script) usage(2);
  return out;
}

/** Iterations per millisecond as a piecewise-linear function of time since the scenario start. */
function rateSchedule(sc) {
  const unit = parseDuration(sc.timeUnit ?? '1s');
  if (sc.executor === 'constant-arrival-rate') {
    const r = Number(sc.rate) / unit;
    return { segments: [{ t0: 0, t1: parseDuration(sc.duration), r0: r, r1: r }] };
  }
  const segments = [];
  let t = 0;
  let r = Number(sc.startRate ?? 0) / unit;
  for (const st of sc.stages ?? []) {
    const d = parseDuration(st.duration);
    const target = Number(st.target) / unit;
    segments.push({ t0: t, t1: t + d, r0: r, r1: target });
    t += d;
    r = target;
  }
  return { segments };
}

/** Iterations due from the scenario start to t (the integral of the rate). */
function dueBy(schedule, t) {
  let n = 0;
  for (const s of schedule.segments) {
    if (t <= s.t0) break;
    const end = Math.min(t, s.t1);
    const d = end - s.t0;
    const rEnd = s.r0 + ((s.r1 - s.r0) * d) / (s.t1 - s.t0 || 1);
    n += ((s.r0 + rEnd) / 2) * d;
  }
  return n;
}

function validateScenario(name, sc) {
  const known = ['constant-arrival-rate', 'ramping-arrival-rate', 'constant-vus'];
  if (!sc || typeof sc !== 'object') throw new Error(`scenario ${name}: not an object`);
  if (!known.includes(sc.executor)) {
    throw new Error(`scenario ${name}: executor '${sc.executor}' is not one of ${known.join(', ')}`);
  }
  if (sc.executor === 'constant-arrival-rate' && !(Number(sc.rate) > 0)) {
    throw new Error(`scenario ${name}: rate must be > 0`);
  }
  if (sc.executor === 'ramping-arrival-rate' && !(sc.stages?.length > 0)) {
    throw new Error(`scenario ${name}: stages are required`);
  }
  if (sc.executor === 'constant-vus' && !(Number(sc.vus) > 0)) {
    throw new Error(`scenario ${name}: vus must be > 0`);
  }
  if (sc.executor !== 'constant-vus' && !(Number(sc.maxVUs ?? sc.preAllocatedVUs) > 0)) {
    throw new Error(`scenario ${name}: maxVUs must be > 0`);
  }
}

function scenarioLength(sc) {
  if (sc.executor === 'ramping-arrival-rate') {
    return sc.stages.reduce((t, st) => t + parseDuration(st.duration), 0);
  }
  return parseDuration(sc.duration);
}

let errorsLogged = 0;
function logIterationError(where, message) {
  errorsLogged++;
  if (errorsLogged <= 5) {
    process.stderr.write(`runner: ${where}: ${message}\n`);
  } else if (errorsLogged === 6) {
    process.stderr.write('runner: further iteration errors are not printed\n');
  }
}

// ---------------------------------------------------------------- the VUs' requests

// One keep-alive client per distinct k6/x/remotewrite Client config. The
// extension's own response callback: only 2xx is expected.
const httpClients = new Map();
function httpClient(config) {
  const key = JSON.stringify(config);
  let c = httpClients.get(key);
  if (!c) {
    c = new Client({
      url: config.url,
      headers: config.headers,
      timeout: config.timeout,
      user_agent: config.user_agent,
      tenant_name: config.tenant_name,
      remote_write_version: '0.0.2',
      expectedStatuses: [{ min: 200, max: 299 }],
    });
    httpClients.set(key, c);
  }
  return c;
}

async function doHttp(msg) {
  try {
    const body = Buffer.from(msg.body.buffer, msg.body.byteOffset, msg.body.byteLength);
    const res = await httpClient(msg.config).post(body, 0, msg.tags);
    return { status: res.status, headers: res.headers, body: res.body, error: res.error, error_code: res.error_code, timings: res.timings };
  } catch (e) {
    return { status: 0, headers: {}, body: '', error: String(e?.message ?? e), error_code: 1000, timings: { duration: 0 } };
  }
}

/** Samples and checks a VU reported with a finished iteration. */
function applySamples(m) {
  for (const [name, type, isTime, value, tags] of m.samples ?? []) {
    addSample(metricFor(name, type, isTime), value, tags);
  }
  for (const [name, ok] of m.checks ?? []) countCheck(name, ok);
}

let nextVuId = 1;

/** The runner's Node.js flags minus `--import .../register.mjs` (VUs need no hooks). */
function vuExecArgv() {
  const out = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '--import' && /register\.mjs$/.test(a[i + 1] ?? '')) i++;
    else if (/^--import=.*register\.mjs$/.test(a[i])) continue;
    else out.push(a[i]);
  }
  return out;
}

/** A VU: a worker thread with its own copy of the script. */
class VU {
  constructor(run, id, setupData) {
    this.id = id;
    this.run = run;
    this.pending = null; // {resolve} of the job in progress
    this.sab = new SharedArrayBuffer(4);
    this.flag = new Int32Array(this.sab);
    const { port1, port2 } = new MessageChannel();
    this.answerPort = port1;
    this.worker = new Worker(new URL('./vu-worker.mjs', import.meta.url), {
      workerData: {
        id,
        env: run.env,
        scriptUrl: run.scriptUrl,
        responsePort: port2,
        sab: this.sab,
        startTime: run.startTime,
        setupData,
        options: run.options,
      },
      transferList: [port2],
      execArgv: vuExecArgv(),
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (m) => {
        if (m.type === 'ready') resolve(this);
        else if (m.type === 'init-error') reject(new Error(`VU ${id}: the init code failed: ${m.error.message}`));
        else if (m.type === 'http') this.http(m);
        else if (m.type === 'done') {
          const p = this.pending;
          this.pending = null;
          p?.resolve(m);
        }
      });
      this.worker.on('error', (e) => {
        reject(e);
        this.pending?.resolve({ type: 'done', error: { message: `VU ${id} died: ${e?.stack ?? e}` } });
        this.pending = null;
      });
    });
  }

  async http(m) {
    const answer = await doHttp(m);
    this.answerPort.postMessage(answer);
    Atomics.store(this.flag, 0, 1);
    Atomics.notify(this.flag, 0);
  }

  /** Runs one job ({type: 'iteration' | 'setup' | 'teardown', ...}); resolves to the 'done' message. */
  job(msg) {
    return new Promise((resolve) => {
      this.pending = { resolve };
      this.worker.postMessage(msg);
    });
  }

  terminate() {
    this.answerPort.close();
    return this.worker.terminate();
  }
}

class ScenarioRun {
  constructor(name, sc, runCtx, state) {
    this.name = name;
    this.sc = sc;
    this.ctx = runCtx;
    this.state = state;
    this.exec = sc.exec ?? 'default';
    this.maxVUs = sc.executor === 'constant-vus' ? Number(sc.vus) : Number(sc.maxVUs ?? sc.preAllocatedVUs);
    this.preVUs =
      sc.executor === 'constant-vus' ? this.maxVUs : Math.min(this.maxVUs, Number(sc.preAllocatedVUs ?? this.maxVUs));
    this.vus = []; // every VU of this scenario
    this.free = [];
    this.allocating = 0;
    this.inflight = new Set();
    this.started = 0;
    this.length = scenarioLength(sc);
    this.startAt = parseDuration(sc.startTime ?? '0s');
    this.gracefulStop = parseDuration(sc.gracefulStop ?? '30s');
    this.peak = 0;
  }

  async newVU() {
    this.allocating++;
    try {
      const v = new VU(this.ctx, nextVuId++, this.ctx.setupData);
      this.vus.push(v);
      return await v.ready;
    } finally {
      this.allocating--;
    }
  }

  /** k6's preAllocatedVUs: initialized before the test starts. */
  async preallocate() {
    const vus = await Promise.all(Array.from({ length: this.preVUs }, () => this.newVU()));
    this.free.push(...vus.reverse()); // pop() gives VU 1 first
  }

  /**
   * A free VU, or null: then the iteration is dropped and, as k6 does, one
   * more VU (up to maxVUs) is initialized in the background for later ones.
   */
  acquire() {
    const v = this.free.pop();
    if (v) return v;
    if (this.allocating === 0 && this.vus.length < this.maxVUs && !this.state.stopping) {
      this.newVU().then(
        (vu) => this.free.push(vu),
        (e) => {
          this.state.fatal ??= e;
          this.state.stopping = true;
        },
      );
    }
    return null;
  }

  runIteration(vu, release = true) {
    const iterationInTest = this.started++;
    const tags = { scenario: this.name };
    const p = (async () => {
      const elapsed = performance.now() - this.t0;
      const m = await vu.job({
        type: 'iteration',
        exec: this.exec,
        ctx: {
          scenario: this.name,
          executor: this.sc.executor,
          iterationInTest,
          iterationInScenario: iterationInTest,
          startTime: this.ctx.startTime + this.startAt,
          progress: Math.min(1, elapsed / this.length),
        },
      });
      applySamples(m);
      if (m.error) {
        if (m.error.abort) {
          this.state.aborted = m.error.message;
          this.state.stopping = true;
        } else {
          logIterationError(`${this.name}: iteration failed`, m.error.message);
        }
      }
      builtin.iterations.add(1, tags);
      builtin.iteration_duration.add(m.duration ?? 0, tags);
      if (release) this.free.push(vu);
    })();
    this.inflight.add(p);
    this.peak = Math.max(this.peak, this.inflight.size);
    builtin.vus.add(this.inflight.size, tags);
    return p.finally(() => this.inflight.delete(p));
  }

  async run() {
    await sleep(this.startAt);
    this.t0 = performance.now();
    if (this.sc.executor === 'constant-vus') {
      const loops = this.free.splice(0).map((vu) =>
        (async () => {
          while (!this.state.stopping && performance.now() - this.t0 < this.length) {
            await this.runIteration(vu, false);
          }
        })(),
      );
      await this.waitGraceful(Promise.all(loops));
      return;
    }
    const schedule = rateSchedule(this.sc);
    let dropped = 0;
    await new Promise((resolve) => {
      const tick = () => {
        const t = performance.now() - this.t0;
        const until = Math.min(t, this.length);
        const due = Math.floor(dueBy(schedule, until) + 1e-9);
        while (!this.state.stopping && this.started + dropped < due) {
          const vu = this.acquire();
          if (vu === null) {
            dropped++;
            builtin.dropped_iterations.add(1, { scenario: this.name });
            continue;
          }
          this.runIteration(vu);
        }
        if (t >= this.length || this.state.stopping) return resolve();
        setTimeout(tick, 1);
      };
      tick();
    });
    await this.waitGraceful(Promise.allSettled([...this.inflight]));
  }

  async waitGraceful(done) {
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.gracefulStop);
    });
    const r = await Promise.race([done, timeout]);
    clearTimeout(timer);
    if (r === 'timeout' && this.inflight.size) {
      process.stderr.write(
        `runner: ${this.name}: ${this.inflight.size} iterations still running after gracefulStop; not waiting\n`,
      );
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  ensureHooks();
  const env = { ...process.env, ...args.env };
  globalThis.__ENV = env;
  globalThis.__VU = 0;
  globalThis.__ITER = 0;
  const scriptPath = path.resolve(args.script);
  const scriptUrl = pathToFileURL(scriptPath).href;

  // The init context on the main thread: only to read the options (as k6).
  let mod;
  try {
    mod = await import(scriptUrl);
  } catch (e) {
    process.stderr.write(`runner: cannot load ${scriptPath}: ${e?.stack ?? e}\n`);
    return EXIT_SCRIPT;
  }
  const options = mod.options ?? {};
  const scenarios = options.scenarios ?? {};
  try {
    if (typeof mod.default === 'function' && mod.default.constructor.name === 'AsyncFunction') {
      process.stderr.write('runner: note: the default function is async; k6 scripts are normally synchronous\n');
    }
    if (Object.keys(scenarios).length === 0) throw new Error('options.scenarios is empty');
    for (const [name, sc] of Object.entries(scenarios)) {
      validateScenario(name, sc);
      const exec = sc.exec ?? 'default';
      if (typeof mod[exec] !== 'function') throw new Error(`scenario ${name}: the script exports no function '${exec}'`);
    }
    evaluateThresholds(options.thresholds); // validates them (no samples yet)
  } catch (e) {
    process.stderr.write(`runner: bad options: ${e.message}\n`);
    return EXIT_CONFIG;
  }
  if (typeof mod.handleSummary === 'function') {
    process.stderr.write('runner: note: handleSummary() is not supported by the stand-in; printing the default summary\n');
  }

  // The VUs' copy of the script, its imports resolved (see k6-hooks.mjs).
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'k6-standin-'));
  process.on('exit', () => rmSync(tmpDir, { recursive: true, force: true }));
  const vuScript = path.join(tmpDir, path.basename(scriptPath).replace(/\.[cm]?js$/, '') + '.mjs');
  writeFileSync(
    vuScript,
    rewriteImports(readFileSync(scriptPath, 'utf8'), scriptUrl) +
      `\n// ${scriptPath} for the stand-in's VUs: its imports made absolute.\n`,
  );
  const runCtx = { env, scriptUrl: pathToFileURL(vuScript).href, startTime: Date.now(), options: JSON.parse(JSON.stringify(options)), setupData: undefined };
  const allVUs = [];
  const finish = async () => Promise.allSettled(allVUs.map((v) => v.terminate()));

  // setup() and teardown() run in a VU of their own (k6: VU 0 of the setup instance).
  let setupVU = null;
  if (typeof mod.setup === 'function' || typeof mod.teardown === 'function') {
    setupVU = new VU(runCtx, 0, undefined);
    allVUs.push(setupVU);
    try {
      await setupVU.ready;
    } catch (e) {
      process.stderr.write(`runner: ${e.message}\n`);
      await finish();
      return EXIT_SCRIPT;
    }
  }
  if (typeof mod.setup === 'function') {
    const m = await setupVU.job({ type: 'setup', ctx: { scenario: '' } });
    applySamples(m);
    if (m.error) {
      process.stderr.write(`runner: setup() failed: ${m.error.message}\n`);
      await finish();
      return m.error.abort ? EXIT_ABORTED : EXIT_SCRIPT;
    }
    runCtx.setupData = m.result;
  }

  const state = { stopping: false, aborted: null, fatal: null };
  let interrupted = false;
  const onSignal = () => {
    if (state.stopping) process.exit(130);
    interrupted = true;
    state.stopping = true;
    process.stderr.write('\nrunner: interrupted; finishing in-flight iterations (again to quit)\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const runs = Object.entries(scenarios).map(([name, sc]) => new ScenarioRun(name, sc, runCtx, state));
  try {
    if (!args.quiet) {
      const n = runs.reduce((a, r) => a + r.preVUs, 0);
      process.stderr.write(`runner: initializing ${n} VUs (worker threads) ...\n`);
    }
    await Promise.all(runs.map((r) => r.preallocate()));
  } catch (e) {
    process.stderr.write(`runner: ${e.message}\n`);
    for (const r of runs) allVUs.push(...r.vus);
    await finish();
    return EXIT_SCRIPT;
  }
  const total = Math.max(...runs.map((r) => r.startAt + r.length));
  setCommonTags({});
  runCtx.startTime = Date.now();
  startClock();

  const progress = setInterval(() => {
    if (args.quiet) return;
    const inflight = runs.reduce((n, r) => n + r.inflight.size, 0);
    const secs = elapsedSeconds();
    if (Math.round(secs) % 5 !== 0) return;
    const reqs = builtin.http_reqs.values.length;
    const failed = builtin.http_req_failed.values.reduce((a, b) => a + b, 0);
    const recent = builtin.http_req_duration.values.slice(-2000);
    const p99 = aggregate('trend', recent)['p(99)'];
    const dropped = builtin.dropped_iterations.values.length;
    const vus = runs.reduce((n, r) => n + r.vus.length, 0);
    process.stderr.write(
      `running (${secs.toFixed(0)}s/${(total / 1000).toFixed(0)}s) reqs=${reqs} (${(reqs / secs).toFixed(1)}/s) ` +
        `failed=${failed} p99(last 2000)=${p99.toFixed(1)}ms in-flight=${inflight} VUs=${vus} dropped=${dropped}\n`,
    );
  }, 1000);

  await Promise.all(runs.map((r) => r.run()));
  clearInterval(progress);
  stopClock();
  for (const r of runs) allVUs.push(...r.vus);

  if (state.fatal) {
    process.stderr.write(`runner: ${state.fatal.message ?? state.fatal}\n`);
    await finish();
    return EXIT_SCRIPT;
  }

  if (typeof mod.teardown === 'function') {
    const m = await setupVU.job({ type: 'teardown', data: runCtx.setupData, ctx: { scenario: '' } });
    applySamples(m);
    if (m.error) process.stderr.write(`runner: teardown() failed: ${m.error.message}\n`);
  }
  for (const r of runs) builtin.vus_max.add(r.vus.length, { scenario: r.name });

  let results;
  try {
    results = evaluateThresholds(options.thresholds);
  } catch (e) {
    process.stderr.write(`runner: bad thresholds: ${e.message}\n`);
    await finish();
    return EXIT_CONFIG;
  }

  const header = [
    `script: ${path.relative(process.cwd(), scriptPath) || scriptPath} (k6 stand-in runner)`,
    ...runs.map((r) => {
      const sc = r.sc;
      const shape =
        sc.executor === 'constant-arrival-rate'
          ? `${sc.rate} iterations/${sc.timeUnit ?? '1s'} for ${sc.duration}`
          : sc.executor === 'ramping-arrival-rate'
            ? `from ${sc.startRate ?? 0}: ` + sc.stages.map((s) => `${s.target}/${sc.timeUnit ?? '1s'} over ${s.duration}`).join(', ')
            : `${sc.vus} VUs for ${sc.duration}`;
      return `scenario ${r.name}: ${sc.executor}, ${shape}, VUs ${r.vus.length} initialized of maxVUs ${r.maxVUs} (peak busy ${r.peak})`;
    }),
    `duration: ${elapsedSeconds().toFixed(1)}s${interrupted ? ' (interrupted)' : ''}${state.aborted ? ' (aborted)' : ''}`,
  ];
  const { text, json } = summarize({ header, thresholds: options.thresholds, results });
  process.stdout.write(text + '\n');
  const failed = results.filter((r) => !r.ok);
  if (failed.length) {
    process.stdout.write(`  ✗ ${failed.length} threshold(s) failed: ${failed.map((r) => `${r.selector} ${r.expr}`).join('; ')}\n\n`);
  } else if (results.length) {
    process.stdout.write(`  ✓ all ${results.length} thresholds passed\n\n`);
  }
  if (args.summaryExport) {
    writeFileSync(
      args.summaryExport,
      JSON.stringify({ script: args.script, duration_s: elapsedSeconds(), interrupted, ...json }, null, 2) + '\n',
    );
  }
  await finish();
  for (const c of httpClients.values()) c.close();
  if (state.aborted) {
    process.stderr.write(`runner: test aborted: ${state.aborted.split('\n')[0]}\n`);
    return EXIT_ABORTED;
  }
  if (failed.length) return EXIT_THRESHOLDS;
  return interrupted ? EXIT_INTERRUPTED : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    // Keep-alive sockets must not hold the process open.
    setTimeout(() => process.exit(code), 50).unref();
  },
  (e) => {
    process.stderr.write(`runner: ${e?.stack ?? e}\n`);
    process.exit(EXIT_SCRIPT);
  },
);
