//! Synthetic remote-write requests shared by the benchmarks and tests.

// Each includer uses part of it.
#![allow(dead_code)]

use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

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
