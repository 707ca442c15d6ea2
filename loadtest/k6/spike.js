// Spike: RATE requests/s, then within one second SPIKE_FACTOR times that for
// SPIKE_DURATION, back to RATE within one second, and RATE again until
// DURATION is over. Shows whether ingest absorbs a burst (Kafka batching,
// in-flight cap) and how fast latency recovers.
//
// A k6 script for k6 with k6/x/remotewrite (built by build-k6.sh, or with
// xk6-client-prometheus-remote; README.md).
//
//   RATE=40 SPIKE_FACTOR=5 SPIKE_DURATION=4s DURATION=20s SERIES_PER_REQUEST=100 VUS=150 P99_MS=500
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
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

const cfg = settings({ RATE: 40, VUS: 150 });
const factor = num('SPIKE_FACTOR', 5);
if (!(factor >= 1)) throw new Error('SPIKE_FACTOR must be >= 1');
const spikeMs = parseDuration(env('SPIKE_DURATION', '4s'));
const edgeMs = 1000;
const before = Math.max(1000, (cfg.durationMs - spikeMs - 2 * edgeMs) * 0.4);
const after = Math.max(1000, cfg.durationMs - before - spikeMs - 2 * edgeMs);
const peak = cfg.rate * factor;

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: cfg.rate,
      timeUnit: '1s',
      stages: [
        { duration: ms(before), target: cfg.rate },
        { duration: ms(edgeMs), target: peak },
        { duration: ms(spikeMs), target: peak },
        { duration: ms(edgeMs), target: cfg.rate },
        { duration: ms(after), target: cfg.rate },
      ],
      preAllocatedVUs: cfg.preVus,
      maxVUs: cfg.vus,
    },
  },
  thresholds: baseThresholds(cfg),
};

const client = makeClient(cfg, cfg.apiKey);
const template = kubernetesTemplate(cfg);

export default function () {
  const res = writeSlice(cfg, client, template, exec.scenario.iterationInTest, undefined, (s) => s === 204);
  check(res, { 'status is 204': (r) => r.status === 204 });
}
