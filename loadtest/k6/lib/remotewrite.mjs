// Remote-write 1.0 client for the scenarios: the same API as the xk6 extension
// github.com/grafana/xk6-client-prometheus-remote (`k6/x/remotewrite`), so a
// scenario reads like a k6 script:
//
//   const client = new Client({ url, headers: { 'sts-api-key': KEY }, timeout: '10s' });
//   const tpl = precompileLabelTemplates({ __name__: 'cpu_${series_id%10}', pod: 'pod-${series_id/4}' });
//   const res = await client.storeFromPrecompiledTemplates(0, 100, Date.now(), 0, 100, tpl);
//
// Bodies are prometheus.WriteRequest protobuf, snappy block format, with the
// headers Prometheus sends (Content-Type application/x-protobuf,
// Content-Encoding snappy, X-Prometheus-Remote-Write-Version 0.1.0). Every
// request is timed and recorded in the runner's built-in http_* metrics.
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { recordHttp, parseDuration } from './metrics.mjs';

const require = createRequire(import.meta.url);
const snappy = require('snappyjs');

// ---------------------------------------------------------------- protobuf

function varintLen(n) {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(buf, pos, n) {
  while (n >= 0x80) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Length-delimited field: tag, length, bytes. */
function lenField(fieldNo, bytes) {
  const tag = (fieldNo << 3) | 2;
  const out = Buffer.allocUnsafe(1 + varintLen(bytes.length) + bytes.length);
  let pos = writeVarint(out, 0, tag);
  pos = writeVarint(out, pos, bytes.length);
  bytes.copy(out, pos);
  return out;
}

/** prometheus.Label { string name = 1; string value = 2; } as TimeSeries field 1. */
function encodeLabel(name, value) {
  const label = Buffer.concat([
    lenField(1, Buffer.from(name, 'utf8')),
    lenField(2, Buffer.from(value, 'utf8')),
  ]);
  return lenField(1, label);
}

/** The labels of one series, sorted by name, encoded once (TimeSeries fields 1). */
export function encodeLabels(labels) {
  const sorted = [...labels].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Buffer.concat(sorted.map((l) => encodeLabel(l.name, l.value)));
}

/** prometheus.Sample { double value = 1; int64 timestamp = 2; } as TimeSeries field 2. */
function encodeSample(value, timestampMs) {
  const ts = Math.trunc(timestampMs);
  if (ts < 0) throw new Error('negative timestamps are not supported');
  const inner = Buffer.allocUnsafe(9 + 1 + varintLen(ts));
  inner[0] = (1 << 3) | 1; // fixed64
  inner.writeDoubleLE(value, 1);
  inner[9] = (2 << 3) | 0; // varint
  const end = writeVarint(inner, 10, ts);
  return lenField(2, inner.subarray(0, end));
}

/** WriteRequest { repeated TimeSeries timeseries = 1; } from pre-encoded label blocks. */
export function encodeWriteRequest(series) {
  // series: [{ labels: Buffer (encoded), samples: [{value, timestamp}] }]
  const parts = [];
  for (const s of series) {
    const body = [s.labels];
    for (const smp of s.samples) body.push(encodeSample(smp.value, smp.timestamp));
    parts.push(lenField(1, Buffer.concat(body)));
  }
  return Buffer.concat(parts);
}

export function compress(raw) {
  return Buffer.from(snappy.compress(raw));
}

export function decompress(body) {
  return Buffer.from(snappy.uncompress(body));
}

// ---------------------------------------------------------------- templates

// "${series_id}", "${series_id/N}" (integer division), "${series_id%N}".
const VAR = /\$\{series_id(?:([/%])(\d+))?\}/g;

function compileValue(value) {
  const parts = [];
  let last = 0;
  for (const m of value.matchAll(VAR)) {
    if (m.index > last) parts.push(value.slice(last, m.index));
    const op = m[1];
    const n = m[2] === undefined ? 0 : Number(m[2]);
    if (op && n === 0) throw new Error(`template ${value}: division by zero`);
    parts.push(op === '/' ? (id) => Math.floor(id / n) : op === '%' ? (id) => id % n : (id) => id);
    last = m.index + m[0].length;
  }
  if (last < value.length) parts.push(value.slice(last));
  if (parts.every((p) => typeof p === 'string')) return () => value;
  return (id) => parts.map((p) => (typeof p === 'string' ? p : String(p(id)))).join('');
}

/**
 * Compiles a label template ({name: 'value with ${series_id...}'}) once. The
 * encoded labels of each series id are cached, so a request costs only the
 * samples and the compression.
 */
export function precompileLabelTemplates(template) {
  const names = Object.keys(template).sort();
  if (!names.includes('__name__')) throw new Error('a label template needs __name__');
  const values = names.map((n) => compileValue(String(template[n])));
  const cache = new Map();
  return {
    names,
    labelsOf(id) {
      return names.map((name, i) => ({ name, value: values[i](id) }));
    },
    encoded(id) {
      let enc = cache.get(id);
      if (enc === undefined) {
        enc = encodeLabels(this.labelsOf(id));
        cache.set(id, enc);
      }
      return enc;
    },
  };
}

// ---------------------------------------------------------------- client

/**
 * new Client({ url, headers?, timeout? = '10s', user_agent?, tenant_name?, tags?,
 *              expectedStatuses? })
 *
 * url may carry basic auth (http://apikey:KEY@host/...). tenant_name sets
 * X-Scope-OrgID as the extension does. tags are added to every http_* sample
 * of this client (e.g. { tenant: 'acme' }); thresholds can select them as
 * http_req_duration{tenant:acme}. expectedStatuses decides what counts as a
 * failure in http_req_failed (k6's http.setResponseCallback(http.expectedStatuses(...))):
 * a list of codes or {min, max} ranges, default [{min: 200, max: 399}].
 */
export class Client {
  constructor(config) {
    if (!config || !config.url) throw new Error('Client needs a url');
    const url = new URL(config.url);
    this.url = url;
    this.timeoutMs = parseDuration(config.timeout ?? '10s');
    this.tags = { ...(config.tags ?? {}) };
    this.expected = config.expectedStatuses ?? [{ min: 200, max: 399 }];
    this.headers = { ...(config.headers ?? {}) };
    if (url.username || url.password) {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      this.headers.Authorization = 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');
    }
    if (config.tenant_name) this.headers['X-Scope-OrgID'] = config.tenant_name;
    // Forced, as in the extension: remote-write 1.0.
    this.headers['Content-Type'] = 'application/x-protobuf';
    this.headers['Content-Encoding'] = 'snappy';
    this.headers['User-Agent'] = config.user_agent || 'metrics-pipeline-k6/1.0';
    this.headers['X-Prometheus-Remote-Write-Version'] = config.remote_write_version ?? '0.1.0';
    const mod = url.protocol === 'https:' ? https : http;
    this.transport = mod;
    this.agent = new mod.Agent({ keepAlive: true, maxSockets: Infinity });
  }

  isExpected(status) {
    return this.expected.some((e) =>
      typeof e === 'number' ? e === status : status >= e.min && status <= e.max,
    );
  }

  /** Writes [{labels: [{name, value}], samples: [{value, timestamp?}]}]. */
  store(timeseries) {
    const now = Date.now();
    const series = timeseries.map((ts) => ({
      labels: encodeLabels(ts.labels),
      samples: ts.samples.map((s) => ({ value: s.value, timestamp: s.timestamp ?? now })),
    }));
    const samples = series.reduce((n, s) => n + s.samples.length, 0);
    return this.post(compress(encodeWriteRequest(series)), samples);
  }

  /** Series ids [seriesIdStart, seriesIdEnd), one sample each, value uniform in [min, max]. */
  storeFromPrecompiledTemplates(minValue, maxValue, timestampMs, seriesIdStart, seriesIdEnd, template) {
    const series = [];
    for (let id = seriesIdStart; id < seriesIdEnd; id++) {
      const value = minValue + Math.random() * (maxValue - minValue);
      series.push({ labels: template.encoded(id), samples: [{ value, timestamp: timestampMs }] });
    }
    return this.post(compress(encodeWriteRequest(series)), series.length);
  }

  /** As storeFromPrecompiledTemplates, compiling the template on every call (slower). */
  storeFromTemplates(minValue, maxValue, timestampMs, seriesIdStart, seriesIdEnd, template) {
    return this.storeFromPrecompiledTemplates(
      minValue, maxValue, timestampMs, seriesIdStart, seriesIdEnd, precompileLabelTemplates(template),
    );
  }

  /** POSTs a compressed body; resolves (never rejects) to a k6-like response. */
  post(body, samples, extraTags) {
    return new Promise((resolve) => {
      let t0 = performance.now();
      let settled = false;
      let bytesIn = 0;
      const chunks = [];
      let timer;
      const finish = (status, headers, error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const duration = performance.now() - t0;
        const text = Buffer.concat(chunks).toString('utf8');
        const failed = !this.isExpected(status);
        recordHttp({
          duration,
          status,
          failed,
          bytesOut: body.length,
          bytesIn,
          tags: { ...this.tags, ...(extraTags ?? {}), status: String(status), expected_response: String(!failed) },
        });
        resolve({ status, headers: headers ?? {}, body: text, error: error ?? '', error_code: error ? 1000 : 0, timings: { duration }, samples });
      };
      const req = this.transport.request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { ...this.headers, 'Content-Length': body.length },
        },
        (res) => {
          res.on('data', (c) => {
            bytesIn += c.length;
            if (chunks.length < 16) chunks.push(c);
          });
          res.on('end', () => finish(res.statusCode, res.headers));
          res.on('error', (e) => finish(0, res.headers, e.message));
        },
      );
      // As k6's http_req_duration: sending + waiting + receiving, not connecting.
      req.on('socket', (sock) => {
        if (sock.connecting) sock.once('connect', () => { t0 = performance.now(); });
      });
      // A deadline for the whole request, as k6's timeout (not an idle timeout).
      timer = setTimeout(
        () => req.destroy(new Error(`request timeout after ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      req.on('error', (e) => finish(0, null, e.message));
      req.end(body);
    });
  }

  close() {
    this.agent.destroy();
  }
}

export default { Client, precompileLabelTemplates };
