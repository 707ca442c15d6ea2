package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	prompb "buf.build/gen/go/prometheus/prometheus/protocolbuffers/go"
	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ---------------------------------------------------------------- decoders for the tests

// decodeWriteRequest walks a WriteRequest with protowire, strictly: only
// the fields of remote-write 1.0 series, each of its declared wire type.
func decodeWriteRequest(t *testing.T, b []byte) []Timeseries {
	t.Helper()
	var out []Timeseries
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		ok(t, n)
		b = b[n:]
		if num == 3 { // metadata, in Prometheus' own requests
			n = protowire.ConsumeFieldValue(num, typ, b)
			ok(t, n)
			b = b[n:]
			continue
		}
		if num != fieldTimeseries || typ != protowire.BytesType {
			t.Fatalf("WriteRequest: unexpected field %d type %d", num, typ)
		}
		msg, n := protowire.ConsumeBytes(b)
		ok(t, n)
		b = b[n:]
		out = append(out, decodeTimeseries(t, msg))
	}
	return out
}

func decodeTimeseries(t *testing.T, b []byte) Timeseries {
	t.Helper()
	var ts Timeseries
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		ok(t, n)
		b = b[n:]
		if typ != protowire.BytesType || (num != fieldLabels && num != fieldSamples) {
			t.Fatalf("TimeSeries: unexpected field %d type %d", num, typ)
		}
		msg, n := protowire.ConsumeBytes(b)
		ok(t, n)
		b = b[n:]
		if num == fieldLabels {
			ts.Labels = append(ts.Labels, decodeLabel(t, msg))
		} else {
			ts.Samples = append(ts.Samples, decodeSample(t, msg))
		}
	}
	return ts
}

func decodeLabel(t *testing.T, b []byte) Label {
	t.Helper()
	var l Label
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		ok(t, n)
		b = b[n:]
		v, n := protowire.ConsumeString(b)
		ok(t, n)
		b = b[n:]
		switch {
		case typ == protowire.BytesType && num == fieldName:
			l.Name = v
		case typ == protowire.BytesType && num == fieldValue:
			l.Value = v
		default:
			t.Fatalf("Label: unexpected field %d type %d", num, typ)
		}
	}
	return l
}

func decodeSample(t *testing.T, b []byte) Sample {
	t.Helper()
	var s Sample
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		ok(t, n)
		b = b[n:]
		switch {
		case num == fieldSampleVal && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			ok(t, n)
			b = b[n:]
			s.Value = math.Float64frombits(v)
		case num == fieldTimestamp && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			ok(t, n)
			b = b[n:]
			s.Timestamp = int64(v) //nolint:gosec // protobuf int64
		default:
			t.Fatalf("Sample: unexpected field %d type %d", num, typ)
		}
	}
	return s
}

func ok(t *testing.T, n int) {
	t.Helper()
	if n < 0 {
		t.Fatalf("protobuf: %v", protowire.ParseError(n))
	}
}

// snappyDecode is a reference decoder of the snappy block format written
// from the format description, independent of the encoder under test.
func snappyDecode(src []byte) ([]byte, error) {
	n, k := binary.Uvarint(src)
	if k <= 0 {
		return nil, errors.New("bad length")
	}
	src = src[k:]
	dst := make([]byte, 0, n)
	for len(src) > 0 {
		tag := src[0]
		switch tag & 3 {
		case 0: // literal
			l := int(tag >> 2)
			src = src[1:]
			if l >= 60 {
				w := l - 59
				if len(src) < w {
					return nil, errors.New("short literal length")
				}
				l = 0
				for i := w - 1; i >= 0; i-- {
					l = l<<8 | int(src[i])
				}
				src = src[w:]
			}
			l++
			if len(src) < l {
				return nil, errors.New("short literal")
			}
			dst = append(dst, src[:l]...)
			src = src[l:]
			continue
		case 1:
			if len(src) < 2 {
				return nil, errors.New("short copy1")
			}
			length := 4 + int(tag>>2)&7
			off := int(tag>>5)<<8 | int(src[1])
			src = src[2:]
			if err := copyBack(&dst, off, length); err != nil {
				return nil, err
			}
		case 2:
			if len(src) < 3 {
				return nil, errors.New("short copy2")
			}
			length := 1 + int(tag>>2)
			off := int(binary.LittleEndian.Uint16(src[1:3]))
			src = src[3:]
			if err := copyBack(&dst, off, length); err != nil {
				return nil, err
			}
		case 3:
			if len(src) < 5 {
				return nil, errors.New("short copy4")
			}
			length := 1 + int(tag>>2)
			off := int(binary.LittleEndian.Uint32(src[1:5]))
			src = src[5:]
			if err := copyBack(&dst, off, length); err != nil {
				return nil, err
			}
		}
	}
	if uint64(len(dst)) != n {
		return nil, fmt.Errorf("decoded %d bytes, header says %d", len(dst), n)
	}
	return dst, nil
}

func copyBack(dst *[]byte, off, length int) error {
	if off <= 0 || off > len(*dst) {
		return fmt.Errorf("bad copy offset %d", off)
	}
	for range length { // byte by byte: copies may overlap
		*dst = append(*dst, (*dst)[len(*dst)-off])
	}
	return nil
}

// sameSeries compares labels, and sample values bit for bit (NaN included).
func sameSeries(a, b Timeseries) bool {
	if !reflect.DeepEqual(a.Labels, b.Labels) || len(a.Samples) != len(b.Samples) {
		return false
	}
	for i := range a.Samples {
		if math.Float64bits(a.Samples[i].Value) != math.Float64bits(b.Samples[i].Value) ||
			a.Samples[i].Timestamp != b.Samples[i].Timestamp {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- tests

func TestEncodeWriteRequestDecodesBack(t *testing.T) {
	series := []Timeseries{
		{
			// Unsorted on purpose: written sorted.
			Labels:  []Label{{"job", "kubernetes-pods"}, {"__name__", "up"}, {"pod", "pod-ü-1"}},
			Samples: []Sample{{1, 1_700_000_000_000}, {0, 1_700_000_015_000}, {math.Inf(-1), 1}},
		},
		{
			Labels:  []Label{{"__name__", "empty_value"}, {"x", ""}},
			Samples: []Sample{{math.Float64frombits(0x7ff0000000000002), 0}, {-2.5, -1}}, // stale marker, negative timestamp
		},
		{Labels: []Label{{"__name__", "no_samples"}}},
	}
	raw := EncodeWriteRequest(series)
	got := decodeWriteRequest(t, raw)

	want := slices.Clone(series)
	want[0].Labels = []Label{{"__name__", "up"}, {"job", "kubernetes-pods"}, {"pod", "pod-ü-1"}}
	if len(got) != len(want) {
		t.Fatalf("%d series decoded, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i].Labels, want[i].Labels) {
			t.Errorf("series %d labels: got %v, want %v", i, got[i].Labels, want[i].Labels)
		}
		if len(got[i].Samples) != len(want[i].Samples) {
			t.Fatalf("series %d: %d samples, want %d", i, len(got[i].Samples), len(want[i].Samples))
		}
		for j, s := range want[i].Samples {
			g := got[i].Samples[j]
			if math.Float64bits(g.Value) != math.Float64bits(s.Value) || g.Timestamp != s.Timestamp {
				t.Errorf("series %d sample %d: got %v, want %v (bit for bit)", i, j, g, s)
			}
		}
	}
	// The caller's labels are left as they were.
	if series[0].Labels[0].Name != "job" {
		t.Error("EncodeWriteRequest sorted the caller's slice")
	}

	// The generated Go types of remote-write 1.0 (what k6's own
	// Prometheus output uses) read it the same.
	var wr prompb.WriteRequest
	if err := proto.Unmarshal(raw, &wr); err != nil {
		t.Fatal(err)
	}
	if n := len(wr.GetTimeseries()); n != 3 {
		t.Fatalf("prompb: %d series", n)
	}
	ts0 := wr.GetTimeseries()[0]
	if l := ts0.GetLabels()[2]; l.GetName() != "pod" || l.GetValue() != "pod-ü-1" {
		t.Errorf("prompb: label %v", l)
	}
	if s := ts0.GetSamples()[0]; s.GetValue() != 1 || s.GetTimestamp() != 1_700_000_000_000 {
		t.Errorf("prompb: sample %v", s)
	}
}

func TestTemplates(t *testing.T) {
	tpl, err := CompileLabelTemplates(map[string]string{
		"__name__":  "k6_container_metric_${series_id%20}",
		"node":      "node-${series_id/1000}",
		"pod":       "pod-${series_id/20}",
		"instance":  "pod-${series_id/20}:9102",
		"id":        "${series_id}",
		"twice":     "${series_id%3}-${series_id/3}",
		"job":       "kubernetes-pods",
		"untouched": "${other}",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := tpl.Labels(2047)
	want := []Label{
		{"__name__", "k6_container_metric_7"}, {"id", "2047"}, {"instance", "pod-102:9102"},
		{"job", "kubernetes-pods"}, {"node", "node-2"}, {"pod", "pod-102"},
		{"twice", "1-682"}, {"untouched", "${other}"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("labels of 2047:\n got %v\nwant %v", got, want)
	}

	// A request of ids [100, 350): every series decodes to its own labels and one sample.
	calls := 0
	raw := EncodeFromTemplates(tpl, 100, 350, 1_700_000_000_123, func() float64 { calls++; return float64(calls) })
	series := decodeWriteRequest(t, raw)
	if len(series) != 250 {
		t.Fatalf("%d series, want 250", len(series))
	}
	for i, s := range series {
		if !reflect.DeepEqual(s.Labels, tpl.Labels(100+i)) {
			t.Fatalf("series %d: labels %v, want %v", 100+i, s.Labels, tpl.Labels(100+i))
		}
		if len(s.Samples) != 1 || s.Samples[0] != (Sample{float64(i + 1), 1_700_000_000_123}) {
			t.Fatalf("series %d: samples %v", 100+i, s.Samples)
		}
	}
	// The same bytes as the general encoder writes for those series.
	var general []Timeseries
	for i, s := range series {
		general = append(general, Timeseries{Labels: tpl.Labels(100 + i), Samples: s.Samples})
	}
	if !bytes.Equal(raw, EncodeWriteRequest(general)) {
		t.Error("EncodeFromTemplates and EncodeWriteRequest differ")
	}
	if EncodeFromTemplates(tpl, 5, 5, 0, nil) != nil {
		t.Error("an empty id range is an empty request")
	}

	for _, bad := range []string{"${series_id/0}", "${series_id%x}", "${series_id*2}", "a${series_id"} {
		if _, err := CompileLabelTemplates(map[string]string{"__name__": bad}); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

func TestGenerateSeries(t *testing.T) {
	series, err := GenerateSeries(1000, 10, 100, 3, 42, func() float64 { return 1 })
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 100 {
		t.Fatalf("%d series", len(series))
	}
	got := decodeWriteRequest(t, EncodeWriteRequest(series))[5].Labels
	want := []Label{
		{"__name__", "k6_generated_metric_205"}, {"cardinality_1e1", "20"}, {"cardinality_1e2", "2"},
		{"cardinality_1e3", "0"}, {"series_id", "205"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := GenerateSeries(1000, 10, 99, 1, 0, nil); err == nil {
		t.Error("uneven batches accepted")
	}
	if _, err := GenerateSeries(1000, 10, 100, 11, 0, nil); err == nil {
		t.Error("batch out of range accepted")
	}
}

func TestSnappyRoundTrip(t *testing.T) {
	tpl, err := CompileLabelTemplates(map[string]string{"__name__": "m_${series_id%20}", "pod": "pod-${series_id/20}"})
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]byte{
		{},
		[]byte("x"),
		EncodeFromTemplates(tpl, 0, 2000, 1_700_000_000_000, func() float64 { return 0.5 }),
		bytes.Repeat([]byte("abcdefgh"), 100_000), // long copies
	}
	for i, raw := range inputs {
		c := Compress(raw)
		got, err := snappyDecode(c) // plain snappy, no S2 extensions
		if err != nil {
			t.Fatalf("input %d: reference snappy decoder: %v", i, err)
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("input %d: round trip differs", i)
		}
		if got, err := s2.Decode(nil, c); err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("input %d: s2.Decode: %v", i, err)
		}
		if len(raw) > 1000 && len(c) > len(raw)/3 {
			t.Errorf("input %d: %d bytes compressed to %d", i, len(raw), len(c))
		}
	}
}

// Real Prometheus 2.42 requests (testdata/, golang/snappy and gogo
// protobuf): the test decoders read them, and re-encoding their series
// gives the same series.
func TestPrometheusFixtures(t *testing.T) {
	files, _ := filepath.Glob("../../../../testdata/remote-write/prometheus-2.42/req*.bin")
	if len(files) == 0 {
		t.Skip("testdata/remote-write/prometheus-2.42 not found")
	}
	total := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := snappyDecode(body)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		series := decodeWriteRequest(t, raw)
		total += len(series)
		again := decodeWriteRequest(t, EncodeWriteRequest(series))
		if len(series) == 0 && len(again) == 0 {
			continue
		}
		for i := range series {
			if !sameSeries(again[i], series[i]) {
				t.Fatalf("%s: series %d differs after re-encoding:\n got %v\nwant %v", filepath.Base(f), i, again[i], series[i])
			}
		}
		c := Compress(EncodeWriteRequest(series))
		if back, err := snappyDecode(c); err != nil || !bytes.Equal(back, EncodeWriteRequest(series)) {
			t.Fatalf("%s: snappy round trip: %v", filepath.Base(f), err)
		}
	}
	if total != 20_000 {
		t.Errorf("%d series in %d fixtures, want 20000 (testdata/README.md)", total, len(files))
	}
}
