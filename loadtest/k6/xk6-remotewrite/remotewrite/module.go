// Package remotewrite is this project's k6 extension "k6/x/remotewrite": a
// Prometheus remote-write 1.0 client for k6 scripts, with the script API of
// github.com/grafana/xk6-client-prometheus-remote (written anew here, see
// ../README.md "Compatibility"):
//
//	import remote from 'k6/x/remotewrite';
//	const client = new remote.Client({ url, headers, timeout, user_agent, tenant_name });
//	const tpl = remote.precompileLabelTemplates({ __name__: 'm_${series_id%10}', pod: 'pod-${series_id/4}' });
//	const res = client.storeFromPrecompiledTemplates(0, 100, Date.now(), 0, 100, tpl);
//	res.status, res.body, res.error, res.headers, res.timings
//
// Requests go through k6's own HTTP code (httpext.MakeRequest), so they
// emit k6's standard http_req_* metrics, honour k6's options (TLS, DNS,
// blocked hostnames, rps, throw, insecureSkipTLSVerify, ...) and count as
// failed in http_req_failed unless the answer is 2xx.
package remotewrite

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/grafana/sobek"
	"go.k6.io/k6/js/common"
	"go.k6.io/k6/js/modules"
	"go.k6.io/k6/lib/netext/httpext"

	"metrics-pipeline/loadtest/k6/xk6-remotewrite/wire"
)

// DefaultUserAgent is upstream's default User-Agent.
const DefaultUserAgent = "k6-remote-write/0.0.2"

func init() {
	modules.Register("k6/x/remotewrite", new(rootModule))
}

type rootModule struct{}

// NewModuleInstance is called once per VU.
func (*rootModule) NewModuleInstance(vu modules.VU) modules.Instance {
	return &instance{vu: vu}
}

type instance struct{ vu modules.VU }

// Exports: the named exports, and the same object as the default export
// (`import remote from 'k6/x/remotewrite'` and `import { Client } from ...`).
func (m *instance) Exports() modules.Exports {
	named := map[string]any{
		"Client":                   m.newClient,
		"Sample":                   m.newSample,
		"Timeseries":               m.newTimeseries,
		"precompileLabelTemplates": wire.CompileLabelTemplates,
	}
	return modules.Exports{Named: named, Default: named}
}

// Config is the Client's argument.
type Config struct {
	URL        string            `js:"url"`
	UserAgent  string            `js:"user_agent"`
	Timeout    string            `js:"timeout"`
	TenantName string            `js:"tenant_name"`
	Headers    map[string]string `js:"headers"`
}

// Client writes to one remote-write endpoint.
type Client struct {
	vu      modules.VU
	cfg     Config
	url     httpext.URL
	timeout time.Duration
}

func (m *instance) newClient(call sobek.ConstructorCall) *sobek.Object {
	rt := m.vu.Runtime()
	var cfg Config
	if len(call.Arguments) == 0 || sobek.IsUndefined(call.Argument(0)) || sobek.IsNull(call.Argument(0)) {
		common.Throw(rt, errors.New("Client constructor expects first argument to be Config"))
	}
	if err := rt.ExportTo(call.Argument(0), &cfg); err != nil {
		common.Throw(rt, fmt.Errorf("Client constructor expects first argument to be Config: %w", err))
	}
	c, err := newClient(m.vu, cfg)
	if err != nil {
		common.Throw(rt, err)
	}
	return rt.ToValue(c).ToObject(rt)
}

func newClient(vu modules.VU, cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("url is required")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", cfg.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("url %q: the scheme must be http or https", cfg.URL)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.Timeout == "" {
		cfg.Timeout = "10s"
	}
	timeout, err := time.ParseDuration(cfg.Timeout)
	if err != nil || timeout <= 0 {
		return nil, fmt.Errorf("timeout %q: not a positive duration such as 10s or 1m30s", cfg.Timeout)
	}
	// The name tag without credentials, as k6/http does for its URLs.
	name := u.Scheme + "://" + u.Host + u.Path
	hu, err := httpext.NewURL(cfg.URL, name)
	if err != nil {
		return nil, err
	}
	return &Client{vu: vu, cfg: cfg, url: hu, timeout: timeout}, nil
}

// newSample is `new remote.Sample(value, timestamp)`: a plain {value, timestamp} object.
func (m *instance) newSample(call sobek.ConstructorCall) *sobek.Object {
	rt := m.vu.Runtime()
	o := rt.NewObject()
	must(rt, o.Set("value", call.Argument(0).ToFloat()))
	must(rt, o.Set("timestamp", call.Argument(1).ToInteger()))
	return o
}

// newTimeseries is `new remote.Timeseries({name: value, ...}, [samples])`:
// a plain {labels: [{name, value}], samples} object.
func (m *instance) newTimeseries(call sobek.ConstructorCall) *sobek.Object {
	rt := m.vu.Runtime()
	var labels map[string]string
	if err := rt.ExportTo(call.Argument(0), &labels); err != nil {
		common.Throw(rt, fmt.Errorf("Timeseries: labels must be an object of strings: %w", err))
	}
	list := make([]any, 0, len(labels))
	for name, value := range labels {
		l := rt.NewObject()
		must(rt, l.Set("name", name))
		must(rt, l.Set("value", value))
		list = append(list, l)
	}
	o := rt.NewObject()
	must(rt, o.Set("labels", rt.NewArray(list...)))
	samples := call.Argument(1)
	if sobek.IsUndefined(samples) {
		samples = rt.NewArray()
	}
	must(rt, o.Set("samples", samples))
	return o
}

func must(rt *sobek.Runtime, err error) {
	if err != nil {
		common.Throw(rt, err)
	}
}

func nowMillis() int64 { return time.Now().UnixMilli() }

func valueBetween(minValue, maxValue float64) func() float64 {
	return func() float64 { return minValue + rand.Float64()*(maxValue-minValue) } //nolint:gosec // test data
}

// Store writes [{labels: [{name, value}], samples: [{value, timestamp}]}];
// a timestamp of 0 (or none) is now.
func (c *Client) Store(series []wire.Timeseries) (httpext.Response, error) {
	now := nowMillis()
	for i := range series {
		for j := range series[i].Samples {
			if series[i].Samples[j].Timestamp == 0 {
				series[i].Samples[j].Timestamp = now
			}
		}
	}
	return c.send(wire.EncodeWriteRequest(series))
}

// StoreFromTemplates is StoreFromPrecompiledTemplates compiling the template on every call.
func (c *Client) StoreFromTemplates(
	minValue, maxValue float64, timestamp int64, minSeriesID, maxSeriesID int, labels map[string]string,
) (httpext.Response, error) {
	t, err := wire.CompileLabelTemplates(labels)
	if err != nil {
		return *httpext.NewResponse(), err
	}
	return c.StoreFromPrecompiledTemplates(minValue, maxValue, timestamp, minSeriesID, maxSeriesID, t)
}

// StoreFromPrecompiledTemplates writes the series ids [minSeriesID,
// maxSeriesID), one sample each at timestamp (ms), values uniform in
// [minValue, maxValue).
func (c *Client) StoreFromPrecompiledTemplates(
	minValue, maxValue float64, timestamp int64, minSeriesID, maxSeriesID int, t *wire.LabelTemplates,
) (httpext.Response, error) {
	if t == nil {
		return *httpext.NewResponse(), errors.New("the template must come from precompileLabelTemplates()")
	}
	return c.send(wire.EncodeFromTemplates(t, minSeriesID, maxSeriesID, timestamp, valueBetween(minValue, maxValue)))
}

// StoreGenerated writes batch (1-based) of batches of upstream's generated series.
func (c *Client) StoreGenerated(totalSeries, batches, batchSize, batch int64) (httpext.Response, error) {
	series, err := wire.GenerateSeries(totalSeries, batches, batchSize, batch, nowMillis(), valueBetween(0, 100))
	if err != nil {
		return *httpext.NewResponse(), err
	}
	return c.send(wire.EncodeWriteRequest(series))
}

// ResponseCallback: what http_req_failed counts as expected (2xx), as upstream.
func ResponseCallback(status int) bool { return status/100 == 2 }

// send compresses and POSTs a WriteRequest through k6's HTTP code.
func (c *Client) send(raw []byte) (httpext.Response, error) {
	state := c.vu.State()
	if state == nil {
		return *httpext.NewResponse(), errors.New("remote-write requests cannot be made in the init context")
	}
	req, err := http.NewRequest(http.MethodPost, c.cfg.URL, nil)
	if err != nil {
		return *httpext.NewResponse(), err
	}
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
		}
	}
	// Forced over the configured headers, as upstream.
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.0.2")
	if c.cfg.TenantName != "" {
		req.Header.Set("X-Scope-OrgID", c.cfg.TenantName)
	}
	u := c.url
	res, err := httpext.MakeRequest(c.vu.Context(), state, &httpext.ParsedHTTPRequest{
		URL:              &u,
		Req:              req,
		Body:             bytes.NewBuffer(wire.Compress(raw)),
		Throw:            state.Options.Throw.Bool,
		Redirects:        state.Options.MaxRedirects,
		Timeout:          c.timeout,
		ResponseCallback: ResponseCallback,
		TagsAndMeta:      state.Tags.GetCurrentValues(),
	})
	if err != nil {
		return *httpext.NewResponse(), fmt.Errorf("remote-write request failed: %w", err)
	}
	// MakeRequest keeps a copy of the (binary) body for res.request.body; drop it.
	if res.Request != nil {
		res.Request.Body = ""
	}
	return *res, nil
}
