//! The borrowing remote-write 2.0 split against the prost path it replaced:
//! on the captured traffic, on hand-made edge cases of the wire format, and on
//! random requests (well-formed, mutated and plain noise), both must refuse
//! the same requests and, for the others, produce the same records byte for
//! byte, the same counts and the same rejections.

#[path = "support/differential.rs"]
mod differential;
#[path = "support/split_v2_prost.rs"]
mod split_v2_prost;

use differential::{SAMPLE_VALUES, agree, agree_for_each, mutate};
use ingest::config::SeriesLimits;
use ingest::partition::split_v2;
use proto::Message;
use proto::fixtures::{v1_as_v2, v2_sample};
use proto::v2;
use proto::wire::put_varint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use split_v2_prost::split_v2_prost;

/// Both paths on one input; returns whether it was accepted.
fn same(raw: &[u8], partitions: u32, limits: &SeriesLimits) -> bool {
    let old = split_v2_prost(raw, "acme", limits, partitions);
    let new = split_v2(raw, "acme", limits, partitions);
    agree(raw, old, new, |_, _| {})
}

fn check(raw: &[u8]) -> bool {
    agree_for_each(raw, &[1, 3, 8], |raw, partitions| {
        same(raw, partitions, &SeriesLimits::default())
    })
}

fn fixtures_as_v2() -> Vec<Vec<u8>> {
    proto::fixtures::prometheus_2_42_requests()
        .unwrap()
        .iter()
        .map(|(_, request)| v1_as_v2(request).encode_to_vec())
        .collect()
}

#[test]
fn the_captures_split_alike() {
    for raw in fixtures_as_v2() {
        assert!(check(&raw));
    }
}

/// The kinds of series a 2.0 sender writes, valid and not.
fn rich_request() -> v2::Request {
    let symbols = [
        "",
        "__name__",
        "http_request_duration_seconds",
        "job",
        "api",
        "le",
        "trace_id",
        "abc123",
        "Duration of HTTP requests.",
        "seconds",
        "instance",
        "a:1",
        "up",
        "job",
        "zzz",
        "ünï",
        "cödé",
    ]
    .map(String::from)
    .to_vec();
    let histogram = v2::Histogram {
        count: Some(v2::histogram::Count::CountInt(7)),
        sum: 10.0,
        schema: 0,
        zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![v2::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![2, 1, -2],
        timestamp: 5,
        ..Default::default()
    };
    let mut bad_histogram = histogram.clone();
    bad_histogram.count = Some(v2::histogram::Count::CountInt(99));
    v2::Request {
        symbols,
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                histograms: vec![histogram.clone(), histogram.clone()],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![6, 7],
                    value: 0.25,
                    timestamp: 4,
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Histogram as i32,
                    help_ref: 8,
                    unit_ref: 9,
                }),
                created_timestamp: 1,
                ..Default::default()
            },
            // Unsorted, with NaN, the stale marker, -0.0 and negative timestamps.
            v2::TimeSeries {
                labels_refs: vec![10, 11, 1, 12, 3, 4],
                samples: vec![
                    v2_sample(f64::NAN, 1),
                    v2_sample(f64::from_bits(proto::STALE_NAN_BITS), 2),
                    v2_sample(-0.0, -3),
                    v2_sample(0.0, 0),
                    v2_sample(f64::INFINITY, i64::MIN),
                ],
                metadata: Some(v2::Metadata::default()),
                ..Default::default()
            },
            // A duplicate symbol (13 is "job" again) and UTF-8 labels.
            v2::TimeSeries {
                labels_refs: vec![1, 12, 13, 14, 15, 16],
                samples: vec![v2::Sample {
                    value: 1.0,
                    timestamp: 7,
                    start_timestamp: 3,
                }],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![],
                    value: 0.0,
                    timestamp: 0,
                }],
                metadata: Some(v2::Metadata {
                    r#type: -5,
                    help_ref: 0,
                    unit_ref: 0,
                }),
                ..Default::default()
            },
            // Rejected: out of range, odd, duplicate names, no name, both, neither,
            // bad histogram, exemplar and metadata references out of range.
            v2::TimeSeries {
                labels_refs: vec![1, 12, 3, 99],
                samples: vec![v2_sample(1.0, 1)],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 12, 3],
                samples: vec![v2_sample(1.0, 1)],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 12, 3, 4, 13, 14],
                samples: vec![v2_sample(1.0, 1)],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![3, 4],
                samples: vec![v2_sample(1.0, 1)],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2_sample(1.0, 1)],
                histograms: vec![histogram],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                histograms: vec![bad_histogram],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2_sample(1.0, 1)],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![6, 70],
                    ..Default::default()
                }],
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2],
                samples: vec![v2_sample(1.0, 1)],
                metadata: Some(v2::Metadata {
                    r#type: 1,
                    help_ref: 1000,
                    unit_ref: 0,
                }),
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![],
                samples: vec![v2_sample(1.0, 1)],
                ..Default::default()
            },
        ],
    }
}

#[test]
fn every_kind_of_series_splits_alike() {
    assert!(check(&rich_request().encode_to_vec()));
    // Tighter limits reject other series.
    let limits = SeriesLimits {
        max_labels_per_series: 2,
        max_label_name_length: 4,
        max_label_value_length: 8,
    };
    for partitions in [1, 4] {
        assert!(same(&rich_request().encode_to_vec(), partitions, &limits));
    }
}

fn key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

fn len_field(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    key(out, number, 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// A request of `symbols` and raw series payloads, in that order.
fn request(symbols: &[&[u8]], series: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for symbol in symbols {
        len_field(&mut out, 4, symbol);
    }
    for payload in series {
        len_field(&mut out, 5, payload);
    }
    out
}

const SYMBOLS: [&[u8]; 5] = [b"", b"__name__", b"up", b"job", b"a"];

fn good_sample() -> Vec<u8> {
    let mut sample = vec![0x09];
    sample.extend_from_slice(&1.5f64.to_le_bytes());
    sample.extend_from_slice(&[0x10, 0x07]);
    sample
}

fn series_with(extra: &[u8]) -> Vec<u8> {
    let mut series = Vec::new();
    len_field(&mut series, 1, &[1, 2, 3, 4]);
    len_field(&mut series, 2, &good_sample());
    series.extend_from_slice(extra);
    series
}

#[test]
fn wire_format_edge_cases_split_alike() {
    let mut cases: Vec<(&str, Vec<u8>, bool)> = Vec::new();
    cases.push(("plain", request(&SYMBOLS, &[series_with(&[])]), true));

    // labels_refs unpacked, and packed and unpacked mixed.
    let mut unpacked = Vec::new();
    for reference in [1u8, 2, 3] {
        key(&mut unpacked, 1, 0);
        unpacked.push(reference);
    }
    len_field(&mut unpacked, 1, &[4]);
    len_field(&mut unpacked, 2, &good_sample());
    cases.push(("unpacked refs", request(&SYMBOLS, &[unpacked]), true));

    // A reference over 32 bits keeps its low 32 bits, as prost has it.
    let mut wide = Vec::new();
    let mut refs = vec![1u8];
    put_varint(&mut refs, (1 << 32) | 2);
    refs.extend_from_slice(&[3, 4]);
    len_field(&mut wide, 1, &refs);
    len_field(&mut wide, 2, &good_sample());
    cases.push(("reference over 32 bits", request(&SYMBOLS, &[wide]), true));

    // Symbols after the series that use them.
    let mut late = Vec::new();
    len_field(&mut late, 5, &series_with(&[]));
    for symbol in SYMBOLS {
        len_field(&mut late, 4, symbol);
    }
    cases.push(("symbols after series", late, true));

    // Metadata twice: the occurrences merge.
    let mut metadata = Vec::new();
    len_field(&mut metadata, 5, &[0x08, 0x02, 0x18, 0x03]);
    len_field(&mut metadata, 5, &[0x20, 0x04]);
    len_field(&mut metadata, 5, &[0x08, 0x01]);
    cases.push((
        "metadata merged",
        request(&SYMBOLS, &[series_with(&metadata)]),
        true,
    ));

    // Sample fields repeated, out of order, and unknown: the last one counts.
    let mut odd_sample = vec![0x10, 0x05, 0x18, 0x09];
    odd_sample.push(0x09);
    odd_sample.extend_from_slice(&2.5f64.to_le_bytes());
    odd_sample.extend_from_slice(&[0x10, 0x06, 0x28, 0x01, 0x35, 0, 0, 0, 0]);
    let mut series = Vec::new();
    len_field(&mut series, 1, &[1, 2]);
    len_field(&mut series, 2, &odd_sample);
    len_field(&mut series, 2, &[]);
    cases.push(("sample fields", request(&SYMBOLS, &[series]), true));

    // Unknown fields of every wire type, groups included, at every level.
    let mut unknown = Vec::new();
    key(&mut unknown, 9, 0);
    unknown.push(0x01);
    key(&mut unknown, 10, 1);
    unknown.extend_from_slice(&[0; 8]);
    key(&mut unknown, 11, 5);
    unknown.extend_from_slice(&[0; 4]);
    len_field(&mut unknown, 12, b"x");
    key(&mut unknown, 13, 3);
    key(&mut unknown, 1, 0);
    unknown.push(0x05);
    key(&mut unknown, 14, 3);
    key(&mut unknown, 14, 4);
    key(&mut unknown, 13, 4);
    let mut with_unknown = unknown.clone();
    with_unknown.extend_from_slice(&request(&SYMBOLS, &[series_with(&unknown)]));
    cases.push(("unknown fields and groups", with_unknown, true));
    // Reserved fields 1 to 3 of the request are unknown too.
    let mut reserved = request(&SYMBOLS, &[series_with(&[])]);
    len_field(&mut reserved, 1, b"old");
    key(&mut reserved, 2, 0);
    reserved.push(0x7f);
    cases.push(("reserved fields", reserved, true));

    // Groups nested to prost's recursion limit, and one past it.
    for (depth, accepted) in [(100, true), (101, false)] {
        let mut nested = request(&SYMBOLS, &[series_with(&[])]);
        for _ in 0..depth {
            key(&mut nested, 20, 3);
        }
        for _ in 0..depth {
            key(&mut nested, 20, 4);
        }
        cases.push(("nested groups", nested, accepted));
    }

    // Refused: mismatched and stray end groups, bad wire types, truncation,
    // a symbol that is not UTF-8, a field key of 0, a ref crossing its packing.
    let mut mismatched = request(&SYMBOLS, &[series_with(&[])]);
    key(&mut mismatched, 20, 3);
    key(&mut mismatched, 21, 4);
    cases.push(("mismatched end group", mismatched, false));
    let mut stray = request(&SYMBOLS, &[series_with(&[])]);
    key(&mut stray, 20, 4);
    cases.push(("stray end group", stray, false));
    let mut bad_type = Vec::new();
    key(&mut bad_type, 4, 0);
    bad_type.push(0x01);
    cases.push(("symbols as varint", bad_type, false));
    let mut wire_6 = request(&SYMBOLS, &[series_with(&[])]);
    key(&mut wire_6, 20, 6);
    cases.push(("wire type 6", wire_6, false));
    let mut truncated = request(&SYMBOLS, &[series_with(&[])]);
    truncated.pop();
    cases.push(("truncated", truncated, false));
    cases.push((
        "symbol not UTF-8",
        request(
            &[b"", b"__name__", b"\xff", b"job", b"a"],
            &[series_with(&[])],
        ),
        false,
    ));
    let mut zero_key = request(&SYMBOLS, &[series_with(&[])]);
    zero_key.extend_from_slice(&[0x00, 0x00]);
    cases.push(("field number 0", zero_key, false));
    let mut crossing = Vec::new();
    len_field(&mut crossing, 1, &[1, 2, 3, 0x84]);
    crossing.push(0x01);
    len_field(&mut crossing, 2, &good_sample());
    cases.push((
        "varint crossing packed",
        request(&SYMBOLS, &[crossing]),
        false,
    ));
    let mut sample_varint = Vec::new();
    len_field(&mut sample_varint, 1, &[1, 2]);
    len_field(&mut sample_varint, 2, &[0x08, 0x01]);
    cases.push((
        "sample value as varint",
        request(&SYMBOLS, &[sample_varint]),
        false,
    ));
    let mut created_len = series_with(&[]);
    len_field(&mut created_len, 6, b"x");
    cases.push((
        "created_timestamp as bytes",
        request(&SYMBOLS, &[created_len]),
        false,
    ));
    let mut bad_histogram = series_with(&[]);
    len_field(&mut bad_histogram, 3, &[0x08]);
    cases.push((
        "truncated histogram",
        request(&SYMBOLS, &[bad_histogram]),
        false,
    ));

    for (name, raw, accepted) in &cases {
        assert_eq!(check(raw), *accepted, "{name}");
    }
}

/// A random request: a few symbols (repeats, empties and non-ASCII among
/// them), series whose references mostly hit, every optional part now and then.
fn random_request(rng: &mut StdRng) -> v2::Request {
    const WORDS: [&str; 12] = [
        "", "__name__", "up", "job", "a", "b", "instance", "ü", "le", "0.5", "__name__", "x",
    ];
    let symbol_count = rng.random_range(1..12);
    let mut symbols: Vec<String> = (0..symbol_count)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())].to_string())
        .collect();
    // Mostly the table a sender builds: "" first, then a metric name.
    if symbol_count > 2 && rng.random_bool(0.7) {
        symbols[..3].clone_from_slice(&["".into(), "__name__".into(), "up".into()]);
    }
    let reference = |rng: &mut StdRng| -> u32 {
        if rng.random_bool(0.03) {
            rng.random_range(0..40)
        } else {
            rng.random_range(0..symbol_count as u32)
        }
    };
    let timeseries = (0..rng.random_range(0..6))
        .map(|_| {
            let mut labels_refs: Vec<u32> = (0..rng.random_range(0..5) * 2)
                .map(|_| reference(rng))
                .collect();
            if rng.random_bool(0.5) {
                labels_refs.splice(0..0, [1, 2]);
            }
            if rng.random_bool(0.02) {
                labels_refs.push(1);
            }
            let samples = (0..rng.random_range(0..3))
                .map(|_| v2::Sample {
                    value: SAMPLE_VALUES[rng.random_range(0..SAMPLE_VALUES.len())],
                    timestamp: rng.random_range(-2..3) * 1_000_000_007,
                    start_timestamp: if rng.random_bool(0.2) { 5 } else { 0 },
                })
                .collect();
            let histograms = if rng.random_bool(0.15) {
                vec![v2::Histogram {
                    count: Some(v2::histogram::Count::CountInt(rng.random_range(2..4))),
                    zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(1)),
                    positive_spans: vec![v2::BucketSpan {
                        offset: 0,
                        length: 1,
                    }],
                    positive_deltas: vec![2],
                    ..Default::default()
                }]
            } else {
                vec![]
            };
            let exemplars = (0..rng.random_range(0..2))
                .map(|_| v2::Exemplar {
                    labels_refs: (0..rng.random_range(0..2) * 2)
                        .map(|_| reference(rng))
                        .collect(),
                    value: SAMPLE_VALUES[rng.random_range(0..SAMPLE_VALUES.len())],
                    timestamp: rng.random_range(0..3),
                })
                .collect();
            let metadata = rng.random_bool(0.3).then(|| v2::Metadata {
                r#type: rng.random_range(-1..8),
                help_ref: reference(rng),
                unit_ref: reference(rng),
            });
            v2::TimeSeries {
                labels_refs,
                samples,
                histograms,
                exemplars,
                metadata,
                created_timestamp: if rng.random_bool(0.2) { -7 } else { 0 },
            }
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
}

#[test]
fn random_requests_split_alike() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    let (mut accepted, mut written) = (0, 0);
    for _ in 0..20_000 {
        let raw = random_request(&mut rng).encode_to_vec();
        assert!(check(&raw));
        accepted += 1;
        written += split_v2(&raw, "acme", &SeriesLimits::default(), 8)
            .unwrap()
            .written
            .series;
    }
    assert!(accepted == 20_000 && written > 3_000, "{written}");
}

#[test]
fn mutated_requests_split_alike() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    let mut accepted = 0;
    let rounds = 40_000;
    for _ in 0..rounds {
        let mut raw = random_request(&mut rng).encode_to_vec();
        mutate(&mut raw, &mut rng);
        accepted += usize::from(check(&raw));
    }
    // Enough of both outcomes to mean something.
    assert!(
        accepted > rounds / 10 && accepted < rounds * 9 / 10,
        "{accepted}"
    );
}

#[test]
fn noise_splits_alike() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0004);
    for _ in 0..20_000 {
        let len = rng.random_range(0..64);
        let raw: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        check(&raw);
    }
}

/// Over 2^20 table entries (symbols × partitions) the walker maps references
/// through hash maps instead of arrays: the same records either way.
#[test]
fn a_large_symbol_table_splits_alike() {
    let mut symbols: Vec<String> = ["", "__name__", "up", "job"].map(String::from).to_vec();
    symbols.extend((0..150_000).map(|i| format!("s{i}")));
    // Duplicates of "job" and "up", far into the table.
    symbols.push("job".into());
    symbols.push("up".into());
    let last = symbols.len() as u32 - 1;
    let timeseries = (0..2_000u32)
        .map(|i| v2::TimeSeries {
            labels_refs: match i % 3 {
                0 => vec![1, 2, 3, 4 + i * 73 % 150_000],
                1 => vec![1, last, last - 1, 4 + i * 31 % 150_000],
                _ => vec![1, 4 + i, last - 1, 4 + i * 7 % 150_000],
            },
            samples: vec![v2_sample(f64::from(i), i64::from(i))],
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![last - 1, 4 + i],
                value: 1.0,
                timestamp: 1,
            }],
            ..Default::default()
        })
        .collect();
    let raw = v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec();
    let limits = SeriesLimits::default();
    for partitions in [1, 8, 64] {
        assert!(same(&raw, partitions, &limits), "{partitions} partitions");
    }
}
