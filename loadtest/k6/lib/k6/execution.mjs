// Stand-in for 'k6/execution': scenario, vu and instance information of the
// current iteration; vu.metrics.tags (and the older vu.tags) add tags to every
// later sample of this VU; test.abort() ends the run (exit code 108).
import { vu } from '../vu.mjs';

const scenario = {
  get name() { return vu.ctx?.scenario ?? ''; },
  get executor() { return vu.ctx?.executor ?? ''; },
  get startTime() { return vu.ctx?.startTime ?? 0; },
  get progress() { return vu.ctx?.progress ?? 0; },
  get iterationInInstance() { return vu.ctx?.iterationInTest ?? 0; },
  get iterationInTest() { return vu.ctx?.iterationInTest ?? 0; },
};

const vuInfo = {
  get idInInstance() { return vu.id; },
  get idInTest() { return vu.id; },
  get iterationInInstance() { return vu.iterationInInstance; },
  get iterationInScenario() { return vu.ctx?.iterationInScenario ?? 0; },
  get tags() { return vu.tags; },
  metrics: {
    get tags() { return vu.tags; },
    metadata: {},
  },
};

const instance = {
  get currentTestRunDuration() { return vu.startTime ? Date.now() - vu.startTime : 0; },
  iterationsCompleted: 0,
  iterationsInterrupted: 0,
  vusActive: 0,
  vusInitialized: 0,
};

export class AbortError extends Error {
  constructor(message) {
    super(message ?? 'test aborted');
    this.k6Abort = true;
  }
}

const test = {
  abort(message) {
    throw new AbortError(message);
  },
  get options() {
    return globalThis.__k6Options ?? {};
  },
};

export default { scenario, vu: vuInfo, instance, test };
export { scenario, vuInfo as vu, instance, test };
