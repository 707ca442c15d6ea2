//! Read-back of the correlator's outputs: every sample of this run that is in
//! the samples topic must come out of the join, bound to one or more components
//! (`metrics.bound`) or with the reason it did not bind (`metrics.unbound`).
//!
//! First the correlator's consumer group must have committed past everything
//! the samples topic holds (at-least-once commits only after the outputs are
//! acknowledged, exactly-once commits with them), then both output topics are
//! read and each copy of a sample is counted per destination: a component's
//! externalId, or "unbound".

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_128;

use crate::verify::{
    Decoder, KIND_FLOAT, KIND_HISTOGRAM, SampleId, SampleLedger, Span, VerifyError,
    partition_count, patiently,
};

/// Where one copy of a sample went: a bound record names a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<'a> {
    Bound(&'a [u8]),
    Unbound,
}

#[derive(Debug, Default, Clone, Copy)]
struct OutputTally {
    bound: u32,
    unbound: u32,
}

/// Copies of one sample at one destination, and how many its copies in the
/// samples topic allow (a sample sent twice is rightly bound twice).
#[derive(Debug, Clone, Copy)]
struct DestinationCopies {
    copies: u32,
    allowed: u32,
}

/// Copies of this run's samples in the outputs, against the samples topic.
#[derive(Debug, Default)]
pub struct OutputLedger {
    /// Copies in the samples topic, per sample: what the outputs must account for.
    in_topic: HashMap<SampleId, u32>,
    outputs: HashMap<SampleId, OutputTally>,
    /// Copies per (sample, destination), to tell duplicates from multiple bindings.
    per_destination: HashMap<u128, DestinationCopies>,
    unexpected: u64,
}

/// The verdict on the outputs, in distinct samples unless said otherwise.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OutputCounts {
    /// Samples of this run in the samples topic: each must come out.
    pub expected: u64,
    /// Samples bound to at least one component.
    pub bound: u64,
    /// Samples written as unbound.
    pub unbound: u64,
    /// Samples in the samples topic that are in neither output: must be zero.
    pub missing: u64,
    /// Output copies (one per component bound to, or one unbound).
    pub copies: u64,
    /// Copies to one destination beyond the sample's copies in the samples
    /// topic: what the correlator itself repeated (at-least-once replay).
    pub duplicated: u64,
    /// Copies of samples with this run's label that the samples topic does not hold.
    pub unexpected: u64,
}

impl OutputLedger {
    /// Starts from what the samples topic was found to hold.
    pub fn new(samples: &SampleLedger) -> OutputLedger {
        OutputLedger {
            in_topic: samples.found_copies().collect(),
            ..OutputLedger::default()
        }
    }

    pub fn found(&mut self, id: SampleId, destination: Destination<'_>) {
        let Some(&in_topic) = self.in_topic.get(&id) else {
            self.unexpected += 1;
            return;
        };
        let tally = self.outputs.entry(id).or_default();
        let mut key = Vec::with_capacity(17 + 96);
        key.extend_from_slice(&id.to_le_bytes());
        match destination {
            Destination::Bound(component) => {
                tally.bound += 1;
                key.push(1);
                key.extend_from_slice(component);
            }
            Destination::Unbound => {
                tally.unbound += 1;
                key.push(0);
            }
        }
        let copies = self
            .per_destination
            .entry(xxh3_128(&key))
            .or_insert(DestinationCopies {
                copies: 0,
                allowed: in_topic,
            });
        copies.copies += 1;
    }

    pub fn counts(&self) -> OutputCounts {
        let mut counts = OutputCounts {
            expected: self.in_topic.len() as u64,
            unexpected: self.unexpected,
            ..OutputCounts::default()
        };
        for id in self.in_topic.keys() {
            match self.outputs.get(id) {
                None => counts.missing += 1,
                Some(tally) => {
                    counts.bound += u64::from(tally.bound > 0);
                    counts.unbound += u64::from(tally.unbound > 0);
                    counts.copies += u64::from(tally.bound) + u64::from(tally.unbound);
                }
            }
        }
        counts.duplicated = self
            .per_destination
            .values()
            .map(|destination| u64::from(destination.copies.saturating_sub(destination.allowed)))
            .sum();
        counts
    }
}

pub use proto::{EXPORTED_PREFIX, OutputLabels};

/// The labels added to the series of one topic; for `metrics.bound` the externalId's first.
fn added_labels(labels: &OutputLabels, bound: bool) -> [&[u8]; 3] {
    if bound {
        [
            labels.external_id.as_bytes(),
            labels.component_type.as_bytes(),
            labels.component_name.as_bytes(),
        ]
    } else {
        [
            labels.unbound_reason.as_bytes(),
            labels.unbound_detail.as_bytes(),
            &[],
        ]
    }
}

/// Takes the labels the correlator added (`added`; empty names are none) out of
/// `labels`, ranges of `text`, and gives the series back its own labels of those
/// names. The correlator renames a series' own `X` that an added label takes to
/// the first of `exported_X`, `exported_exported_X`, ... the series does not
/// have (Prometheus's `honor_labels: false`), so where `X` was added, the last
/// of an unbroken run `exported_X`, `exported_exported_X`, ... is the series'
/// own `X` again, and the others are its own labels as they were. Returns the
/// value of each added label found.
fn strip_added_labels(
    text: &[u8],
    labels: &mut Vec<(Span, Span)>,
    added: &[&[u8]; 3],
) -> [Option<Span>; 3] {
    let text_of = |span: Span| &text[span.0..span.1];
    let mut values = [None; 3];
    labels.retain(|(name, value)| {
        let name = text_of(*name);
        match added.iter().position(|x| !x.is_empty() && *x == name) {
            Some(index) => {
                values[index] = Some(*value);
                false
            }
            None => true,
        }
    });
    for (x, value) in added.iter().zip(&values) {
        if value.is_none() {
            continue;
        }
        let mut own = None;
        for level in 1.. {
            let at_level =
                |(name, _): &(Span, Span)| exported_level(text_of(*name), x) == Some(level);
            match labels.iter().position(at_level) {
                Some(index) => own = Some((index, level)),
                None => break,
            }
        }
        if let Some((index, level)) = own {
            labels[index].0.0 += level * EXPORTED_PREFIX.len();
        }
    }
    values
}

/// How many `exported_` stand before `x` in `name`, if `name` is `x` behind one or more.
fn exported_level(name: &[u8], x: &[u8]) -> Option<usize> {
    let mut rest = name;
    let mut level = 0;
    while let Some(unprefixed) = rest.strip_prefix(EXPORTED_PREFIX.as_bytes()) {
        rest = unprefixed;
        level += 1;
        if rest == x {
            return Some(level);
        }
    }
    None
}

impl Decoder {
    /// Calls `visit` with the identity of every sample (float or histogram) of
    /// one `metrics.bound` (`bound`) or `metrics.unbound` record whose series
    /// carry `run_label = run_id`, and where it went. A record is a remote-write
    /// 2.0 request of many series, or the correlator's JSON of it. Identities are
    /// those of the series as they were sent: without the labels the correlator
    /// added, and with the series' own labels of those names back from
    /// `exported_<name>`.
    pub fn output_samples(
        &mut self,
        content_type: &str,
        payload: &[u8],
        bound: bool,
        run_label: &str,
        run_id: &str,
        visit: &mut dyn FnMut(SampleId, Destination<'_>),
    ) -> Result<(), VerifyError> {
        if memchr::memmem::find(payload, run_id.as_bytes()).is_none() {
            return Ok(());
        }
        if content_type.to_ascii_lowercase().contains("json") {
            return self.json_output_samples(payload, bound, run_label, run_id, visit);
        }
        self.v2_series(payload, &mut |decoder, series| {
            let Some(destination) =
                decoder.seal_output_series(payload, bound, run_label, run_id)?
            else {
                return Ok(());
            };
            decoder.visit_samples(
                series,
                proto::fields::v2::TIME_SERIES_SAMPLES,
                proto::fields::v2::TIME_SERIES_HISTOGRAMS,
                &mut |id| visit(id, destination),
            )
        })
    }

    /// With the labels of one output series in `labels` (ranges of `text`): the
    /// series' original identity sealed, and where the series went; `None` for
    /// a series of another run.
    fn seal_output_series<'t>(
        &mut self,
        text: &'t [u8],
        bound: bool,
        run_label: &str,
        run_id: &str,
    ) -> Result<Option<Destination<'t>>, VerifyError> {
        let values = strip_added_labels(
            text,
            &mut self.labels,
            &added_labels(&self.output_labels, bound),
        );
        if !self.seal_series(text, run_label.as_bytes(), run_id.as_bytes()) {
            return Ok(None);
        }
        if !bound {
            return Ok(Some(Destination::Unbound));
        }
        match values[0] {
            Some((start, end)) if start < end => Ok(Some(Destination::Bound(&text[start..end]))),
            _ => Err(VerifyError::NoExternalId(
                self.output_labels.external_id.clone(),
            )),
        }
    }

    fn json_output_samples(
        &mut self,
        payload: &[u8],
        bound: bool,
        run_label: &str,
        run_id: &str,
        visit: &mut dyn FnMut(SampleId, Destination<'_>),
    ) -> Result<(), VerifyError> {
        let record: Value = serde_json::from_slice(payload).map_err(|_| VerifyError::BadJson)?;
        let Some(timeseries) = record["timeseries"].as_array() else {
            return Err(VerifyError::BadJson);
        };
        // A series' labels go into one scratch buffer so the protobuf path's identity applies.
        let mut scratch = Vec::new();
        for series in timeseries {
            let Some(labels) = series["labels"].as_object() else {
                return Err(VerifyError::BadJson);
            };
            scratch.clear();
            self.labels.clear();
            for (name, value) in labels {
                let value = value.as_str().ok_or(VerifyError::BadJson)?;
                let name_start = scratch.len();
                scratch.extend_from_slice(name.as_bytes());
                let value_start = scratch.len();
                scratch.extend_from_slice(value.as_bytes());
                self.labels
                    .push(((name_start, value_start), (value_start, scratch.len())));
            }
            let Some(destination) = self.seal_output_series(&scratch, bound, run_label, run_id)?
            else {
                continue;
            };
            for (kind, list) in [(KIND_FLOAT, "samples"), (KIND_HISTOGRAM, "histograms")] {
                for sample in series[list].as_array().into_iter().flatten() {
                    let timestamp = sample["timestamp"].as_i64().ok_or(VerifyError::BadJson)?;
                    visit(self.sample_id(kind, timestamp), destination);
                }
            }
        }
        Ok(())
    }
}

/// The outputs section of the verification.
#[derive(Debug, Clone, Serialize)]
pub struct OutputsReport {
    pub bound_topic: String,
    pub unbound_topic: String,
    pub settled: Settled,
    pub records_read: u64,
    pub records_undecodable: u64,
    pub counts: OutputCounts,
}

impl OutputsReport {
    /// Every sample of the samples topic came out, and the correlator had caught up.
    pub fn passed(&self) -> bool {
        self.counts.missing == 0 && self.settled.lag == 0
    }
}

/// How long the correlator took to catch up, or that it did not.
#[derive(Debug, Clone, Serialize)]
pub struct Settled {
    pub group: String,
    pub seconds: f64,
    /// Records of the samples topic the group had not committed past when waiting stopped.
    pub lag: i64,
}

/// Waits until consumer group `group` has committed offsets at or past the
/// current end of every partition of `topic`, or `timeout` passes.
pub fn wait_for_group(
    brokers: &str,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Result<Settled, VerifyError> {
    // Only committed offsets are read: this consumer never joins the group.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let partitions = partition_count(&consumer, topic)?;
    let mut ends = Vec::new();
    let mut wanted = TopicPartitionList::new();
    for partition in 0..partitions {
        let (_, high) =
            patiently(|| consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)))?;
        ends.push(high);
        wanted.add_partition(topic, partition);
    }
    let started = Instant::now();
    loop {
        let committed =
            patiently(|| consumer.committed_offsets(wanted.clone(), Duration::from_secs(10)))?;
        let lag: i64 = (0..partitions)
            .map(|partition| {
                let position = committed
                    .find_partition(topic, partition)
                    .and_then(|element| match element.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    })
                    .unwrap_or(0);
                (ends[partition as usize] - position).max(0)
            })
            .sum();
        if lag == 0 || started.elapsed() >= timeout {
            return Ok(Settled {
                group: group.to_string(),
                seconds: started.elapsed().as_secs_f64(),
                lag,
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::Message as _;
    use proto::v2;

    const RUN_LABEL: &str = "loadtest_run";

    /// A series as the load test sent it: its labels, and the timestamps of
    /// its float samples and of its histograms.
    #[derive(Debug, Clone)]
    struct Series {
        labels: Vec<(String, String)>,
        samples: Vec<i64>,
        histograms: Vec<i64>,
    }

    fn series(run: &str, labels: &[(&str, &str)], samples: &[i64], histograms: &[i64]) -> Series {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(name, value)| ((*name).into(), (*value).into()))
            .collect();
        labels.push((RUN_LABEL.into(), run.into()));
        Series {
            labels,
            samples: samples.to_vec(),
            histograms: histograms.to_vec(),
        }
    }

    /// `up{pod="a"}`, float samples only.
    fn up(run: &str, samples: &[i64]) -> Series {
        series(run, &[("__name__", "up"), ("pod", "a")], samples, &[])
    }

    /// A series that has a `component_name` label of its own, with histograms.
    fn info(run: &str, samples: &[i64], histograms: &[i64]) -> Series {
        series(
            run,
            &[
                ("__name__", "kube_pod_info"),
                ("component_name", "mine"),
                ("pod", "b"),
            ],
            samples,
            histograms,
        )
    }

    fn symbol(symbols: &mut Vec<String>, text: &str) -> u32 {
        let index = symbols.iter().position(|known| known == text);
        index.unwrap_or_else(|| {
            symbols.push(text.into());
            symbols.len() - 1
        }) as u32
    }

    /// A remote-write 2.0 request of `series`, labels sorted by name, each
    /// with an exemplar and metadata that verification must pass over.
    fn encode(series: &[Series]) -> Vec<u8> {
        let mut symbols = vec![String::new()];
        let mut timeseries = Vec::new();
        for one in series {
            let mut labels = one.labels.clone();
            labels.sort();
            let mut labels_refs = Vec::new();
            for (name, value) in &labels {
                labels_refs.push(symbol(&mut symbols, name));
                labels_refs.push(symbol(&mut symbols, value));
            }
            let exemplar_labels = vec![
                symbol(&mut symbols, "trace_id"),
                symbol(&mut symbols, "4bf9"),
            ];
            timeseries.push(v2::TimeSeries {
                labels_refs,
                samples: one
                    .samples
                    .iter()
                    .map(|timestamp| v2::Sample {
                        value: 12.0,
                        timestamp: *timestamp,
                        start_timestamp: 0,
                    })
                    .collect(),
                histograms: one
                    .histograms
                    .iter()
                    .map(|timestamp| v2::Histogram {
                        count: Some(v2::histogram::Count::CountInt(3)),
                        sum: 1.5,
                        timestamp: *timestamp,
                        ..v2::Histogram::default()
                    })
                    .collect(),
                exemplars: vec![v2::Exemplar {
                    labels_refs: exemplar_labels,
                    value: 0.5,
                    timestamp: one.samples.first().copied().unwrap_or(77),
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Gauge as i32,
                    help_ref: symbol(&mut symbols, "help text"),
                    unit_ref: 0,
                }),
                created_timestamp: 0,
            });
        }
        v2::Request {
            symbols,
            timeseries,
        }
        .encode_to_vec()
    }

    /// The correlator's JSON of `series` (already decorated).
    fn json(series: &[Series], bound: bool) -> Vec<u8> {
        let timeseries: Vec<Value> = series
            .iter()
            .map(|one| {
                let labels: serde_json::Map<String, Value> = one
                    .labels
                    .iter()
                    .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
                    .collect();
                let histograms: Vec<Value> = one
                    .histograms
                    .iter()
                    .map(|t| serde_json::json!({"timestamp": t, "protobuf_hex": "1803"}))
                    .collect();
                serde_json::json!({
                    "labels": labels,
                    "samples": one.samples.iter()
                        .map(|t| serde_json::json!({"timestamp": t, "value": 12}))
                        .collect::<Vec<_>>(),
                    "histograms": histograms,
                    "exemplars": [{"labels": {"trace_id": "4bf9"}, "value": 0.5, "timestamp": 77}],
                    "metadata": {"type": "gauge", "help": "help text", "unit": ""},
                })
            })
            .collect();
        let mut record = serde_json::json!({"tenant": "acme", "timeseries": timeseries});
        if bound {
            record["component"] =
                serde_json::json!({"externalId": "pod/a", "type": "pod", "rule": "k8s-pod"});
        } else {
            record["reason"] = "no_component".into();
        }
        record.to_string().into_bytes()
    }

    /// What the correlator makes of `series`: the added labels join them, and
    /// a series' own label an added one takes becomes the first
    /// `exported_<name>`, `exported_exported_<name>`, ... that is free.
    fn decorate(series: &[Series], added: &[(&str, &str)]) -> Vec<Series> {
        let mut series = series.to_vec();
        for one in &mut series {
            for (label, _) in added {
                let Some(index) = one.labels.iter().position(|(name, _)| name == label) else {
                    continue;
                };
                let mut renamed = format!("{EXPORTED_PREFIX}{label}");
                while one.labels.iter().any(|(name, _)| *name == renamed)
                    || added.iter().any(|(name, _)| *name == renamed)
                {
                    renamed.insert_str(0, EXPORTED_PREFIX);
                }
                one.labels[index].0 = renamed;
            }
            one.labels.extend(
                added
                    .iter()
                    .map(|(name, value)| ((*name).into(), (*value).into())),
            );
            one.labels.sort();
        }
        series
    }

    /// The series as bound to `component`, which has type `pod` and name `name` if any.
    fn bind(series: &[Series], component: &str, name: Option<&str>) -> Vec<Series> {
        let mut added = vec![
            ("component_external_id", component),
            ("component_type", "pod"),
        ];
        added.extend(name.map(|name| ("component_name", name)));
        decorate(series, &added)
    }

    fn unbind(series: &[Series]) -> Vec<Series> {
        decorate(
            series,
            &[
                ("unbound_reason", "no_component"),
                ("unbound_detail", "no component carries pod/a"),
            ],
        )
    }

    fn bound(component: &str, series: &[Series]) -> Vec<u8> {
        encode(&bind(series, component, Some("p1")))
    }

    fn unbound(series: &[Series]) -> Vec<u8> {
        encode(&unbind(series))
    }

    /// The ids the samples topic gives for `series`.
    fn topic_ids(series: &[Series]) -> Vec<SampleId> {
        let mut ids = Vec::new();
        Decoder::new()
            .samples_of_run(
                proto::CONTENT_TYPE_V2,
                &encode(series),
                RUN_LABEL,
                "run",
                &mut |id| ids.push(id),
            )
            .unwrap();
        ids
    }

    fn try_output(
        ledger: &mut OutputLedger,
        content_type: &str,
        payload: &[u8],
        bound: bool,
    ) -> Result<(), VerifyError> {
        Decoder::new().output_samples(
            content_type,
            payload,
            bound,
            RUN_LABEL,
            "run",
            &mut |id, to| ledger.found(id, to),
        )
    }

    fn visit_output(ledger: &mut OutputLedger, payload: &[u8], bound: bool) {
        try_output(ledger, proto::CONTENT_TYPE_V2, payload, bound).unwrap();
    }

    fn ledger_with(ids: &[SampleId], copies: u32) -> OutputLedger {
        let mut samples = SampleLedger::new();
        for id in ids {
            samples.sent(*id, copies);
            for _ in 0..copies {
                samples.found(*id);
            }
        }
        OutputLedger::new(&samples)
    }

    #[test]
    fn bound_twice_to_two_components_is_not_a_duplicate() {
        let ids = topic_ids(&[up("run", &[1, 2]), info("run", &[1], &[1])]);
        assert_eq!(ids.len(), 4);
        let mut ledger = ledger_with(&ids, 1);
        visit_output(
            &mut ledger,
            &bound("pod/a", &[up("run", &[1, 2]), info("run", &[1], &[1])]),
            true,
        );
        visit_output(&mut ledger, &bound("container/a", &[up("run", &[1])]), true);
        visit_output(&mut ledger, &unbound(&[up("run", &[2])]), false);
        assert_eq!(
            ledger.counts(),
            OutputCounts {
                expected: 4,
                bound: 4,
                unbound: 1,
                missing: 0,
                copies: 6,
                duplicated: 0,
                unexpected: 0,
            }
        );
    }

    #[test]
    fn repeats_beyond_the_topic_copies_are_duplicates_and_gaps_are_missing() {
        let ids = topic_ids(&[up("run", &[1, 2, 3]), info("run", &[1], &[1])]);
        let mut ledger = ledger_with(&ids, 1);
        visit_output(
            &mut ledger,
            &bound("pod/a", &[up("run", &[1, 2]), info("run", &[1], &[1])]),
            true,
        );
        visit_output(
            &mut ledger,
            &bound("pod/a", &[info("run", &[], &[1]), up("run", &[1])]),
            true,
        );
        let counts = ledger.counts();
        assert_eq!(counts.missing, 1, "up at 3 never came out");
        assert_eq!(
            counts.duplicated, 2,
            "up at 1 and the histogram at 1 bound to pod/a twice"
        );
        assert_eq!(counts.unexpected, 0);

        // A sample the samples topic holds twice may be bound twice.
        let mut twice = ledger_with(&topic_ids(&[info("run", &[1], &[])]), 2);
        for _ in 0..2 {
            visit_output(&mut twice, &bound("pod/a", &[info("run", &[1], &[])]), true);
        }
        assert_eq!(twice.counts().duplicated, 0);
        assert_eq!(twice.counts().copies, 2);
    }

    #[test]
    fn added_labels_come_off_and_exported_labels_go_back() {
        let own = series(
            "run",
            &[
                ("__name__", "up"),
                ("component_name", "mine"),
                ("exported_component_name", "older"),
                ("unbound_reason", "own reason"),
                ("exported_pod", "x"),
            ],
            &[1],
            &[2],
        );
        let named = bind(std::slice::from_ref(&own), "pod/a", Some("p1"));
        let labels: Vec<(&str, &str)> = named[0]
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("__name__", "up"),
                ("component_external_id", "pod/a"),
                ("component_name", "p1"),
                ("component_type", "pod"),
                ("exported_component_name", "older"),
                ("exported_exported_component_name", "mine"),
                ("exported_pod", "x"),
                ("loadtest_run", "run"),
                ("unbound_reason", "own reason"),
            ]
        );
        // A component without a name adds no component_name: the series' own
        // exported_component_name is its own.
        let own_exported = series(
            "run",
            &[("__name__", "up"), ("exported_component_name", "x")],
            &[1],
            &[],
        );
        let nameless = bind(std::slice::from_ref(&own_exported), "pod/b", None);
        assert!(
            nameless[0]
                .labels
                .contains(&("exported_component_name".into(), "x".into()))
        );

        let ids = topic_ids(&[own.clone(), own_exported.clone()]);
        let mut ledger = ledger_with(&ids, 1);
        visit_output(&mut ledger, &encode(&named), true);
        visit_output(&mut ledger, &encode(&nameless), true);
        visit_output(&mut ledger, &unbound(&[own, own_exported]), false);
        let counts = ledger.counts();
        assert_eq!([counts.expected, counts.bound, counts.unbound], [3, 3, 3]);
        assert_eq!(
            [counts.missing, counts.duplicated, counts.unexpected],
            [0; 3]
        );
    }

    #[test]
    fn json_outputs_have_the_same_identities() {
        let sent = [up("run", &[5]), info("run", &[5], &[5])];
        let mut ledger = ledger_with(&topic_ids(&sent), 1);
        let bound_json = json(&bind(&sent, "pod/a", Some("p1")), true);
        try_output(&mut ledger, "application/json", &bound_json, true).unwrap();
        let unbound_json = json(&unbind(&sent[..1]), false);
        try_output(&mut ledger, "application/json", &unbound_json, false).unwrap();
        // The same bound record in protobuf: pod/a again, so duplicates.
        visit_output(&mut ledger, &bound("pod/a", &sent), true);
        let counts = ledger.counts();
        assert_eq!([counts.bound, counts.unbound, counts.copies], [3, 1, 7]);
        assert_eq!(
            [counts.missing, counts.duplicated, counts.unexpected],
            [0, 3, 0]
        );

        let no_series = serde_json::json!({"tenant": "acme", "labels": {"loadtest_run": "run"}});
        let result = try_output(
            &mut ledger,
            "application/json",
            no_series.to_string().as_bytes(),
            true,
        );
        assert!(matches!(result, Err(VerifyError::BadJson)));
    }

    #[test]
    fn other_runs_and_unknown_samples() {
        let mut ledger = ledger_with(&topic_ids(&[up("run", &[1])]), 1);
        // Other runs' series in the same records are not counted.
        visit_output(
            &mut ledger,
            &bound(
                "pod/a",
                &[up("other-run", &[1]), info("other-run", &[1], &[1])],
            ),
            true,
        );
        assert_eq!(ledger.counts().unexpected, 0);
        visit_output(
            &mut ledger,
            &bound("pod/a", &[up("other-run", &[1]), up("run", &[9])]),
            true,
        );
        assert_eq!(ledger.counts().unexpected, 1);
        assert_eq!(ledger.counts().missing, 1);

        // A bound series without a component: an error for this run's series only.
        let plain = encode(&[up("other-run", &[1])]);
        assert!(try_output(&mut ledger, proto::CONTENT_TYPE_V2, &plain, true).is_ok());
        let plain = encode(&[up("other-run", &[1]), up("run", &[1])]);
        let result = try_output(&mut ledger, proto::CONTENT_TYPE_V2, &plain, true);
        assert!(
            matches!(&result, Err(VerifyError::NoExternalId(label)) if label == "component_external_id"),
            "{result:?}"
        );
        assert_eq!(
            result.unwrap_err().to_string(),
            "a bound series of this run without a component_external_id label"
        );
    }

    #[test]
    fn added_label_names_can_be_set() {
        let sent = [info("run", &[1], &[])];
        let mut ledger = ledger_with(&topic_ids(&sent), 1);
        let renamed = decorate(&sent, &[("urn", "pod/a"), ("component_name", "p1")]);
        let mut decoder = Decoder::with_output_labels(OutputLabels {
            external_id: "urn".into(),
            component_type: String::new(),
            ..OutputLabels::default()
        });
        decoder
            .output_samples(
                proto::CONTENT_TYPE_V2,
                &encode(&renamed),
                true,
                RUN_LABEL,
                "run",
                &mut |id, to| {
                    assert_eq!(to, Destination::Bound(b"pod/a"));
                    ledger.found(id, to);
                },
            )
            .unwrap();
        assert_eq!((ledger.counts().bound, ledger.counts().unexpected), (1, 0));
    }
}
