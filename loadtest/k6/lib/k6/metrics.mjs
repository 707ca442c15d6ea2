// Stand-in for 'k6/metrics': Counter, Rate, Trend, Gauge. In a VU the samples
// go to the runner with the iteration's results; on the main thread the
// constructor only registers the metric (its type, for thresholds).
import { Counter as C, Rate as R, Trend as T, Gauge as G } from '../metrics.mjs';
import { emit, requireVU } from '../vu.mjs';

function make(Base, type) {
  return class {
    constructor(name, isTime = false) {
      this.name = name;
      this.isTime = Boolean(isTime);
      new Base(name, this.isTime); // registers (or finds) it in this thread
    }

    add(value, tags) {
      requireVU('adding to a metric');
      let v = value;
      if (type === 'rate') v = value ? 1 : 0;
      emit(this.name, type, this.isTime, v, tags);
      return true;
    }
  };
}

export const Counter = make(C, 'counter');
export const Rate = make(R, 'rate');
export const Trend = make(T, 'trend');
export const Gauge = make(G, 'gauge');
export default { Counter, Rate, Trend, Gauge };
