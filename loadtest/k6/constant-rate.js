// Constant arrival rate: RATE requests per second for DURATION, each request
// SERIES_PER_REQUEST Kubernetes-like series (one sample each), whatever the
// answers' latency (open model: a request that finds all VUS busy is dropped
// and counted in dropped_iterations).
//
// A k6 script for k6 with k6/x/remotewrite (built by build-k6.sh, or with
// xk6-client-prometheus-remote):
//   k6 run -e INGEST_URL=... -e API_KEY=... constant-rate.js
// or through `bench k6` (`make k6`, README.md).
//
//   RATE=50 DURATION=20s SERIES_PER_REQUEST=100 VUS=50 P99_MS=500
import { check } from 'k6';
import exec from 'k6/execution';
import { baseThresholds, kubernetesTemplate, makeClient, settings, writeSlice } from './lib.js';

const cfg = settings({ RATE: 50, VUS: 50 });

export const options = {
  scenarios: {
    constant_rate: {
      executor: 'constant-arrival-rate',
      rate: cfg.rate,
      timeUnit: '1s',
      duration: cfg.duration,
      preAllocatedVUs: cfg.preVus,
      maxVUs: cfg.vus,
    },
  },
  thresholds: baseThresholds(cfg),
};

// Init context: every VU has its own client and compiled template.
const client = makeClient(cfg, cfg.apiKey);
const template = kubernetesTemplate(cfg);

export default function () {
  const res = writeSlice(cfg, client, template, exec.scenario.iterationInTest, undefined, (s) => s === 204);
  check(res, { 'status is 204': (r) => r.status === 204 });
}
