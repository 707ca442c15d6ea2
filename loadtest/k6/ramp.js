// Ramping arrival rate: from START_RATE up to RATE requests/s over the first
// half of DURATION, held for 30 %, then down to zero over the last 20 %.
// STAGES="30s:200,1m:200,30s:0" replaces that shape (DURATION:TARGET pairs,
// k6 stages; RATE and DURATION are then ignored).
//
// A k6 script for k6 with k6/x/remotewrite (built by build-k6.sh, or with
// xk6-client-prometheus-remote; README.md).
//
//   RATE=100 START_RATE=5 DURATION=20s SERIES_PER_REQUEST=100 VUS=100 P99_MS=500
import { arrivalRateOptions, env, ms, num, parseDuration, settings, writeIteration } from './lib.js';

/** "10s:100,20s:100,5s:0" -> [{duration: '10s', target: 100}, ...] (k6 stages). */
function parseStages(raw) {
  return String(raw)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const [duration, target] = s.split(':');
      parseDuration(duration);
      const t = Number(target);
      if (!isFinite(t) || t < 0) throw new Error(`STAGES: bad target in '${s}' (use DURATION:RATE)`);
      return { duration, target: t };
    });
}

const cfg = settings({ RATE: 100, VUS: 100 });
const startRate = num('START_RATE', Math.max(1, Math.round(cfg.rate / 20)));
const D = cfg.durationMs;
const stages = env('STAGES', '')
  ? parseStages(env('STAGES', ''))
  : [
      { duration: ms(D * 0.5), target: cfg.rate },
      { duration: ms(D * 0.3), target: cfg.rate },
      { duration: ms(D * 0.2), target: 0 },
    ];

export const options = arrivalRateOptions(cfg, 'ramp', {
  executor: 'ramping-arrival-rate',
  startRate,
  stages,
});

export default writeIteration(cfg);
