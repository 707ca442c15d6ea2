//! Request bodies, built and compressed once before the run so that sending
//! costs the generator nothing but a reference count: a ring of synthetic
//! passes over the series, or captured Prometheus bodies replayed from disk.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;
use proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};
use proto::v2;

use crate::synthetic::{LabelPair, RUN_LABEL, SeriesUniverse, generation};

/// Remote-write protocol of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// remote-write 1.0, `prometheus.WriteRequest`
    V1,
    /// remote-write 2.0, `io.prometheus.write.v2.Request` with its symbol table
    V2,
}

impl From<Protocol> for proto::Protocol {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::V1 => proto::Protocol::V1,
            Protocol::V2 => proto::Protocol::V2,
        }
    }
}

impl Protocol {
    pub fn content_type(self) -> &'static str {
        proto::Protocol::from(self).content_type()
    }

    /// `v1` or `v2`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V1 => "v1",
            Protocol::V2 => "v2",
        }
    }

    /// The `X-Prometheus-Remote-Write-Version` Prometheus sends with this protocol.
    pub fn version_header(self) -> &'static str {
        match self {
            Protocol::V1 => "0.1.0",
            Protocol::V2 => "2.0.0",
        }
    }
}

/// One ready-to-send request: a snappy-compressed body and what it holds.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    pub body: Bytes,
    pub protocol: Protocol,
    /// Float samples plus histogram samples, as ingest's rate limiter counts them.
    pub samples: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("cannot read replay directory {path}: {source}")]
    ReadDirectory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no *.bin request bodies in {0}")]
    NoBodies(PathBuf),
    #[error("{path} is not snappy-compressed: {source}")]
    Snappy { path: PathBuf, source: snap::Error },
    #[error("{path} is not a remote-write 1.0 WriteRequest: {source}")]
    Protobuf {
        path: PathBuf,
        source: prost::DecodeError,
    },
}

/// What the synthetic ring is made of.
#[derive(Debug, Clone)]
pub struct SyntheticPlan {
    pub universe: SeriesUniverse,
    pub samples_per_request: usize,
    /// Series replaced per pass (churn × series).
    pub replaced_per_pass: usize,
    /// Passes pre-encoded; the ring repeats them in order.
    pub passes: u64,
    pub protocol: Protocol,
    /// Timestamp of the samples of pass 0; later passes are one scrape interval apart.
    pub first_timestamp_ms: i64,
    pub scrape_interval_ms: i64,
}

/// Every request of every pass, in sending order. Each pass carries one sample
/// of every slot's current series, `samples_per_request` series per request.
pub fn synthetic_requests(plan: &SyntheticPlan) -> Vec<PreparedRequest> {
    let mut requests = Vec::new();
    let samples_per_request = plan.samples_per_request.max(1);
    for pass in 0..plan.passes {
        let timestamp = plan.first_timestamp_ms + pass as i64 * plan.scrape_interval_ms;
        let mut first_slot = 0;
        while first_slot < plan.universe.series {
            let end_slot = (first_slot + samples_per_request).min(plan.universe.series);
            let series: Vec<(Vec<LabelPair>, Sample)> = (first_slot..end_slot)
                .map(|slot| {
                    let slot_generation =
                        generation(slot, pass, plan.replaced_per_pass, plan.universe.series);
                    let sample = Sample {
                        // Counter-like values that move between passes.
                        value: (slot as f64) * 0.5 + pass as f64 * 10.0,
                        timestamp,
                    };
                    (plan.universe.labels(slot, slot_generation), sample)
                })
                .collect();
            let raw = match plan.protocol {
                Protocol::V1 => encode_v1(&series),
                Protocol::V2 => encode_v2(&series),
            };
            requests.push(PreparedRequest {
                body: compress(&raw),
                protocol: plan.protocol,
                samples: series.len() as u64,
            });
            first_slot = end_slot;
        }
    }
    requests
}

/// A remote-write 1.0 `WriteRequest`, one series per entry.
pub fn encode_v1(series: &[(Vec<LabelPair>, Sample)]) -> Vec<u8> {
    let timeseries = series
        .iter()
        .map(|(labels, sample)| TimeSeries {
            labels: labels
                .iter()
                .map(|(name, value)| Label {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            samples: vec![*sample],
            ..Default::default()
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
    .encode_to_vec()
}

/// A remote-write 2.0 `Request` with its own symbol table (`""` first, as the spec requires).
pub fn encode_v2(series: &[(Vec<LabelPair>, Sample)]) -> Vec<u8> {
    let mut symbols = vec![String::new()];
    let mut symbol_refs = std::collections::HashMap::<&str, u32>::new();
    symbol_refs.insert("", 0);
    let mut timeseries = Vec::with_capacity(series.len());
    for (labels, sample) in series {
        let mut labels_refs = Vec::with_capacity(labels.len() * 2);
        for (name, value) in labels {
            for text in [name.as_str(), value.as_str()] {
                let reference = *symbol_refs.entry(text).or_insert_with(|| {
                    symbols.push(text.to_string());
                    (symbols.len() - 1) as u32
                });
                labels_refs.push(reference);
            }
        }
        timeseries.push(v2::TimeSeries {
            labels_refs,
            samples: vec![v2::Sample {
                value: sample.value,
                timestamp: sample.timestamp,
                start_timestamp: 0,
            }],
            ..Default::default()
        });
    }
    v2::Request {
        symbols,
        timeseries,
    }
    .encode_to_vec()
}

/// Every `*.bin` body in `directory`, in file-name order. With `run_id`, each
/// series also gets the `loadtest_run` label (decoded and re-encoded once) so
/// that verification can tell this run's samples apart; without it the bodies
/// go out byte for byte as captured.
pub fn replay_requests(
    directory: &Path,
    run_id: Option<&str>,
) -> Result<Vec<PreparedRequest>, PayloadError> {
    let entries = std::fs::read_dir(directory).map_err(|source| PayloadError::ReadDirectory {
        path: directory.to_path_buf(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PayloadError::ReadDirectory {
            path: directory.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|extension| extension == "bin") {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(PayloadError::NoBodies(directory.to_path_buf()));
    }
    paths.sort();

    let mut requests = Vec::with_capacity(paths.len());
    for path in paths {
        let captured = std::fs::read(&path).map_err(|source| PayloadError::ReadFile {
            path: path.clone(),
            source,
        })?;
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&captured)
            .map_err(|source| PayloadError::Snappy {
                path: path.clone(),
                source,
            })?;
        let mut request =
            WriteRequest::decode(raw.as_slice()).map_err(|source| PayloadError::Protobuf {
                path: path.clone(),
                source,
            })?;
        let samples = request
            .timeseries
            .iter()
            .map(|series| (series.samples.len() + series.histograms.len()) as u64)
            .sum();
        let body = match run_id {
            None => Bytes::from(captured),
            Some(run_id) => {
                tag_with_run(&mut request, run_id);
                compress(&request.encode_to_vec())
            }
        };
        requests.push(PreparedRequest {
            body,
            protocol: Protocol::V1,
            samples,
        });
    }
    Ok(requests)
}

/// Adds `loadtest_run=<run_id>` to every series, keeping labels sorted by name.
fn tag_with_run(request: &mut WriteRequest, run_id: &str) {
    for series in &mut request.timeseries {
        series.labels.retain(|label| label.name != RUN_LABEL);
        series.labels.push(Label {
            name: RUN_LABEL.into(),
            value: run_id.into(),
        });
        series
            .labels
            .sort_by(|left, right| left.name.cmp(&right.name));
    }
}

fn compress(raw: &[u8]) -> Bytes {
    Bytes::from(
        snap::raw::Encoder::new()
            .compress_vec(raw)
            .expect("snappy compresses any input below 4 GiB"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn plan(protocol: Protocol, series: usize, samples_per_request: usize) -> SyntheticPlan {
        SyntheticPlan {
            universe: SeriesUniverse {
                series,
                labels_per_series: 12,
                run_id: "0123abcd".into(),
                cluster_name: "test-cluster".into(),
            },
            samples_per_request,
            replaced_per_pass: 0,
            passes: 1,
            protocol,
            first_timestamp_ms: 1_700_000_000_000,
            scrape_interval_ms: 15_000,
        }
    }

    fn decompress(request: &PreparedRequest) -> Vec<u8> {
        snap::raw::Decoder::new()
            .decompress_vec(&request.body)
            .unwrap()
    }

    /// Series as `(sorted labels, samples)`, decoded with prost.
    type DecodedSeries = (Vec<LabelPair>, Vec<Sample>);

    fn decode_v1(request: &PreparedRequest) -> Vec<DecodedSeries> {
        WriteRequest::decode(decompress(request).as_slice())
            .unwrap()
            .timeseries
            .into_iter()
            .map(|series| {
                let labels = series
                    .labels
                    .into_iter()
                    .map(|label| (label.name, label.value))
                    .collect();
                (labels, series.samples)
            })
            .collect()
    }

    fn decode_v2(request: &PreparedRequest) -> Vec<DecodedSeries> {
        let message = v2::Request::decode(decompress(request).as_slice()).unwrap();
        assert_eq!(message.symbols[0], "");
        message
            .timeseries
            .into_iter()
            .map(|series| {
                let labels = series
                    .labels_refs
                    .chunks(2)
                    .map(|pair| {
                        (
                            message.symbols[pair[0] as usize].clone(),
                            message.symbols[pair[1] as usize].clone(),
                        )
                    })
                    .collect();
                let samples = series
                    .samples
                    .iter()
                    .map(|sample| Sample {
                        value: sample.value,
                        timestamp: sample.timestamp,
                    })
                    .collect();
                (labels, samples)
            })
            .collect()
    }

    #[test]
    fn requests_hold_samples_per_request_and_cover_every_series_once() {
        let requests = synthetic_requests(&plan(Protocol::V1, 1050, 200));
        let sizes: Vec<u64> = requests.iter().map(|request| request.samples).collect();
        assert_eq!(sizes, vec![200, 200, 200, 200, 200, 50]);
        let mut identities = HashSet::new();
        for request in &requests {
            let series = decode_v1(request);
            assert_eq!(series.len() as u64, request.samples);
            for (labels, samples) in series {
                assert_eq!(labels.len(), 12);
                assert_eq!(samples.len(), 1);
                assert_eq!(samples[0].timestamp, 1_700_000_000_000);
                assert!(labels.contains(&(RUN_LABEL.into(), "0123abcd".into())));
                assert!(identities.insert(labels));
            }
        }
        assert_eq!(identities.len(), 1050);
    }

    #[test]
    fn v1_and_v2_bodies_carry_the_same_series() {
        let v1 = synthetic_requests(&plan(Protocol::V1, 300, 128));
        let v2 = synthetic_requests(&plan(Protocol::V2, 300, 128));
        assert_eq!(v1.len(), 3);
        assert_eq!(v2.len(), 3);
        for (one, two) in v1.iter().zip(&v2) {
            assert_eq!(one.protocol.content_type(), proto::CONTENT_TYPE_V1);
            assert_eq!(two.protocol.content_type(), proto::CONTENT_TYPE_V2);
            assert_eq!(one.samples, two.samples);
            assert_eq!(decode_v1(one), decode_v2(two));
        }
    }

    #[test]
    fn v2_symbols_are_interned_once() {
        let requests = synthetic_requests(&plan(Protocol::V2, 64, 64));
        let message = v2::Request::decode(decompress(&requests[0]).as_slice()).unwrap();
        let distinct: HashSet<&String> = message.symbols.iter().collect();
        assert_eq!(distinct.len(), message.symbols.len());
        assert!(message.symbols.iter().any(|symbol| symbol == "__name__"));
    }

    #[test]
    fn churn_replaces_series_between_passes_with_later_timestamps() {
        let mut churning = plan(Protocol::V1, 100, 100);
        churning.passes = 3;
        churning.replaced_per_pass = 10;
        let requests = synthetic_requests(&churning);
        assert_eq!(requests.len(), 3);
        let passes: Vec<_> = requests.iter().map(decode_v1).collect();
        let series_of = |pass: usize| -> HashSet<Vec<(String, String)>> {
            passes[pass]
                .iter()
                .map(|(labels, _)| labels.clone())
                .collect()
        };
        assert_eq!(series_of(0).intersection(&series_of(1)).count(), 90);
        assert_eq!(series_of(0).intersection(&series_of(2)).count(), 80);
        assert_eq!(passes[2][0].1[0].timestamp, 1_700_000_000_000 + 30_000);
    }

    #[test]
    fn replay_reads_the_captured_bodies_verbatim_or_tagged() {
        let directory = proto::fixtures::prometheus_2_42_dir();
        let captured = proto::fixtures::prometheus_2_42_bodies().unwrap();
        let verbatim = replay_requests(&directory, None).unwrap();
        assert_eq!(verbatim.len(), captured.len());
        for (request, (_, body)) in verbatim.iter().zip(&captured) {
            assert_eq!(&request.body[..], &body[..]);
        }
        let total: u64 = verbatim.iter().map(|request| request.samples).sum();
        assert_eq!(total, 20_000);

        let tagged = replay_requests(&directory, Some("run-7")).unwrap();
        for request in &tagged {
            for (labels, _) in decode_v1(request) {
                assert!(labels.contains(&(RUN_LABEL.into(), "run-7".into())));
                assert!(labels.windows(2).all(|pair| pair[0].0 < pair[1].0));
            }
        }
    }
}
