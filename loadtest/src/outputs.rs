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

use proto::wire::Fields;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_128;

use crate::verify::{
    Decoder, KIND_FLOAT, KIND_HISTOGRAM, SampleId, SampleLedger, VerifyError, label_pair,
    partition_count, patiently, span_of,
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

impl Decoder {
    /// Calls `visit` with the identity of every sample of one `metrics.bound`
    /// (`bound`) or `metrics.unbound` record whose labels carry `run_label = run_id`,
    /// and where it went. Protobuf (`proto::records`) or the correlator's JSON.
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
            return self.json_output_samples(payload, run_label, run_id, visit);
        }
        // BoundSeries: component = 2 (externalId = 1), labels = 3, samples = 4,
        // histograms = 5. UnboundSeries: labels = 4, samples = 5, histograms = 6.
        let (labels_field, samples_field, histograms_field) =
            if bound { (3, 4, 5) } else { (4, 5, 6) };
        let mut component: &[u8] = &[];
        self.labels.clear();
        for field in Fields::new(payload) {
            let field = field?;
            if bound && field.number == 2 {
                for component_field in Fields::new(field.bytes()?) {
                    let component_field = component_field?;
                    if component_field.number == 1 {
                        component = component_field.bytes()?;
                    }
                }
            } else if field.number == labels_field {
                let (name, value) = label_pair(field.bytes()?)?;
                self.labels
                    .push((span_of(payload, name), span_of(payload, value)));
            }
        }
        if !self.seal_series(payload, run_label.as_bytes(), run_id.as_bytes()) {
            return Ok(());
        }
        let destination = if bound {
            Destination::Bound(component)
        } else {
            Destination::Unbound
        };
        self.visit_samples(payload, samples_field, histograms_field, &mut |id| {
            visit(id, destination)
        })
    }

    fn json_output_samples(
        &mut self,
        payload: &[u8],
        run_label: &str,
        run_id: &str,
        visit: &mut dyn FnMut(SampleId, Destination<'_>),
    ) -> Result<(), VerifyError> {
        let record: Value = serde_json::from_slice(payload).map_err(|_| VerifyError::BadJson)?;
        let Some(labels) = record["labels"].as_object() else {
            return Err(VerifyError::BadJson);
        };
        // Labels go into one scratch buffer so the protobuf path's identity applies.
        let mut scratch = Vec::new();
        let mut spans = Vec::with_capacity(labels.len());
        for (name, value) in labels {
            let value = value.as_str().ok_or(VerifyError::BadJson)?;
            let name_start = scratch.len();
            scratch.extend_from_slice(name.as_bytes());
            let value_start = scratch.len();
            scratch.extend_from_slice(value.as_bytes());
            spans.push(((name_start, value_start), (value_start, scratch.len())));
        }
        self.labels.clear();
        self.labels.extend(spans);
        if !self.seal_series(&scratch, run_label.as_bytes(), run_id.as_bytes()) {
            return Ok(());
        }
        let component = record["component"]["externalId"]
            .as_str()
            .map(str::as_bytes);
        let destination = match component {
            Some(component) => Destination::Bound(component),
            None => Destination::Unbound,
        };
        for (kind, list) in [(KIND_FLOAT, "samples"), (KIND_HISTOGRAM, "histograms")] {
            for sample in record[list].as_array().into_iter().flatten() {
                let timestamp = sample["timestamp"].as_i64().ok_or(VerifyError::BadJson)?;
                visit(self.sample_id(kind, timestamp), destination);
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
    use crate::payload::{Protocol, encode_v1};
    use proto::Message as _;
    use proto::prometheus::{Label, Sample};
    use proto::records::{BoundComponent, BoundSeries, UnboundSeries};

    fn labels(run: &str) -> Vec<Label> {
        [("__name__", "up"), ("loadtest_run", run), ("pod", "a")]
            .iter()
            .map(|(name, value)| Label {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect()
    }

    fn sample(timestamp: i64) -> Sample {
        Sample {
            value: 1.0,
            timestamp,
        }
    }

    /// The ids the samples topic would give for series `up{pod="a"}` at `timestamps`.
    fn topic_ids(timestamps: &[i64]) -> Vec<SampleId> {
        let series: Vec<_> = timestamps
            .iter()
            .map(|timestamp| {
                let labels = labels("run")
                    .into_iter()
                    .map(|label| (label.name, label.value))
                    .collect();
                (labels, sample(*timestamp))
            })
            .collect();
        let mut ids = Vec::new();
        Decoder::new()
            .samples_of_run(
                Protocol::V1.content_type(),
                &encode_v1(&series),
                "loadtest_run",
                "run",
                &mut |id| ids.push(id),
            )
            .unwrap();
        ids
    }

    fn bound(component: &str, timestamps: &[i64]) -> Vec<u8> {
        BoundSeries {
            tenant: "t".into(),
            component: Some(BoundComponent {
                external_id: component.into(),
                ..BoundComponent::default()
            }),
            labels: labels("run"),
            samples: timestamps.iter().map(|t| sample(*t)).collect(),
            histograms: vec![],
        }
        .encode_to_vec()
    }

    fn visit_output(ledger: &mut OutputLedger, content_type: &str, payload: &[u8], bound: bool) {
        Decoder::new()
            .output_samples(
                content_type,
                payload,
                bound,
                "loadtest_run",
                "run",
                &mut |id, to| ledger.found(id, to),
            )
            .unwrap();
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
        let ids = topic_ids(&[1, 2]);
        let mut ledger = ledger_with(&ids, 1);
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &bound("pod/a", &[1, 2]),
            true,
        );
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &bound("container/a", &[1]),
            true,
        );
        let unbound = UnboundSeries {
            tenant: "t".into(),
            labels: labels("run"),
            samples: vec![sample(2)],
            ..UnboundSeries::default()
        };
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &unbound.encode_to_vec(),
            false,
        );
        let counts = ledger.counts();
        assert_eq!(counts.expected, 2);
        assert_eq!(counts.bound, 2);
        assert_eq!(counts.unbound, 1);
        assert_eq!(counts.missing, 0);
        assert_eq!(counts.copies, 4);
        assert_eq!(counts.duplicated, 0);
    }

    #[test]
    fn repeats_beyond_the_topic_copies_are_duplicates_and_gaps_are_missing() {
        let ids = topic_ids(&[1, 2, 3]);
        let mut ledger = ledger_with(&ids, 1);
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &bound("pod/a", &[1, 2]),
            true,
        );
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &bound("pod/a", &[1]),
            true,
        );
        let counts = ledger.counts();
        assert_eq!(counts.missing, 1, "timestamp 3 never came out");
        assert_eq!(counts.duplicated, 1, "timestamp 1 bound to pod/a twice");

        // A sample the samples topic holds twice may be bound twice.
        let mut twice = ledger_with(&topic_ids(&[1]), 2);
        visit_output(
            &mut twice,
            "application/x-protobuf",
            &bound("pod/a", &[1]),
            true,
        );
        visit_output(
            &mut twice,
            "application/x-protobuf",
            &bound("pod/a", &[1]),
            true,
        );
        assert_eq!(twice.counts().duplicated, 0);
    }

    #[test]
    fn json_outputs_have_the_same_identities() {
        let ids = topic_ids(&[5]);
        let mut ledger = ledger_with(&ids, 1);
        let json = serde_json::json!({
            "tenant": "t",
            "component": {"externalId": "pod/a"},
            "labels": {"pod": "a", "__name__": "up", "loadtest_run": "run"},
            "samples": [{"timestamp": 5, "value": 1.0}],
            "histograms": [],
        });
        visit_output(
            &mut ledger,
            "application/json",
            json.to_string().as_bytes(),
            true,
        );
        let counts = ledger.counts();
        assert_eq!((counts.bound, counts.missing, counts.unexpected), (1, 0, 0));
    }

    #[test]
    fn other_runs_and_unknown_samples() {
        let mut ledger = ledger_with(&topic_ids(&[1]), 1);
        let mut other = BoundSeries::decode(bound("pod/a", &[1]).as_slice()).unwrap();
        other.labels = labels("other-run");
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &other.encode_to_vec(),
            true,
        );
        assert_eq!(ledger.counts().unexpected, 0);
        visit_output(
            &mut ledger,
            "application/x-protobuf",
            &bound("pod/a", &[9]),
            true,
        );
        assert_eq!(ledger.counts().unexpected, 1);
        assert_eq!(ledger.counts().missing, 1);
    }
}
