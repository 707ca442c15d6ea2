// node --test loadtest/k6/test/ : the request encoding and the threshold logic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Client, precompileLabelTemplates, decompress } from '../lib/remotewrite.mjs';
import { Counter, evaluateThresholds, parseDuration, builtin } from '../lib/metrics.mjs';

// A minimal protobuf reader: [fieldNo, wireType, value] triples.
function* fields(buf) {
  let pos = 0;
  const varint = () => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++];
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
  };
  while (pos < buf.length) {
    const tag = varint();
    const no = Math.floor(tag / 8);
    const wt = tag & 7;
    if (wt === 0) yield [no, wt, varint()];
    else if (wt === 1) {
      yield [no, wt, buf.readDoubleLE(pos)];
      pos += 8;
    } else if (wt === 2) {
      const len = varint();
      yield [no, wt, buf.subarray(pos, pos + len)];
      pos += len;
    } else throw new Error(`wire type ${wt}`);
  }
}

function decodeWriteRequest(raw) {
  const out = [];
  for (const [no, , ts] of fields(raw)) {
    assert.equal(no, 1);
    const series = { labels: [], samples: [] };
    for (const [f, , v] of fields(ts)) {
      if (f === 1) {
        const l = {};
        for (const [lf, , lv] of fields(v)) l[lf === 1 ? 'name' : 'value'] = lv.toString('utf8');
        series.labels.push(l);
      } else if (f === 2) {
        const s = {};
        for (const [sf, , sv] of fields(v)) s[sf === 1 ? 'value' : 'timestamp'] = sv;
        series.samples.push(s);
      }
    }
    out.push(series);
  }
  return out;
}

async function capture(fn) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.statusCode = seen.length === 1 ? 204 : 429;
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://apikey:s3cret@127.0.0.1:${server.address().port}/receiver/prometheus/api/v1/write`;
  try {
    return { results: await fn(url), seen };
  } finally {
    server.close();
  }
}

test('precompiled templates expand series_id, /N and %N, labels sorted', () => {
  const tpl = precompileLabelTemplates({ pod: 'pod-${series_id/20}', __name__: 'm_${series_id%3}', id: '${series_id}', c: 'x' });
  assert.deepEqual(tpl.labelsOf(47), [
    { name: '__name__', value: 'm_2' },
    { name: 'c', value: 'x' },
    { name: 'id', value: '47' },
    { name: 'pod', value: 'pod-2' },
  ]);
});

test('a request is snappy-compressed remote-write 1.0 with the right headers', async () => {
  const tpl = precompileLabelTemplates({ __name__: 'k6_metric_${series_id%2}', pod: 'pod-${series_id}' });
  const ts = 1764000000123;
  const { results, seen } = await capture(async (url) => {
    const client = new Client({ url, headers: { 'sts-api-key': 'k' }, expectedStatuses: [204] });
    const a = await client.storeFromPrecompiledTemplates(5, 5, ts, 10, 13, tpl);
    const b = await client.store([{ labels: [{ name: '__name__', value: 'up' }], samples: [{ value: 1, timestamp: ts }] }]);
    client.close();
    return [a, b];
  });
  assert.equal(results[0].status, 204);
  assert.equal(results[1].status, 429);
  const h = seen[0].headers;
  assert.equal(h['content-type'], 'application/x-protobuf');
  assert.equal(h['content-encoding'], 'snappy');
  assert.equal(h['sts-api-key'], 'k');
  assert.equal(h.authorization, 'Basic ' + Buffer.from('apikey:s3cret').toString('base64'));
  const series = decodeWriteRequest(decompress(seen[0].body));
  assert.deepEqual(series.map((s) => s.labels), [10, 11, 12].map((id) => [
    { name: '__name__', value: `k6_metric_${id % 2}` },
    { name: 'pod', value: `pod-${id}` },
  ]));
  for (const s of series) assert.deepEqual(s.samples, [{ value: 5, timestamp: ts }]);
  // 429 was not expected for this client: one failed request of two.
  const failed = builtin.http_req_failed.values;
  assert.deepEqual(failed.slice(-2), [0, 1]);
});

test('thresholds: rates, percentiles, counts and tag selectors', () => {
  const c = new Counter('test_counter');
  c.add(3, { tenant: 'a' });
  c.add(2, { tenant: 'b' });
  const r = evaluateThresholds({
    'test_counter{tenant:a}': ['count==3'],
    'test_counter{tenant:c}': ['count==0'],
    test_counter: ['count>4', 'count<5'],
  });
  assert.deepEqual(r.map((x) => x.ok), [true, true, true, false]);
  assert.throws(() => evaluateThresholds({ nope: ['count>0'] }), /unknown metric/);
  assert.equal(parseDuration('1m30s'), 90000);
  assert.equal(parseDuration('250ms'), 250);
  assert.throws(() => parseDuration('20'), /cannot parse/);
});
