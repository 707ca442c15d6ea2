//! The partition of a series is part of the product's outside (README,
//! "Partitioning"): a fleet upgraded one instance at a time runs old and new
//! code side by side, and a series must not move between partitions when its
//! request happens to reach the other version. These values were computed by
//! the implementation in force before the hot path was reworked, and must
//! never change.

use std::collections::BTreeMap;

use ingest::config::SeriesLimits;
use ingest::partition::{partition_of_series, split_v1, split_v2};
use proto::Message;
use proto::prometheus::WriteRequest;
use proto::v2;
use xxhash_rust::xxh3::xxh3_64;

/// The documented formula, written out as plainly as possible.
fn reference_partition(tenant: &str, sorted_labels: &[(&[u8], &[u8])], partitions: u32) -> i32 {
    let mut key = tenant.as_bytes().to_vec();
    key.push(0xff);
    for (name, value) in sorted_labels {
        key.extend_from_slice(name);
        key.push(0xfe);
        key.extend_from_slice(value);
        key.push(0xff);
    }
    (xxh3_64(&key) % u64::from(partitions)) as i32
}

fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a [u8], &'a [u8])> {
    pairs
        .iter()
        .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
        .collect()
}

/// Series of every key length class of XXH3 (up to 16, 17–128, 129–240, over
/// 240 bytes), with their partitions out of 8, 1000 and 2^32 - 1.
#[test]
fn pinned_series_keep_their_partitions() {
    let long_value = "v".repeat(300);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, [i32; 3]);
    let cases: Vec<Case<'_>> = vec![
        ("acme", vec![("__name__", "up")], [3, 19, 1_151_784_704]),
        (
            "acme",
            vec![("__name__", "up"), ("job", "a")],
            [0, 688, 1_676_882_128],
        ),
        (
            "dev",
            vec![
                ("__name__", "node_cpu_seconds_total"),
                ("cluster_name", "demo-cluster"),
                ("cpu", "0"),
                ("instance", "127.0.0.1:19100"),
                ("job", "node"),
                ("mode", "idle"),
            ],
            [1, 113, 958_179_643],
        ),
        (
            "tenant-with-a-longer-name",
            vec![
                ("__name__", "container_memory_working_set_bytes"),
                ("cluster_name", "prod-eu-1"),
                ("container", "app-3"),
                ("endpoint", "http-metrics"),
                ("instance", "10.0.17.42:9100"),
                ("job", "kubernetes-pods"),
                ("namespace", "team-7"),
                ("node", "node-12"),
                ("pod", "app-3-7d9f8c6b5-00042"),
                ("service", "svc-11"),
            ],
            [6, 310, 1_094_788_740],
        ),
        (
            "acme",
            vec![("__name__", "big"), ("payload", long_value.as_str())],
            [2, 362, 1_916_781_142],
        ),
        (
            "",
            vec![("__name__", "ü-utf8"), ("ünï", "cödé")],
            [6, 254, 1_066_756_814],
        ),
    ];
    let mut computed = Vec::new();
    for (tenant, pairs, expected) in &cases {
        let sorted = labels(pairs);
        let got =
            [8, 1000, u32::MAX].map(|partitions| partition_of_series(tenant, &sorted, partitions));
        for (partitions, value) in [8, 1000, u32::MAX].into_iter().zip(got) {
            assert_eq!(value, reference_partition(tenant, &sorted, partitions));
        }
        computed.push((tenant, got, *expected));
    }
    for (tenant, got, expected) in &computed {
        assert_eq!(got, expected, "tenant {tenant:?}: {computed:?}");
    }
}

fn fixture_requests() -> Vec<Vec<u8>> {
    proto::fixtures::prometheus_2_42_raw()
        .unwrap()
        .into_iter()
        .map(|(_, raw)| raw)
        .collect()
}

/// Series per partition (of 8 and of 1000, summed into 10 buckets) over every
/// series of the Prometheus captures, as the split writes them.
#[test]
fn the_fixtures_keep_their_partitions() {
    let mut per_partition_8 = BTreeMap::new();
    let mut per_bucket_1000 = BTreeMap::new();
    let mut checked = 0;
    for raw in fixture_requests() {
        for (partitions, counts, bucket) in [
            (8u32, &mut per_partition_8, 1i32),
            (1000, &mut per_bucket_1000, 100),
        ] {
            let batch = split_v1(&raw, "dev", &SeriesLimits::default(), partitions).unwrap();
            for (partition, record) in &batch.records {
                let request = WriteRequest::decode(record.as_slice()).unwrap();
                for series in &request.timeseries {
                    let pairs = proto::fixtures::v1_label_bytes(series);
                    assert_eq!(*partition, reference_partition("dev", &pairs, partitions));
                    *counts.entry(partition / bucket).or_insert(0) += 1;
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 40_000);
    let per_partition_8: Vec<i32> = per_partition_8.values().copied().collect();
    let per_bucket_1000: Vec<i32> = per_bucket_1000.values().copied().collect();
    assert_eq!(
        (per_partition_8, per_bucket_1000),
        (
            vec![2_222, 2_815, 2_581, 2_479, 2_457, 2_665, 2_613, 2_168],
            vec![
                1_749, 1_773, 1_792, 2_133, 2_079, 2_025, 2_009, 2_185, 2_296, 1_959
            ]
        )
    );
}

/// The same series sent as remote-write 2.0 land where their 1.0 form does.
#[test]
fn v2_series_land_where_their_v1_form_does() {
    for raw in fixture_requests() {
        let request = WriteRequest::decode(raw.as_slice()).unwrap();
        let v2_raw = proto::fixtures::v1_as_v2(&request).encode_to_vec();
        let batch = split_v2(&v2_raw, "dev", &SeriesLimits::default(), 8).unwrap();
        assert_eq!(batch.written.series, request.timeseries.len());
        for (partition, record) in &batch.records {
            let part = v2::Request::decode(record.as_slice()).unwrap();
            for series in &part.timeseries {
                let pairs = proto::fixtures::v2_label_bytes(&part, series);
                assert_eq!(*partition, reference_partition("dev", &pairs, 8));
            }
        }
    }
}
