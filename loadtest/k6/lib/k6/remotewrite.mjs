// Stand-in for 'k6/x/remotewrite' (github.com/grafana/xk6-client-prometheus-remote):
//
//   import remote from 'k6/x/remotewrite';
//   const client = new remote.Client({ url, headers, timeout, user_agent, tenant_name });
//   const tpl = remote.precompileLabelTemplates({ __name__: 'm_${series_id%10}', pod: 'pod-${series_id/4}' });
//   const res = client.storeFromPrecompiledTemplates(0, 100, Date.now(), 0, 100, tpl); // synchronous
//   res.status, res.headers, res.body, res.error
//
// As the extension: the body is a snappy-compressed remote-write 1.0
// WriteRequest; Content-Encoding, Content-Type, User-Agent (default
// k6-remote-write/0.0.2) and X-Prometheus-Remote-Write-Version 0.0.2 are
// forced over `headers`; tenant_name sets X-Scope-OrgID; basic auth comes from
// the URL; a request counts as failed in http_req_failed unless the answer is
// 2xx (the extension's own response callback; http.setResponseCallback does
// not apply to it). The encoding runs in the VU; the request itself is made
// by the runner's main thread while the VU waits (see lib/vu.mjs).
import {
  precompileLabelTemplates as compile,
  encodeLabels,
  encodeWriteRequest,
  compress,
} from '../remotewrite.mjs';
import { parseDuration } from '../metrics.mjs';
import { callMain } from '../vu.mjs';

export function precompileLabelTemplates(template) {
  return compile(template);
}

export class Client {
  constructor(config) {
    if (!config || typeof config !== 'object') throw new Error('Client constructor expects first argument to be Config');
    if (!config.url) throw new Error('url is required');
    new URL(config.url); // throws on a bad URL, here rather than per request
    this.config = {
      url: String(config.url),
      headers: { ...(config.headers ?? {}) },
      timeout: config.timeout || '10s',
      user_agent: config.user_agent || 'k6-remote-write/0.0.2',
      tenant_name: config.tenant_name || '',
    };
    this.timeoutMs = parseDuration(this.config.timeout);
  }

  /** [{labels: [{name, value}], samples: [{value, timestamp}]}]; timestamp 0 or missing = now. */
  store(timeseries) {
    const now = Date.now();
    const series = timeseries.map((ts) => ({
      labels: encodeLabels(ts.labels),
      samples: ts.samples.map((s) => ({ value: s.value, timestamp: s.timestamp || now })),
    }));
    return this.send(compress(encodeWriteRequest(series)));
  }

  storeFromTemplates(minValue, maxValue, timestamp, seriesIdStart, seriesIdEnd, template) {
    return this.storeFromPrecompiledTemplates(
      minValue, maxValue, timestamp, seriesIdStart, seriesIdEnd, compile(template),
    );
  }

  /** Series ids [seriesIdStart, seriesIdEnd), one sample each, value uniform in [min, max). */
  storeFromPrecompiledTemplates(minValue, maxValue, timestamp, seriesIdStart, seriesIdEnd, template) {
    if (!template || typeof template.encoded !== 'function') {
      throw new Error('storeFromPrecompiledTemplates: the template must come from precompileLabelTemplates()');
    }
    const series = [];
    for (let id = seriesIdStart; id < seriesIdEnd; id++) {
      const value = minValue + Math.random() * (maxValue - minValue);
      series.push({ labels: template.encoded(id), samples: [{ value, timestamp }] });
    }
    return this.send(compress(encodeWriteRequest(series)));
  }

  storeGenerated() {
    throw new Error('storeGenerated() is not implemented by the k6 stand-in runner');
  }

  send(body) {
    // The main thread enforces the timeout; the margin only guards a stuck runner.
    return callMain({ type: 'http', config: this.config, body }, this.timeoutMs + 30000);
  }
}

export function Sample(value, timestamp) {
  return { value, timestamp };
}

export function Timeseries(labels, samples) {
  return { labels: Object.entries(labels).map(([name, value]) => ({ name, value })), samples };
}

export default { Client, Sample, Timeseries, precompileLabelTemplates };
