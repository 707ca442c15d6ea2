// Metrics, checks and thresholds with k6's names and semantics:
//   Counter (count, rate), Rate (rate of non-zero values), Trend (avg, min,
//   med, max, p(N)), Gauge (value, min, max); submetrics by tag, e.g.
//   'http_req_duration{status:204}'; threshold expressions such as
//   'rate<0.01', 'p(99)<500', 'count==0'.

const registry = new Map(); // name -> Metric
let clock = { start: 0, end: 0 };

export function startClock() {
  clock = { start: performance.now(), end: 0 };
}

export function stopClock() {
  if (!clock.end) clock.end = performance.now();
}

/** Seconds the run lasted (for per-second rates). */
export function elapsedSeconds() {
  const end = clock.end || performance.now();
  return Math.max((end - clock.start) / 1000, 1e-9);
}

export function parseDuration(d) {
  if (typeof d === 'number') return d; // milliseconds
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  let matched = '';
  for (const m of String(d).matchAll(re)) {
    total += Number(m[1]) * unit[m[2]];
    matched += m[0];
  }
  if (!matched || matched !== String(d).replace(/\s+/g, '')) {
    throw new Error(`cannot parse duration '${d}' (use e.g. 500ms, 20s, 1m30s)`);
  }
  return total;
}

class Metric {
  constructor(name, type, isTime = false) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad metric name '${name}'`);
    const existing = registry.get(name);
    if (existing) {
      if (existing.type !== type) throw new Error(`metric ${name} exists with type ${existing.type}`);
      return existing;
    }
    this.name = name;
    this.type = type;
    this.isTime = isTime;
    this.values = [];
    this.tags = [];
    registry.set(name, this);
  }

  add(value, tags) {
    this.values.push(Number(value));
    this.tags.push(tags ?? null);
  }
}

export class Counter extends Metric {
  constructor(name) {
    super(name, 'counter');
  }
}

export class Rate extends Metric {
  constructor(name) {
    super(name, 'rate');
  }

  add(value, tags) {
    super.add(value ? 1 : 0, tags);
  }
}

export class Trend extends Metric {
  constructor(name, isTime = false) {
    super(name, 'trend', isTime);
  }
}

export class Gauge extends Metric {
  constructor(name) {
    super(name, 'gauge');
  }
}

// Built-in metrics, as k6 names them.
export const builtin = {
  http_reqs: new Counter('http_reqs'),
  http_req_duration: new Trend('http_req_duration', true),
  http_req_failed: new Rate('http_req_failed'),
  data_sent: new Counter('data_sent'),
  data_received: new Counter('data_received'),
  iterations: new Counter('iterations'),
  iteration_duration: new Trend('iteration_duration', true),
  dropped_iterations: new Counter('dropped_iterations'),
  checks: new Rate('checks'),
  vus: new Gauge('vus'),
  vus_max: new Gauge('vus_max'),
};

let commonTags = {};

/** Tags added to every sample (the runner sets {scenario}). */
export function setCommonTags(tags) {
  commonTags = { ...tags };
}

function withCommon(tags) {
  return tags ? { ...commonTags, ...tags } : { ...commonTags };
}

export function recordHttp({ duration, status, failed, bytesOut, bytesIn, tags }) {
  const t = withCommon(tags);
  builtin.http_reqs.add(1, t);
  builtin.http_req_duration.add(duration, t);
  builtin.http_req_failed.add(failed, t);
  builtin.data_sent.add(bytesOut, t);
  builtin.data_received.add(bytesIn, t);
}

const checkCounts = new Map(); // name -> {pass, fail}

/** k6's check(): every predicate is one sample of the checks Rate. */
export function check(value, checks, tags) {
  let all = true;
  for (const [name, fn] of Object.entries(checks)) {
    let ok;
    try {
      ok = Boolean(typeof fn === 'function' ? fn(value) : fn);
    } catch {
      ok = false;
    }
    builtin.checks.add(ok, withCommon({ ...(tags ?? {}), check: name }));
    const c = checkCounts.get(name) ?? { pass: 0, fail: 0 };
    ok ? c.pass++ : c.fail++;
    checkCounts.set(name, c);
    all &&= ok;
  }
  return all;
}

export function addSample(metric, value, tags) {
  metric.add(value, withCommon(tags));
}

// ---------------------------------------------------------------- aggregation

function parseSelector(sel) {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\{(.*)\})?$/.exec(sel.trim());
  if (!m) throw new Error(`bad metric selector '${sel}'`);
  const filter = {};
  if (m[2] !== undefined) {
    for (const part of m[2].split(',')) {
      const i = part.indexOf(':');
      if (i < 0) throw new Error(`bad tag filter '${part}' in '${sel}' (use name{tag:value})`);
      filter[part.slice(0, i).trim()] = part.slice(i + 1).trim();
    }
  }
  return { name: m[1], filter };
}

function selectValues(metric, filter) {
  const keys = Object.keys(filter);
  if (keys.length === 0) return metric.values;
  const out = [];
  for (let i = 0; i < metric.values.length; i++) {
    const t = metric.tags[i];
    if (t && keys.every((k) => String(t[k]) === filter[k])) out.push(metric.values[i]);
  }
  return out;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  // Linear interpolation between closest ranks, as k6 does.
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** Every aggregate a threshold or the summary may ask for. */
export function aggregate(type, values) {
  const n = values.length;
  let sum = 0;
  for (const v of values) sum += v;
  switch (type) {
    case 'counter':
      return { count: sum, rate: sum / elapsedSeconds() };
    case 'rate':
      return { rate: n ? sum / n : 0, passes: sum, fails: n - sum, total: n };
    case 'gauge': {
      if (!n) return { value: 0, min: 0, max: 0 };
      return { value: values[n - 1], min: Math.min(...values), max: Math.max(...values) };
    }
    case 'trend': {
      const sorted = Float64Array.from(values).sort();
      return {
        count: n,
        avg: n ? sum / n : 0,
        min: n ? sorted[0] : 0,
        med: percentile(sorted, 50),
        max: n ? sorted[n - 1] : 0,
        'p(90)': percentile(sorted, 90),
        'p(95)': percentile(sorted, 95),
        'p(99)': percentile(sorted, 99),
        _sorted: sorted,
      };
    }
    default:
      throw new Error(`unknown metric type ${type}`);
  }
}

function aggregateSelector(sel) {
  const { name, filter } = parseSelector(sel);
  const metric = registry.get(name);
  if (!metric) return { metric: null, agg: null };
  return { metric, agg: aggregate(metric.type, selectValues(metric, filter)) };
}

// ---------------------------------------------------------------- thresholds

const OPS = {
  '<': (a, b) => a < b,
  '<=': (a, b) => a <= b,
  '>': (a, b) => a > b,
  '>=': (a, b) => a >= b,
  '==': (a, b) => a === b,
  '===': (a, b) => a === b,
  '!=': (a, b) => a !== b,
};

function evalExpression(metric, agg, expr) {
  const m = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/.exec(expr);
  if (!m) throw new Error(`bad threshold expression '${expr}'`);
  const [, aggName, op, lit] = m;
  let actual;
  const pm = /^p\((\d+(?:\.\d+)?)\)$/.exec(aggName);
  if (pm && metric.type === 'trend') actual = percentile(agg._sorted, Number(pm[1]));
  else actual = agg[aggName];
  if (actual === undefined) {
    throw new Error(`threshold '${expr}': ${metric.type} metric ${metric.name} has no '${aggName}'`);
  }
  return { aggName, actual, ok: OPS[op](actual, Number(lit)) };
}

/**
 * Evaluates options.thresholds ({ 'metric{tag:v}': ['expr', ...] }). A metric
 * that got no sample is compared with zero values, as k6 does.
 */
export function evaluateThresholds(thresholds) {
  const results = [];
  for (const [sel, exprs] of Object.entries(thresholds ?? {})) {
    let { metric, agg } = aggregateSelector(sel);
    if (!metric) throw new Error(`threshold on unknown metric '${sel}' (define it in the script)`);
    for (const e of exprs) {
      const expr = typeof e === 'string' ? e : e.threshold;
      const r = evalExpression(metric, agg, expr);
      results.push({ selector: sel, expr, ...r, type: metric.type, isTime: metric.isTime });
    }
  }
  return results;
}

// ---------------------------------------------------------------- summary

function fmtDuration(ms) {
  if (ms >= 60000) return `${Math.floor(ms / 60000)}m${((ms % 60000) / 1000).toFixed(1)}s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`;
  if (ms >= 1) return `${ms.toFixed(2)}ms`;
  return `${(ms * 1000).toFixed(2)}µs`;
}

function fmtBytes(b) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) {
    b /= 1000;
    i++;
  }
  return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function fmtNum(x) {
  if (Number.isInteger(x)) return String(x);
  return x >= 100 ? x.toFixed(1) : x.toFixed(2);
}

function fmtValue(actual, isTime, aggName, type) {
  if (isTime) return fmtDuration(actual);
  if (type === 'rate' && aggName === 'rate') return `${(actual * 100).toFixed(2)}%`;
  return fmtNum(actual);
}

function metricLine(name, metric, agg) {
  const label = `${name} `.padEnd(40, '.') + ':';
  switch (metric.type) {
    case 'counter': {
      const bytes = name.startsWith('data_');
      const count = bytes ? fmtBytes(agg.count) : fmtNum(agg.count);
      const rate = bytes ? `${fmtBytes(agg.rate)}/s` : `${fmtNum(agg.rate)}/s`;
      return `${label} ${count.padEnd(10)} ${rate}`;
    }
    case 'rate':
      return `${label} ${(agg.rate * 100).toFixed(2)}%  ${agg.passes} out of ${agg.total}`;
    case 'gauge':
      return `${label} ${fmtNum(agg.value)}  min=${fmtNum(agg.min)} max=${fmtNum(agg.max)}`;
    case 'trend': {
      const f = metric.isTime ? fmtDuration : fmtNum;
      return (
        `${label} avg=${f(agg.avg)} min=${f(agg.min)} med=${f(agg.med)} max=${f(agg.max)} ` +
        `p(90)=${f(agg['p(90)'])} p(95)=${f(agg['p(95)'])} p(99)=${f(agg['p(99)'])}`
      );
    }
    default:
      return label;
  }
}

/** The end-of-test summary (text) and the same numbers as a JSON-able object. */
export function summarize({ header, thresholds, results }) {
  const lines = [];
  const json = { metrics: {}, thresholds: {}, checks: {} };
  lines.push('', ...header.map((h) => `  ${h}`), '');

  if (results.length) {
    lines.push('  THRESHOLDS', '');
    let last = null;
    for (const r of results) {
      if (r.selector !== last) lines.push(`    ${r.selector}`);
      last = r.selector;
      const mark = r.ok ? '✓' : '✗';
      lines.push(`    ${mark} '${r.expr}' ${r.aggName}=${fmtValue(r.actual, r.isTime, r.aggName, r.type)}`);
      json.thresholds[`${r.selector}: ${r.expr}`] = { ok: r.ok, actual: r.actual };
    }
    lines.push('');
  }

  if (checkCounts.size) {
    lines.push('  CHECKS', '');
    for (const [name, c] of checkCounts) {
      const total = c.pass + c.fail;
      lines.push(`    ${c.fail ? '✗' : '✓'} ${name}  ${c.pass} / ${total}`);
      json.checks[name] = c;
    }
    lines.push('');
  }

  lines.push('  METRICS', '');
  const shown = new Set();
  const names = [...registry.keys()].sort();
  for (const name of names) {
    const metric = registry.get(name);
    if (metric.values.length === 0 && !Object.keys(thresholds ?? {}).some((s) => parseSelector(s).name === name)) {
      continue;
    }
    const agg = aggregate(metric.type, metric.values);
    lines.push(`    ${metricLine(name, metric, agg)}`);
    const { _sorted, ...plain } = agg;
    json.metrics[name] = { type: metric.type, ...plain };
    shown.add(name);
    // Submetrics named by thresholds, indented under their metric.
    for (const sel of Object.keys(thresholds ?? {})) {
      const { name: n, filter } = parseSelector(sel);
      if (n !== name || Object.keys(filter).length === 0) continue;
      const sub = aggregate(metric.type, selectValues(metric, filter));
      const subName = `  { ${Object.entries(filter).map(([k, v]) => `${k}:${v}`).join(', ')} }`;
      lines.push(`    ${metricLine(subName, metric, sub)}`);
      const { _sorted: _s, ...subPlain } = sub;
      json.metrics[sel] = { type: metric.type, ...subPlain };
    }
  }
  lines.push('');
  return { text: lines.join('\n'), json };
}

export function metricByName(name) {
  return registry.get(name);
}

/** The metric of this name, created with the given type if it is new. */
export function metricFor(name, type, isTime = false) {
  const m = registry.get(name);
  if (m) return m;
  switch (type) {
    case 'counter':
      return new Counter(name);
    case 'rate':
      return new Rate(name);
    case 'trend':
      return new Trend(name, isTime);
    case 'gauge':
      return new Gauge(name);
    default:
      throw new Error(`unknown metric type ${type}`);
  }
}

/** A check result reported by a VU (its sample in `checks` comes separately). */
export function countCheck(name, ok) {
  const c = checkCounts.get(name) ?? { pass: 0, fail: 0 };
  ok ? c.pass++ : c.fail++;
  checkCounts.set(name, c);
}
