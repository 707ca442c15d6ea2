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
import { arrivalRateOptions, settings, writeIteration } from './lib.js';

const cfg = settings({ RATE: 50, VUS: 50 });

export const options = arrivalRateOptions(cfg, 'constant_rate', {
  executor: 'constant-arrival-rate',
  rate: cfg.rate,
  duration: cfg.duration,
});

export default writeIteration(cfg);
