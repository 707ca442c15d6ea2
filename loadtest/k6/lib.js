// What the four scenarios share: their settings (environment or -e), the
// thresholds every one has, their arrival-rate options, the Kubernetes-like
// series template, a client per API key, one remote-write request of a slice
// of the series, and the iteration of the scenarios with one API key. A scenario
// imports it with `import { ... } from './lib.js'` (k6 resolves the path
// relative to the script), so real k6 runs the scenarios unchanged.
import { check } from 'k6';
import exec from 'k6/execution';
import remote from 'k6/x/remotewrite';
import { Counter } from 'k6/metrics';

export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

export function num(name, fallback) {
  const raw = env(name, undefined);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!isFinite(n) || n < 0) throw new Error(`${name}=${raw} is not a non-negative number`);
  return n;
}

export function posInt(name, fallback) {
  const n = num(name, fallback);
  if (Math.floor(n) !== n || n < 1) throw new Error(`${name}=${n} must be a positive integer`);
  return n;
}

/** k6 duration text ("90s", "1m30s", "500ms") in milliseconds. */
export function parseDuration(d) {
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
export function ms(d) {
  const r = Math.max(1, Math.round(d));
  return r % 1000 === 0 ? `${r / 1000}s` : `${r}ms`;
}

export function settings(defaults) {
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
export function baseThresholds(cfg) {
  const t = {
    http_req_failed: [`rate<${cfg.maxFailedRate}`],
    http_req_duration: [`p(99)<${cfg.p99Ms}`],
    checks: ['rate>0.99'],
  };
  if (cfg.maxDropped !== undefined) t.dropped_iterations = [`count<=${cfg.maxDropped}`];
  return t;
}

/**
 * The options of a scenario run by one arrival-rate executor: `scenario` holds
 * the executor and its rate or stages; the time unit (1 s) and the VUs come
 * from here, the thresholds are the base ones unless given.
 */
export function arrivalRateOptions(cfg, name, scenario, thresholds = baseThresholds(cfg)) {
  return {
    scenarios: {
      [name]: { ...scenario, timeUnit: '1s', preAllocatedVUs: cfg.preVus, maxVUs: cfg.vus },
    },
    thresholds,
  };
}

/**
 * The iteration of a scenario with one API key: a write of the k-th slice of
 * the Kubernetes-like series, expected to be answered 204. Called in the init
 * context, so that every VU has its own client and compiled template.
 */
export function writeIteration(cfg) {
  const client = makeClient(cfg, cfg.apiKey);
  const template = kubernetesTemplate(cfg);
  return function () {
    const res = writeSlice(cfg, client, template, exec.scenario.iterationInTest, undefined, (s) => s === 204);
    check(res, { 'status is 204': (r) => r.status === 204 });
  };
}

/** Kubernetes-like series: 20 metric names per pod, 50 pods per node, 2 nodes per namespace. */
export function kubernetesTemplate(cfg) {
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
export function makeClient(cfg, key) {
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
export function writeSlice(cfg, client, template, k, tags, expected) {
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
