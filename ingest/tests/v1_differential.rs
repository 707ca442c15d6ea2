//! The remote-write 1.0 split against the one it replaced (commit 57933ab):
//! on the captured traffic, on random requests and on mutations of them, both
//! must refuse the same requests and otherwise produce the same records byte
//! for byte, the same counts and the same rejections.

#[path = "support/differential.rs"]
mod differential;
#[path = "support/split_v1_before.rs"]
mod split_v1_before;

use differential::{SAMPLE_VALUES, agree, agree_for_each, mutate};
use ingest::config::SeriesLimits;
use ingest::partition::split_v1;
use proto::Message;
use proto::prometheus::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use split_v1_before::split_v1_before;

fn same(raw: &[u8], partitions: u32, limits: &SeriesLimits) -> bool {
    let old = split_v1_before(raw, "acme", limits, partitions);
    let new = split_v1(raw, "acme", limits, partitions);
    agree(raw, old, new, |old, new| {
        assert_eq!(old, new, "errors of {raw:02x?}")
    })
}

fn check(raw: &[u8]) -> bool {
    agree_for_each(raw, &[1, 8], |raw, partitions| {
        same(raw, partitions, &SeriesLimits::default())
    })
}

#[test]
fn the_captures_split_alike() {
    for (name, raw) in proto::fixtures::prometheus_2_42_raw().unwrap() {
        assert!(check(&raw), "{name}");
        let tight = SeriesLimits {
            max_labels_per_series: 6,
            max_label_name_length: 10,
            max_label_value_length: 20,
        };
        assert!(same(&raw, 8, &tight), "{name}");
    }
}

fn random_request(rng: &mut StdRng) -> WriteRequest {
    const NAMES: [&str; 8] = ["__name__", "job", "instance", "", "ü", "le", "a", "zz"];
    let long = "x".repeat(200);
    let values = ["up", "", "node", "ünï", "a:1", long.as_str(), "0.5"];
    let label = |rng: &mut StdRng| Label {
        name: NAMES[rng.random_range(0..NAMES.len())].into(),
        value: values[rng.random_range(0..values.len())].into(),
    };
    let timeseries = (0..rng.random_range(0..6))
        .map(|_| {
            let mut labels: Vec<Label> = (0..rng.random_range(0..6)).map(|_| label(rng)).collect();
            if rng.random_bool(0.6) {
                labels.insert(
                    0,
                    Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                );
            }
            if rng.random_bool(0.7) {
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                labels.dedup_by(|a, b| a.name == b.name);
            }
            TimeSeries {
                labels,
                samples: (0..rng.random_range(0..3))
                    .map(|_| Sample {
                        value: SAMPLE_VALUES[rng.random_range(0..SAMPLE_VALUES.len())],
                        timestamp: rng.random_range(-1..3) * 1_700_000_000_000,
                    })
                    .collect(),
                exemplars: (0..rng.random_range(0..2))
                    .map(|_| Exemplar {
                        labels: vec![label(rng)],
                        value: 1.0,
                        timestamp: 5,
                    })
                    .collect(),
                histograms: vec![],
            }
        })
        .collect();
    let metadata = (0..rng.random_range(0..2))
        .map(|_| MetricMetadata {
            r#type: rng.random_range(0..3),
            metric_family_name: values[rng.random_range(0..values.len())].into(),
            help: "help".into(),
            unit: String::new(),
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata,
    }
}

#[test]
fn random_and_mutated_requests_split_alike() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let (mut accepted, rounds) = (0, 30_000);
    for round in 0..rounds {
        let mut raw = random_request(&mut rng).encode_to_vec();
        if round % 2 == 1 {
            mutate(&mut raw, &mut rng);
        }
        accepted += usize::from(check(&raw));
    }
    assert!(accepted > rounds / 2 && accepted < rounds, "{accepted}");
}
