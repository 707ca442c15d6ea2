//! The wire formats against real Prometheus traffic and against themselves.

use proto::prometheus::{self, WriteRequest};
use proto::v2;
use proto::wire::Fields;
use proto::{Message, STALE_NAN_BITS};

fn decompress(body: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("snappy body")
}

#[test]
fn every_fixture_decodes_to_the_documented_totals() {
    let bodies = proto::fixtures::prometheus_2_42_bodies().expect("fixtures readable");
    assert_eq!(bodies.len(), 41);
    let (mut series, mut samples, mut metadata, mut labels) = (0usize, 0usize, 0usize, 0usize);
    let (mut compressed, mut decompressed) = (0usize, 0usize);
    for (name, body) in &bodies {
        let raw = decompress(body);
        compressed += body.len();
        decompressed += raw.len();
        let request =
            WriteRequest::decode(raw.as_slice()).unwrap_or_else(|e| panic!("{name}: {e}"));
        series += request.timeseries.len();
        samples += request
            .timeseries
            .iter()
            .map(|s| s.samples.len())
            .sum::<usize>();
        labels += request
            .timeseries
            .iter()
            .map(|s| s.labels.len())
            .sum::<usize>();
        metadata += request.metadata.len();
    }
    assert_eq!(series, 20_000);
    assert_eq!(samples, 20_000);
    assert_eq!(metadata, 449);
    assert_eq!(compressed, 510_833);
    assert_eq!(decompressed, 4_126_042);
    assert!((6.0..7.0).contains(&(labels as f64 / series as f64)));
}

#[test]
fn the_field_walker_sees_what_prost_sees() {
    use proto::fields::prometheus::{WRITE_REQUEST_METADATA, WRITE_REQUEST_TIMESERIES};

    for (name, body) in proto::fixtures::prometheus_2_42_bodies().unwrap() {
        let raw = decompress(&body);
        let request = WriteRequest::decode(raw.as_slice()).unwrap();
        let mut walked_series = 0;
        let mut walked_metadata = 0;
        for field in Fields::new(&raw) {
            let field = field.unwrap_or_else(|e| panic!("{name}: {e}"));
            match field.number {
                WRITE_REQUEST_TIMESERIES => {
                    // NaN != NaN: compare encodings, not structs.
                    let expected = request.timeseries[walked_series].encode_to_vec();
                    assert_eq!(field.bytes().unwrap(), expected.as_slice());
                    walked_series += 1;
                }
                WRITE_REQUEST_METADATA => walked_metadata += 1,
                other => panic!("{name}: unexpected field {other}"),
            }
        }
        assert_eq!(walked_series, request.timeseries.len());
        assert_eq!(walked_metadata, request.metadata.len());
    }
}

/// The shared request with negative buckets and a custom-bucket histogram too.
fn v2_request() -> v2::Request {
    let mut request = proto::fixtures::v2_request();
    let histograms = &mut request.timeseries[0].histograms;
    histograms[1].negative_spans = vec![v2::BucketSpan {
        offset: -2,
        length: 1,
    }];
    histograms[1].negative_deltas = vec![1];
    histograms.push(proto::fixtures::custom_buckets_histogram());
    request
}

#[test]
fn v2_round_trips_symbols_histograms_exemplars_metadata_and_stale_markers() {
    let request = v2_request();
    let encoded = request.encode_to_vec();
    let decoded = v2::Request::decode(encoded.as_slice()).unwrap();

    // NaN != NaN, so compare the bytes of a re-encoding and the float bits separately.
    assert_eq!(decoded.encode_to_vec(), encoded);
    assert_eq!(decoded.symbols, request.symbols);
    assert_eq!(
        decoded.timeseries[0].histograms,
        request.timeseries[0].histograms
    );
    assert_eq!(
        decoded.timeseries[0].exemplars,
        request.timeseries[0].exemplars
    );
    assert_eq!(
        decoded.timeseries[0].metadata,
        request.timeseries[0].metadata
    );
    let bits: Vec<u64> = decoded.timeseries[1]
        .samples
        .iter()
        .map(|s| s.value.to_bits())
        .collect();
    let expected: Vec<u64> = request.timeseries[1]
        .samples
        .iter()
        .map(|s| s.value.to_bits())
        .collect();
    assert_eq!(bits, expected);
    assert_eq!(bits[1], STALE_NAN_BITS);
}

#[test]
fn v1_and_v2_disagree_on_histogram_and_exemplar_field_numbers() {
    // A v1 series with one exemplar (field 3) reads, with the v2 schema, as a histogram.
    let series = prometheus::TimeSeries {
        exemplars: vec![prometheus::Exemplar {
            labels: vec![],
            value: 1.0,
            timestamp: 0,
        }],
        ..Default::default()
    };
    let as_v2 = v2::TimeSeries::decode(series.encode_to_vec().as_slice()).unwrap();
    assert_eq!(as_v2.histograms.len(), 1);
    assert!(as_v2.exemplars.is_empty());
}

#[test]
fn a_v2_message_read_as_v1_is_empty() {
    let encoded = v2_request().encode_to_vec();
    let as_v1 = WriteRequest::decode(encoded.as_slice()).unwrap();
    assert!(as_v1.timeseries.is_empty() && as_v1.metadata.is_empty());
}
