// node --test loadtest/k6/test/ : the scenario files are genuine k6 scripts
// (k6 module names only, options, a synchronous default function) and run
// unchanged under the stand-in runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import '../lib/register.mjs';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIOS = ['constant-rate', 'ramp', 'spike', 'many-tenants'];
const K6_MODULES = new Set(['k6', 'k6/metrics', 'k6/execution', 'k6/http', 'k6/x/remotewrite']);

globalThis.__ENV = { API_KEY: 'k', API_KEYS: 'a=k1,b=k2', LIMITED_TENANTS: 'b', DURATION: '10s' };

for (const name of SCENARIOS) {
  test(`${name}.js imports only k6 modules and exports options and a synchronous default function`, async () => {
    const file = path.join(DIR, `${name}.js`);
    const src = readFileSync(file, 'utf8');
    const specs = [...src.matchAll(/^\s*import\s+(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    assert.ok(specs.length > 0, 'no imports found');
    for (const s of specs) assert.ok(K6_MODULES.has(s), `${name}.js imports '${s}', not a k6 module`);
    assert.doesNotMatch(src, /\bimport\s*\(/, 'dynamic import');
    assert.doesNotMatch(src, /\b(process|require)\b[.(]/, 'Node.js globals');
    assert.doesNotMatch(src, /\basync\b|\bawait\b/, 'async code');

    const mod = await import(pathToFileURL(file).href);
    assert.equal(typeof mod.default, 'function');
    assert.equal(mod.default.constructor.name, 'Function', 'default must be a plain synchronous function');
    assert.ok(mod.options && typeof mod.options.scenarios === 'object');
    for (const sc of Object.values(mod.options.scenarios)) {
      assert.ok(['constant-arrival-rate', 'ramping-arrival-rate'].includes(sc.executor));
      assert.ok(sc.maxVUs >= sc.preAllocatedVUs);
    }
    assert.ok(Object.keys(mod.options.thresholds).length >= 3);
    for (const k of Object.keys(mod)) assert.ok(['default', 'options', 'setup', 'teardown'].includes(k), `unexpected export ${k}`);
  });
}

function runRunner(script, env, serverStatus) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push(req.headers);
        res.statusCode = serverStatus;
        res.end();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}/receiver/prometheus/api/v1/write`;
      const args = ['--import', path.join(DIR, 'lib/register.mjs'), path.join(DIR, 'lib/runner.mjs'), path.join(DIR, script), '-q'];
      for (const [k, v] of Object.entries({ INGEST_URL: url, API_KEY: 'k', ...env })) args.push('-e', `${k}=${v}`);
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => { out += c; });
      child.stderr.on('data', (c) => { out += c; });
      child.on('error', reject);
      child.on('exit', (code) => {
        server.close();
        resolve({ code, out, seen });
      });
    });
  });
}

test('constant-rate.js runs unchanged under the runner: requests, checks, exit 0', async () => {
  const { code, out, seen } = await runRunner('constant-rate.js', { DURATION: '2s', RATE: '10', VUS: '3' }, 204);
  assert.equal(code, 0, out);
  assert.match(out, /✓ status is 204 {2}20 \/ 20/);
  assert.equal(seen.length, 20);
  assert.equal(seen[0]['content-encoding'], 'snappy');
  assert.equal(seen[0]['sts-api-key'], 'k');
  assert.equal(seen[0]['user-agent'], 'k6-remote-write/0.0.2');
});

test('a failed threshold exits 99, as k6', async () => {
  const { code, out } = await runRunner('constant-rate.js', { DURATION: '1s', RATE: '5', VUS: '2' }, 500);
  assert.equal(code, 99, out);
  assert.match(out, /✗ 'rate<0.01'/);
});
