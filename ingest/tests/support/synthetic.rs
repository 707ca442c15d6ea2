//! Synthetic remote-write requests shared by the benchmarks and tests.

// Each includer uses part of it.
#![allow(dead_code)]

use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use proto::v2;

/// Kubernetes-like series: 10 labels, one sample each, `count` per request.
pub fn synthetic_v1(count: usize) -> WriteRequest {
    let timeseries = (0..count)
        .map(|i| {
            let label = |name: &str, value: String| Label {
                name: name.into(),
                value,
            };
            TimeSeries {
                labels: vec![
                    label("__name__", format!("container_metric_{}", i % 50)),
                    label("cluster_name", "prod-eu-1".into()),
                    label("container", format!("app-{}", i % 7)),
                    label("endpoint", "http-metrics".into()),
                    label("instance", format!("10.0.{}.{}:9100", i % 200, i % 250)),
                    label("job", "kubernetes-pods".into()),
                    label("namespace", format!("team-{}", i % 20)),
                    label("node", format!("node-{}", i % 64)),
                    label("pod", format!("app-{}-7d9f8c6b5-{:05}", i % 7, i)),
                    label("service", format!("svc-{}", i % 30)),
                ],
                samples: vec![Sample {
                    value: i as f64 * 1.5,
                    timestamp: 1_700_000_000_000 + i as i64,
                }],
                ..Default::default()
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

/// The same series as remote-write 2.0, symbols interned in first-seen order.
pub fn to_v2(request: &WriteRequest) -> v2::Request {
    let mut symbols = vec![String::new()];
    let mut index = std::collections::HashMap::new();
    let mut intern = |s: &str| -> u32 {
        *index.entry(s.to_string()).or_insert_with(|| {
            symbols.push(s.to_string());
            (symbols.len() - 1) as u32
        })
    };
    let timeseries = request
        .timeseries
        .iter()
        .map(|ts| v2::TimeSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [intern(&l.name), intern(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| v2::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
}
