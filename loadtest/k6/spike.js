// Spike: RATE requests/s, then within one second SPIKE_FACTOR times that for
// SPIKE_DURATION, back to RATE within one second, and RATE again until
// DURATION is over. Shows whether ingest absorbs a burst (Kafka batching,
// in-flight cap) and how fast latency recovers.
//
// A k6 script for k6 with k6/x/remotewrite (built by build-k6.sh, or with
// xk6-client-prometheus-remote; README.md).
//
//   RATE=40 SPIKE_FACTOR=5 SPIKE_DURATION=4s DURATION=20s SERIES_PER_REQUEST=100 VUS=150 P99_MS=500
import { arrivalRateOptions, env, ms, num, parseDuration, settings, writeIteration } from './lib.js';

const cfg = settings({ RATE: 40, VUS: 150 });
const factor = num('SPIKE_FACTOR', 5);
if (!(factor >= 1)) throw new Error('SPIKE_FACTOR must be >= 1');
const spikeMs = parseDuration(env('SPIKE_DURATION', '4s'));
const edgeMs = 1000;
const before = Math.max(1000, (cfg.durationMs - spikeMs - 2 * edgeMs) * 0.4);
const after = Math.max(1000, cfg.durationMs - before - spikeMs - 2 * edgeMs);
const peak = cfg.rate * factor;

export const options = arrivalRateOptions(cfg, 'spike', {
  executor: 'ramping-arrival-rate',
  startRate: cfg.rate,
  stages: [
    { duration: ms(before), target: cfg.rate },
    { duration: ms(edgeMs), target: peak },
    { duration: ms(spikeMs), target: peak },
    { duration: ms(edgeMs), target: cfg.rate },
    { duration: ms(after), target: cfg.rate },
  ],
});

export default writeIteration(cfg);
