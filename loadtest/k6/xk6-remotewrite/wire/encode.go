// Package wire is the remote-write 1.0 wire format of the k6/x/remotewrite
// extension (package remotewrite): WriteRequest encoding, label templates,
// snappy. It depends on nothing of k6, so its tests build in seconds.
package wire

// Remote-write 1.0 wire format, written by hand with protowire (no generated
// code, no dependency beyond what k6 itself already uses):
//
//	message WriteRequest { repeated TimeSeries timeseries = 1; }
//	message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//	message Label        { string name = 1; string value = 2; }
//	message Sample       { double value = 1; int64 timestamp = 2; }
//
// Every field is written, zero values included (proto3 decoders accept
// that). The body is snappy block format (s2.EncodeSnappy writes plain
// snappy, not S2).

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"
)

// Label is a label name and value.
type Label struct {
	Name  string `js:"name"`
	Value string `js:"value"`
}

// Sample is a value at a timestamp in milliseconds since the epoch.
type Sample struct {
	Value     float64 `js:"value"`
	Timestamp int64   `js:"timestamp"`
}

// Timeseries is one series and its samples.
type Timeseries struct {
	Labels  []Label  `js:"labels"`
	Samples []Sample `js:"samples"`
}

const (
	fieldTimeseries = 1 // WriteRequest.timeseries
	fieldLabels     = 1 // TimeSeries.labels
	fieldSamples    = 2 // TimeSeries.samples
	fieldName       = 1 // Label.name
	fieldValue      = 2 // Label.value
	fieldSampleVal  = 1 // Sample.value
	fieldTimestamp  = 2 // Sample.timestamp
)

func labelSize(name, value int) int {
	return protowire.SizeTag(fieldName) + protowire.SizeBytes(name) +
		protowire.SizeTag(fieldValue) + protowire.SizeBytes(value)
}

func sampleSize(timestamp int64) int {
	return protowire.SizeTag(fieldSampleVal) + protowire.SizeFixed64() +
		protowire.SizeTag(fieldTimestamp) + protowire.SizeVarint(uint64(timestamp)) //nolint:gosec // int64 as varint, as protobuf does
}

func appendLabel(b []byte, name, value []byte) []byte {
	b = protowire.AppendTag(b, fieldLabels, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(labelSize(len(name), len(value))))
	b = protowire.AppendTag(b, fieldName, protowire.BytesType)
	b = protowire.AppendBytes(b, name)
	b = protowire.AppendTag(b, fieldValue, protowire.BytesType)
	return protowire.AppendBytes(b, value)
}

func appendSample(b []byte, s Sample) []byte {
	b = protowire.AppendTag(b, fieldSamples, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(sampleSize(s.Timestamp)))
	b = protowire.AppendTag(b, fieldSampleVal, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(s.Value))
	b = protowire.AppendTag(b, fieldTimestamp, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(s.Timestamp)) //nolint:gosec // int64 as varint, as protobuf does
}

// AppendTimeseries appends one WriteRequest.timeseries field. Labels are
// written sorted by name (remote write requires it; the caller's slice is
// not modified).
func AppendTimeseries(b []byte, ts Timeseries) []byte {
	labels := ts.Labels
	if !slices.IsSortedFunc(labels, cmpLabel) {
		labels = slices.SortedFunc(slices.Values(labels), cmpLabel)
	}
	size := 0
	for _, l := range labels {
		size += protowire.SizeTag(fieldLabels) + protowire.SizeBytes(labelSize(len(l.Name), len(l.Value)))
	}
	for _, s := range ts.Samples {
		size += protowire.SizeTag(fieldSamples) + protowire.SizeBytes(sampleSize(s.Timestamp))
	}
	b = protowire.AppendTag(b, fieldTimeseries, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	for _, l := range labels {
		b = appendLabel(b, []byte(l.Name), []byte(l.Value))
	}
	for _, s := range ts.Samples {
		b = appendSample(b, s)
	}
	return b
}

func cmpLabel(a, b Label) int { return strings.Compare(a.Name, b.Name) }

// EncodeWriteRequest encodes a WriteRequest of the given series (uncompressed).
func EncodeWriteRequest(series []Timeseries) []byte {
	var b []byte
	for _, ts := range series {
		b = AppendTimeseries(b, ts)
	}
	return b
}

// Compress is snappy block format, as remote write requires.
func Compress(raw []byte) []byte {
	return s2.EncodeSnappy(nil, raw)
}

// ---------------------------------------------------------------- label templates

// A template value is literal text with ${series_id}, ${series_id/N}
// (integer division) or ${series_id%N} in it, any number of times. Other
// "${...}" text stays literal.
type part struct {
	lit string
	op  byte // 0: literal; 'i': id; '/': id/n; '%': id%n
	n   int
}

type valueTemplate []part

func compileValue(v string) (valueTemplate, error) {
	const open = "${series_id"
	var parts valueTemplate
	for {
		i := strings.Index(v, open)
		if i < 0 {
			if v != "" {
				parts = append(parts, part{lit: v})
			}
			return parts, nil
		}
		if i > 0 {
			parts = append(parts, part{lit: v[:i]})
		}
		rest := v[i+len(open):]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, errors.New("no closing bracket in template")
		}
		expr := rest[:end]
		switch {
		case expr == "":
			parts = append(parts, part{op: 'i'})
		case expr[0] == '/' || expr[0] == '%':
			n, err := strconv.Atoi(expr[1:])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("%q: the divisor must be a positive integer", open+expr+"}")
			}
			parts = append(parts, part{op: expr[0], n: n})
		default:
			return nil, fmt.Errorf("unsupported template %q (use ${series_id}, ${series_id/N} or ${series_id%%N})", open+expr+"}")
		}
		v = rest[end+1:]
	}
}

func (t valueTemplate) appendValue(b []byte, id int) []byte {
	for _, p := range t {
		switch p.op {
		case 0:
			b = append(b, p.lit...)
		case 'i':
			b = strconv.AppendInt(b, int64(id), 10)
		case '/':
			b = strconv.AppendInt(b, int64(id/p.n), 10)
		case '%':
			b = strconv.AppendInt(b, int64(id%p.n), 10)
		}
	}
	return b
}

// LabelTemplates are compiled label templates, sorted by label name. Opaque
// to scripts (as upstream's); safe for concurrent use.
type LabelTemplates struct {
	names  []string
	values []valueTemplate
}

// CompileLabelTemplates compiles {name: value template}.
func CompileLabelTemplates(labels map[string]string) (*LabelTemplates, error) {
	names := make([]string, 0, len(labels))
	for name := range labels {
		names = append(names, name)
	}
	slices.Sort(names)
	t := &LabelTemplates{names: names, values: make([]valueTemplate, len(names))}
	for i, name := range names {
		v, err := compileValue(labels[name])
		if err != nil {
			return nil, fmt.Errorf("label %s: template %q: %w", name, labels[name], err)
		}
		t.values[i] = v
	}
	return t, nil
}

// Labels renders the labels of one series id (sorted by name).
func (t *LabelTemplates) Labels(id int) []Label {
	out := make([]Label, len(t.names))
	for i, name := range t.names {
		out[i] = Label{Name: name, Value: string(t.values[i].appendValue(nil, id))}
	}
	return out
}

// AppendSeries appends the WriteRequest.timeseries field of series id with
// one sample. scratch is reused for the rendered values; the grown scratch
// is returned with the result.
func (t *LabelTemplates) AppendSeries(b, scratch []byte, id int, s Sample) ([]byte, []byte) {
	scratch = scratch[:0]
	var ends [64]int
	offs := ends[:0]
	for _, v := range t.values {
		scratch = v.appendValue(scratch, id)
		offs = append(offs, len(scratch))
	}
	size := protowire.SizeTag(fieldSamples) + protowire.SizeBytes(sampleSize(s.Timestamp))
	start := 0
	for i, name := range t.names {
		size += protowire.SizeTag(fieldLabels) + protowire.SizeBytes(labelSize(len(name), offs[i]-start))
		start = offs[i]
	}
	b = protowire.AppendTag(b, fieldTimeseries, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	start = 0
	for i, name := range t.names {
		b = protowire.AppendTag(b, fieldLabels, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(labelSize(len(name), offs[i]-start)))
		b = protowire.AppendTag(b, fieldName, protowire.BytesType)
		b = protowire.AppendString(b, name)
		b = protowire.AppendTag(b, fieldValue, protowire.BytesType)
		b = protowire.AppendBytes(b, scratch[start:offs[i]])
		start = offs[i]
	}
	return appendSample(b, s), scratch
}

// EncodeFromTemplates encodes a WriteRequest of the series ids
// [minID, maxID), one sample each at timestamp, its value from value(id).
func EncodeFromTemplates(t *LabelTemplates, minID, maxID int, timestamp int64, value func() float64) []byte {
	n := maxID - minID
	if n <= 0 {
		return nil
	}
	var b []byte
	var scratch []byte
	b, scratch = t.AppendSeries(b, scratch, minID, Sample{Value: value(), Timestamp: timestamp})
	// Every series of a template is about as long as the first.
	b = slices.Grow(b, (len(b)+8)*(n-1))
	for id := minID + 1; id < maxID; id++ {
		b, scratch = t.AppendSeries(b, scratch, id, Sample{Value: value(), Timestamp: timestamp})
	}
	return b
}

// GenerateSeries is upstream's storeGenerated workload: batch (1-based) of
// batches, batchSize series each out of totalSeries; labels __name__
// k6_generated_metric_<id>, series_id <id> and cardinality_1eX <id/10^X>
// for every X up to log10(totalSeries).
func GenerateSeries(totalSeries, batches, batchSize, batch int64, timestamp int64, value func() float64) ([]Timeseries, error) {
	if totalSeries == 0 {
		return nil, nil
	}
	if batches <= 0 || batch < 1 || batch > batches {
		return nil, errors.New("batch must be in the range of batches")
	}
	if totalSeries/batches != batchSize {
		return nil, errors.New("total_series must divide evenly into batches of size batch_size")
	}
	exp := int64(math.Log10(float64(totalSeries)))
	series := make([]Timeseries, batchSize)
	for i := range batchSize {
		id := batchSize*(batch-1) + i
		labels := make([]Label, 0, exp+2)
		div := int64(1)
		for x := int64(1); x <= exp; x++ {
			div *= 10
			labels = append(labels, Label{Name: "cardinality_1e" + strconv.FormatInt(x, 10), Value: strconv.FormatInt(id/div, 10)})
		}
		labels = append(labels,
			Label{Name: "__name__", Value: "k6_generated_metric_" + strconv.FormatInt(id, 10)},
			Label{Name: "series_id", Value: strconv.FormatInt(id, 10)})
		series[i] = Timeseries{Labels: labels, Samples: []Sample{{Value: value(), Timestamp: timestamp}}}
	}
	return series, nil
}
