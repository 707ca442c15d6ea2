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
import remote from 'k6/x/remotewrite';

// ---- settings shared by the four scenarios (kept in each file: a k6 script
// here imports only k6's own modules, so it runs unchanged under real k6) ----

function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

function num(name, fallback) {
  const raw = env(name, undefined);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!isFinite(n) || n < 0) throw new Error(`${name}=${raw} is not a non-negative number`);
  return n;
}

function posInt(name, fallback) {
  const n = num(name, fallback);
  if (Math.floor(n) !== n || n < 1) throw new Error(`${name}=${n} must be a positive integer`);
  return n;
}

/** k6 duration text ("90s", "1m30s", "500ms") in milliseconds. */
function parseDuration(d) {
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let matched = '';
  let m;
  while ((m = re.exec(String(d))) !== null) {
    total += Number(m[1]) * unit[m[2]];
    matched += m[0];
  }
  if (!matched || matched !== String(d).replace(/\s+/g, '')) {
    throw new Error(`cannot parse duration '${d}' (use e.g. 500ms, 20s, 1m30s)`);
  }
  return total;
}

/** Milliseconds as k6 duration text: whole seconds as "10s", else "1500ms". */
function ms(d) {
  const r = Math.max(1, Math.round(d));
  return r % 1000 === 0 ? `${r / 1000}s` : `${r}ms`;
}

function settings(defaults) {
  const seriesPerRequest = posInt('SERIES_PER_REQUEST', defaults.SERIES_PER_REQUEST || 100);
  const totalWanted = posInt('TOTAL_SERIES', seriesPerRequest * 50);
  const vus = posInt('VUS', defaults.VUS);
  const cfg = {
    url: env('INGEST_URL', 'http://127.0.0.1:8080/receiver/prometheus/api/v1/write'),
    apiKey: env('API_KEY', ''),
    auth: env('AUTH', 'header'),
    rate: num('RATE', defaults.RATE),
    duration: env('DURATION', '20s'),
    seriesPerRequest,
    // A whole number of requests' worth, so every request is one slice of it.
    totalSeries: Math.ceil(totalWanted / seriesPerRequest) * seriesPerRequest,
    vus,
    // VUs initialized before the start (at most VUS); when all are busy, an
    // iteration is dropped and k6 initializes one more, up to VUS.
    preVus: Math.min(vus, posInt('PRE_VUS', Math.min(vus, 50))),
    p99Ms: num('P99_MS', 500),
    maxFailedRate: num('MAX_FAILED_RATE', 0.01),
    // Unset: no threshold on iterations dropped because every VU was busy.
    maxDropped: env('MAX_DROPPED', undefined) === undefined ? undefined : num('MAX_DROPPED', 0),
    timeout: env('TIMEOUT', '10s'),
    cluster: env('CLUSTER_NAME', 'k6-loadtest'),
  };
  cfg.durationMs = parseDuration(cfg.duration);
  parseDuration(cfg.timeout);
  if (!(cfg.rate > 0)) throw new Error('RATE must be > 0');
  if (cfg.auth !== 'header' && cfg.auth !== 'basic') throw new Error(`AUTH=${cfg.auth}: use header or basic`);
  return cfg;
}

/** The thresholds every scenario has: see README.md "Thresholds". */
function baseThresholds(cfg) {
  const t = {
    http_req_failed: [`rate<${cfg.maxFailedRate}`],
    http_req_duration: [`p(99)<${cfg.p99Ms}`],
    checks: ['rate>0.99'],
  };
  if (cfg.maxDropped !== undefined) t.dropped_iterations = [`count<=${cfg.maxDropped}`];
  return t;
}

/** Kubernetes-like series: 20 metric names per pod, 50 pods per node, 2 nodes per namespace. */
function kubernetesTemplate(cfg) {
  return remote.precompileLabelTemplates({
    __name__: 'k6_container_metric_${series_id%20}',
    cluster_name: cfg.cluster,
    namespace: 'namespace-${series_id/2000}',
    node: 'node-${series_id/1000}',
    pod: 'pod-${series_id/20}',
    container: 'container-${series_id/20}',
    job: 'kubernetes-pods',
    instance: 'pod-${series_id/20}:9102',
  });
}

/** A remote-write client for one API key: header sts-api-key, or AUTH=basic (user apikey). */
function makeClient(cfg, key) {
  if (!key) throw new Error('no API key: set API_KEY (or API_KEYS for many-tenants), or run with --local');
  if (cfg.auth === 'basic') {
    const url = cfg.url.replace(/^(https?:\/\/)/, `$1apikey:${encodeURIComponent(key)}@`);
    return new remote.Client({ url, timeout: cfg.timeout });
  }
  return new remote.Client({ url: cfg.url, headers: { 'sts-api-key': key }, timeout: cfg.timeout });
}

// Samples in requests sent, and in requests answered 204: the latter's rate
// is the acknowledged samples/s.
const samplesSent = new Counter('samples_sent');
const samplesWritten = new Counter('samples_written');

let unexpectedLogged = 0;

/**
 * One remote-write request of SERIES_PER_REQUEST series: the k-th slice of
 * the TOTAL_SERIES series (wrapping around, so series repeat as in scrapes).
 */
function writeSlice(cfg, client, template, k, tags, expected) {
  const n = cfg.seriesPerRequest;
  const start = (k * n) % cfg.totalSeries;
  const res = client.storeFromPrecompiledTemplates(0, 100, Date.now(), start, start + n, template);
  samplesSent.add(n, tags);
  if (res.status === 204) samplesWritten.add(n, tags);
  if (!expected(res.status) && unexpectedLogged++ < 5) {
    const what = res.status ? `HTTP ${res.status} ${String(res.body || '').trim().slice(0, 200)}` : res.error;
    console.warn(`${tags && tags.tenant ? `tenant ${tags.tenant}: ` : ''}${what}`);
  }
  return res;
}
// ---- end of the shared settings ----

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

export const options = {
  scenarios: {
    many_tenants: {
      executor: 'constant-arrival-rate',
      rate: cfg.rate,
      timeUnit: '1s',
      duration: cfg.duration,
      preAllocatedVUs: cfg.preVus,
      maxVUs: cfg.vus,
    },
  },
  thresholds,
};

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
