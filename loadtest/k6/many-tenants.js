// Many tenants: RATE requests/s spread round-robin over the API keys in
// API_KEYS ("tenant=KEY,tenant=KEY" or "KEY,KEY"), exercising the per-tenant
// rate limits. Tenants named in LIMITED_TENANTS are expected to be limited:
// the run fails if they never get a 429 (the limit was not exercised), and if
// any other tenant gets one.
//
// A 429 is an expected answer here. The extension's requests count every
// non-2xx answer in http_req_failed (it passes its own response callback to
// k6, so http.setResponseCallback(http.expectedStatuses(204, 429)) has no
// effect on them); so this scenario's failure threshold is on its own Rate
// `write_failed` (answers other than 204 and 429, and errors), and 429s are
// counted in the Counter `rate_limited`, tagged with the tenant.
//
// A k6 script for k6 with k6/x/remotewrite (built by build-k6.sh, or with
// xk6-client-prometheus-remote; README.md).
//
//   API_KEYS=acme=KEY1,limited=KEY2 LIMITED_TENANTS=limited RATE=40 DURATION=20s
//   SERIES_PER_REQUEST=100 VUS=50 P99_MS=500
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import { arrivalRateOptions, env, kubernetesTemplate, makeClient, settings, writeSlice } from './lib.js';

/** API keys as "KEY,KEY" or "tenant=KEY,tenant=KEY" (tenant names tag the metrics). */
function parseKeys(raw) {
  return String(raw)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((entry, i) => {
      const j = entry.indexOf('=');
      return j > 0 ? { tenant: entry.slice(0, j), key: entry.slice(j + 1) } : { tenant: `key${i}`, key: entry };
    });
}

const cfg = settings({ RATE: 40, VUS: 50 });
const keys = parseKeys(env('API_KEYS', cfg.apiKey));
if (keys.length === 0) throw new Error('set API_KEYS (or API_KEY), or run with --local');
const limited = parseKeys(env('LIMITED_TENANTS', '')).map((k) => k.key);
for (const t of limited) {
  if (!keys.some((k) => k.tenant === t)) throw new Error(`LIMITED_TENANTS names ${t}, which is not in API_KEYS`);
}

const rateLimited = new Counter('rate_limited');
const writeFailed = new Rate('write_failed');

const thresholds = {
  // Not http_req_failed: there every 429 counts as failed (see above).
  write_failed: [`rate<${cfg.maxFailedRate}`],
  http_req_duration: [`p(99)<${cfg.p99Ms}`],
  checks: ['rate>0.99'], // here: 204 or 429
  // A tenant without an expected limit must never be limited.
  'rate_limited{limited:no}': ['count==0'],
};
if (limited.length) thresholds['rate_limited{limited:yes}'] = ['count>0'];
if (cfg.maxDropped !== undefined) thresholds.dropped_iterations = [`count<=${cfg.maxDropped}`];

export const options = arrivalRateOptions(
  cfg,
  'many_tenants',
  {
    executor: 'constant-arrival-rate',
    rate: cfg.rate,
    duration: cfg.duration,
  },
  thresholds,
);

const tenants = keys.map((k) => ({
  tags: { tenant: k.tenant, limited: limited.indexOf(k.tenant) >= 0 ? 'yes' : 'no' },
  client: makeClient(cfg, k.key),
}));
const template = kubernetesTemplate(cfg);

export default function () {
  const i = exec.scenario.iterationInTest;
  const t = tenants[i % tenants.length];
  // Each tenant writes its own slices of the series.
  const perTenant = Math.floor(i / tenants.length);
  const res = writeSlice(cfg, t.client, template, perTenant, t.tags, (s) => s === 204 || s === 429);
  // 0 or 1 for every request, so both {limited:...} submetrics have samples.
  rateLimited.add(res.status === 429 ? 1 : 0, t.tags);
  writeFailed.add(res.status !== 204 && res.status !== 429, t.tags);
  check(res, { 'status is 204 or 429': (r) => r.status === 204 || r.status === 429 });
}
