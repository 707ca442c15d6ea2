//! Read-back verification: every sample of this run that ingest acknowledged
//! must be in `metrics.samples`. Samples are identified by their sorted labels
//! and timestamp, hashed to 128 bits so a long run's ledger stays small.
//! The correlator's outputs are checked the same way, in [`crate::outputs`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use proto::fields::{prometheus as v1, v2};
use proto::wire::{self, Fields, Value, WireError, read_varint};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::outputs::OutputLabels;

/// A sample's identity: xxh3-128 of its sorted labels, kind and timestamp.
pub type SampleId = u128;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} does not exist")]
    NoSuchTopic(String),
    #[error("read {read} of {expected} records of {topic}, then nothing for {idle:?}")]
    Stalled {
        topic: String,
        read: u64,
        expected: u64,
        idle: Duration,
    },
    #[error("malformed protobuf: {0}")]
    Wire(#[from] WireError),
    #[error("label or symbol reference out of range")]
    BadSymbol,
    #[error("not snappy-compressed: {0}")]
    Snappy(#[from] snap::Error),
    #[error(
        "a JSON output record without timeseries, a series without labels, or a sample without a timestamp"
    )]
    BadJson,
    #[error("a bound series of this run without a {0} label")]
    NoExternalId(String),
}

/// What a sample is, so a float sample and a histogram at the same time differ.
pub(crate) const KIND_FLOAT: u8 = 1;
pub(crate) const KIND_HISTOGRAM: u8 = 2;

/// A byte range of the payload being decoded.
pub(crate) type Span = (usize, usize);

/// Called with each series of a request (its labels in `Decoder::labels`) and its bytes.
pub(crate) type SeriesVisitor<'v, 'p> =
    dyn FnMut(&mut Decoder, &'p [u8]) -> Result<(), VerifyError> + 'v;

/// Scratch buffers reused from series to series so decoding does not allocate
/// per label: labels are kept as byte ranges of the payload.
#[derive(Debug, Default)]
pub struct Decoder {
    pub(crate) labels: Vec<(Span, Span)>,
    identity: Vec<u8>,
    symbols: Vec<Span>,
    /// The labels the correlator adds to its output series.
    pub(crate) output_labels: OutputLabels,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A decoder for outputs of a correlator that names its added labels
    /// otherwise than the defaults (`COMPONENT_LABEL_*`, `UNBOUND_LABEL_*`).
    pub fn with_output_labels(output_labels: OutputLabels) -> Decoder {
        Decoder {
            output_labels,
            ..Decoder::default()
        }
    }

    /// Calls `visit` with the identity of every sample (float or histogram) of
    /// `payload` whose series carries `run_label = run_id`. The content type
    /// picks remote-write 1.0 or 2.0.
    pub fn samples_of_run(
        &mut self,
        content_type: &str,
        payload: &[u8],
        run_label: &str,
        run_id: &str,
        visit: &mut dyn FnMut(SampleId),
    ) -> Result<(), VerifyError> {
        // Any encoding holds the run id's bytes verbatim: records of other runs
        // (most of a shared topic) are skipped without walking them.
        if memchr::memmem::find(payload, run_id.as_bytes()).is_none() {
            return Ok(());
        }
        if content_type
            .to_ascii_lowercase()
            .contains("io.prometheus.write.v2.request")
        {
            self.v2_samples(payload, run_label.as_bytes(), run_id.as_bytes(), visit)
        } else {
            self.v1_samples(payload, run_label.as_bytes(), run_id.as_bytes(), visit)
        }
    }

    /// Writes the series' sorted labels into `identity`; false when the run label is not ours.
    pub(crate) fn seal_series(&mut self, payload: &[u8], run_label: &[u8], run_id: &[u8]) -> bool {
        let text = |span: Span| &payload[span.0..span.1];
        let ours = self
            .labels
            .iter()
            .any(|(name, value)| text(*name) == run_label && text(*value) == run_id);
        if !ours {
            return false;
        }
        // Senders and ingest keep labels sorted; sort only when they are not.
        let sorted = self
            .labels
            .windows(2)
            .all(|pair| text(pair[0].0) <= text(pair[1].0));
        if !sorted {
            self.labels.sort_unstable_by(|left, right| {
                (text(left.0), text(left.1)).cmp(&(text(right.0), text(right.1)))
            });
        }
        self.identity.clear();
        for (name, value) in &self.labels {
            self.identity.extend_from_slice(text(*name));
            self.identity.push(0xfe);
            self.identity.extend_from_slice(text(*value));
            self.identity.push(0xff);
        }
        true
    }

    pub(crate) fn sample_id(&mut self, kind: u8, timestamp: i64) -> SampleId {
        let series_len = self.identity.len();
        self.identity.push(kind);
        self.identity.extend_from_slice(&timestamp.to_le_bytes());
        let id = xxh3_128(&self.identity);
        self.identity.truncate(series_len);
        id
    }

    fn v1_samples(
        &mut self,
        payload: &[u8],
        run_label: &[u8],
        run_id: &[u8],
        visit: &mut dyn FnMut(SampleId),
    ) -> Result<(), VerifyError> {
        for field in Fields::new(payload) {
            let field = field?;
            if field.number != v1::WRITE_REQUEST_TIMESERIES {
                continue; // metadata
            }
            let series = field.bytes()?;
            self.labels.clear();
            for series_field in Fields::new(series) {
                let series_field = series_field?;
                if series_field.number == v1::TIME_SERIES_LABELS {
                    let (name, value) = wire::read_v1_label(series_field.bytes()?)?;
                    self.labels
                        .push((span_of(payload, name), span_of(payload, value)));
                }
            }
            if !self.seal_series(payload, run_label, run_id) {
                continue;
            }
            self.visit_samples(
                series,
                v1::TIME_SERIES_SAMPLES,
                v1::TIME_SERIES_HISTOGRAMS,
                visit,
            )?;
        }
        Ok(())
    }

    fn v2_samples(
        &mut self,
        payload: &[u8],
        run_label: &[u8],
        run_id: &[u8],
        visit: &mut dyn FnMut(SampleId),
    ) -> Result<(), VerifyError> {
        self.v2_series(payload, &mut |decoder, series| {
            if decoder.seal_series(payload, run_label, run_id) {
                decoder.visit_samples(
                    series,
                    v2::TIME_SERIES_SAMPLES,
                    v2::TIME_SERIES_HISTOGRAMS,
                    visit,
                )?;
            }
            Ok(())
        })
    }

    /// Calls `visit` with every series of the remote-write 2.0 request
    /// `payload`, its labels resolved into `labels` (byte ranges of `payload`).
    pub(crate) fn v2_series<'p>(
        &mut self,
        payload: &'p [u8],
        visit: &mut SeriesVisitor<'_, 'p>,
    ) -> Result<(), VerifyError> {
        // Symbols first: they may come after the series on the wire.
        self.symbols.clear();
        for field in Fields::new(payload) {
            let field = field?;
            if field.number == v2::REQUEST_SYMBOLS {
                self.symbols.push(span_of(payload, field.bytes()?));
            }
        }
        for field in Fields::new(payload) {
            let field = field?;
            if field.number != v2::REQUEST_TIMESERIES {
                continue;
            }
            let series = field.bytes()?;
            self.labels.clear();
            let mut pending_name: Option<Span> = None;
            for series_field in Fields::new(series) {
                let series_field = series_field?;
                if series_field.number != v2::TIME_SERIES_LABELS_REFS {
                    continue;
                }
                // Packed (as every sender does) or one unpacked reference per field.
                let mut push_reference = |reference: u64| -> Result<(), VerifyError> {
                    let span = symbol(&self.symbols, reference)?;
                    match pending_name.take() {
                        None => pending_name = Some(span),
                        Some(name) => self.labels.push((name, span)),
                    }
                    Ok(())
                };
                match series_field.value {
                    Value::Len(packed) => {
                        let mut position = 0;
                        while position < packed.len() {
                            push_reference(read_varint(packed, &mut position)?)?;
                        }
                    }
                    _ => push_reference(series_field.varint()?)?,
                }
            }
            if pending_name.is_some() {
                return Err(VerifyError::BadSymbol);
            }
            visit(self, series)?;
        }
        Ok(())
    }

    /// Visits the float samples and histograms of one series (1.0 and 2.0
    /// number their timestamps alike).
    pub(crate) fn visit_samples(
        &mut self,
        series: &[u8],
        samples_field: u32,
        histograms_field: u32,
        visit: &mut dyn FnMut(SampleId),
    ) -> Result<(), VerifyError> {
        for series_field in Fields::new(series) {
            let series_field = series_field?;
            let (kind, timestamp_field) = if series_field.number == samples_field {
                (KIND_FLOAT, v2::SAMPLE_TIMESTAMP)
            } else if series_field.number == histograms_field {
                (KIND_HISTOGRAM, v2::HISTOGRAM_TIMESTAMP)
            } else {
                continue;
            };
            let mut timestamp = 0i64;
            for sample_field in Fields::new(series_field.bytes()?) {
                let sample_field = sample_field?;
                if sample_field.number == timestamp_field {
                    timestamp = sample_field.varint()? as i64;
                }
            }
            visit(self.sample_id(kind, timestamp));
        }
        Ok(())
    }
}

const _: () = assert!(
    v1::SAMPLE_TIMESTAMP == v2::SAMPLE_TIMESTAMP
        && v1::HISTOGRAM_TIMESTAMP == v2::HISTOGRAM_TIMESTAMP
);

/// Where `part`, a sub-slice of `payload`, lies in it.
pub(crate) fn span_of(payload: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - payload.as_ptr() as usize;
    (start, start + part.len())
}

fn symbol(symbols: &[Span], reference: u64) -> Result<Span, VerifyError> {
    usize::try_from(reference)
        .ok()
        .and_then(|index| symbols.get(index))
        .copied()
        .ok_or(VerifyError::BadSymbol)
}

/// How often one sample was acknowledged by ingest and found in the topic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    acknowledged: u32,
    found: u32,
}

/// Every sample the run sent with how often it was acknowledged, then what the topic holds.
#[derive(Debug, Default)]
pub struct SampleLedger {
    tallies: HashMap<SampleId, Tally>,
    unexpected: u64,
}

/// The verdict, in samples (copies, since the ring may send a sample more than once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VerifyCounts {
    /// Acknowledgements of this run's samples (a sample acked twice counts twice).
    pub acknowledged: u64,
    /// Copies of this run's samples found in the topic.
    pub found: u64,
    /// Acknowledged copies not found: must be zero.
    pub missing: u64,
    /// Copies found beyond the times the sample was acknowledged (beyond one
    /// for a sample never acknowledged): what at-least-once delivery allows,
    /// e.g. when a retried request had been partly written.
    pub duplicated: u64,
    /// Samples found though never acknowledged: their request failed after part of it was written.
    pub found_unacknowledged: u64,
    /// Samples with this run's label that the run never built: should be zero.
    pub unexpected: u64,
}

impl SampleLedger {
    pub fn new() -> SampleLedger {
        SampleLedger::default()
    }

    /// A sample the run sent, acknowledged `times` times (0 when its request failed).
    pub fn sent(&mut self, id: SampleId, times: u32) {
        let tally = self.tallies.entry(id).or_default();
        tally.acknowledged += times;
    }

    /// A copy of a sample read back from the topic.
    pub fn found(&mut self, id: SampleId) {
        match self.tallies.get_mut(&id) {
            Some(tally) => tally.found += 1,
            None => self.unexpected += 1,
        }
    }

    /// Copies found in the topic of each sample of this run that has any.
    pub fn found_copies(&self) -> impl Iterator<Item = (SampleId, u32)> + '_ {
        self.tallies
            .iter()
            .filter(|(_, tally)| tally.found > 0)
            .map(|(id, tally)| (*id, tally.found))
    }

    pub fn counts(&self) -> VerifyCounts {
        let mut counts = VerifyCounts {
            unexpected: self.unexpected,
            found: self.unexpected,
            ..VerifyCounts::default()
        };
        for tally in self.tallies.values() {
            let acknowledged = u64::from(tally.acknowledged);
            let found = u64::from(tally.found);
            counts.acknowledged += acknowledged;
            counts.found += found;
            counts.missing += acknowledged.saturating_sub(found);
            counts.duplicated += found.saturating_sub(acknowledged.max(1));
            if acknowledged == 0 && found > 0 {
                counts.found_unacknowledged += 1;
            }
        }
        counts
    }
}

/// The verification section of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub topic: String,
    pub records_read: u64,
    pub records_undecodable: u64,
    pub counts: VerifyCounts,
    /// The correlator's outputs, with `--verify-outputs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<crate::outputs::OutputsReport>,
}

/// One record of the samples topic as verification needs it.
pub struct TopicRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub content_type: &'a str,
    pub payload: &'a [u8],
}

/// Reads every record of `topic` from the low to the current high watermarks
/// of each partition, handing each to `visit`. Returns how many were read.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    idle_timeout: Duration,
    visit: &mut dyn FnMut(TopicRecord<'_>),
) -> Result<u64, VerifyError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("loadtest-verify-{:016x}", rand::random::<u64>()),
        )
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // The whole topic is read once, as fast as the broker serves it: big
        // fetches, and no 1 s pause when the local queue is momentarily full.
        .set("max.partition.fetch.bytes", "8388608")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let partitions = partition_count(&consumer, topic)?;

    let mut assignment = TopicPartitionList::new();
    let mut end_offsets = BTreeMap::new();
    let mut unfinished = BTreeSet::new();
    let mut expected = 0u64;
    for partition in 0..partitions {
        let (low, high) =
            patiently(|| consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)))?;
        assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        end_offsets.insert(partition, high);
        if high > low {
            unfinished.insert(partition);
            expected += (high - low) as u64;
        }
    }
    consumer.assign(&assignment)?;

    let mut read = 0u64;
    let mut last_progress = Instant::now();
    while !unfinished.is_empty() {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            // Offsets can have gaps (transaction markers): ask where the consumer stands.
            for partition in finished_by_position(&consumer, topic, &end_offsets)? {
                unfinished.remove(&partition);
            }
            if !unfinished.is_empty() && last_progress.elapsed() > idle_timeout {
                return Err(VerifyError::Stalled {
                    topic: topic.to_string(),
                    read,
                    expected,
                    idle: idle_timeout,
                });
            }
            continue;
        };
        let message = match message {
            Ok(message) => message,
            // The broker away for a moment: librdkafka reconnects, and the
            // idle timeout bounds the wait.
            Err(rdkafka::error::KafkaError::MessageConsumption(_)) => continue,
            Err(error) => return Err(error.into()),
        };
        last_progress = Instant::now();
        let partition = message.partition();
        let end = end_offsets[&partition];
        if message.offset() + 1 >= end {
            unfinished.remove(&partition);
        }
        if message.offset() >= end {
            continue;
        }
        let mut content_type = String::new();
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                if header.key == "content-type" {
                    content_type =
                        String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
                }
            }
        }
        read += 1;
        visit(TopicRecord {
            key: message.key(),
            content_type: &content_type,
            payload: message.payload().unwrap_or_default(),
        });
    }
    Ok(read)
}

/// How long a metadata request is tried again while the broker is away for a
/// moment (restarting, frozen, fenced) before verification gives up.
const BROKER_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `request` until it succeeds or [`BROKER_PATIENCE`] has passed.
pub(crate) fn patiently<T>(
    mut request: impl FnMut() -> rdkafka::error::KafkaResult<T>,
) -> rdkafka::error::KafkaResult<T> {
    let started = Instant::now();
    loop {
        match request() {
            Err(_) if started.elapsed() < BROKER_PATIENCE => {
                std::thread::sleep(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

/// How many partitions `topic` has; a topic that is missing or has none is an error.
pub(crate) fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<i32, VerifyError> {
    let metadata = patiently(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(10)))?;
    metadata
        .topics()
        .iter()
        .find(|candidate| candidate.name() == topic && candidate.error().is_none())
        .map(|found| found.partitions().len() as i32)
        .filter(|count| *count > 0)
        .ok_or_else(|| VerifyError::NoSuchTopic(topic.to_string()))
}

/// Partitions whose consumer position has reached their end offset.
fn finished_by_position(
    consumer: &BaseConsumer,
    topic: &str,
    end_offsets: &BTreeMap<i32, i64>,
) -> Result<Vec<i32>, VerifyError> {
    let positions = consumer.position()?;
    let mut finished = Vec::new();
    for element in positions.elements_for_topic(topic) {
        if let (Offset::Offset(position), Some(end)) =
            (element.offset(), end_offsets.get(&element.partition()))
            && position >= *end
        {
            finished.push(element.partition());
        }
    }
    Ok(finished)
}

/// Identities of the samples of one snappy-compressed request body of this run.
pub fn body_samples(
    decoder: &mut Decoder,
    content_type: &str,
    body: &[u8],
    run_label: &str,
    run_id: &str,
) -> Result<Vec<SampleId>, VerifyError> {
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    let mut ids = Vec::new();
    decoder.samples_of_run(content_type, &raw, run_label, run_id, &mut |id| {
        ids.push(id)
    })?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Protocol, encode_v1, encode_v2};
    use proto::prometheus::Sample;

    fn series(pod: &str, run: &str, timestamp: i64) -> (Vec<(String, String)>, Sample) {
        (
            vec![
                ("__name__".into(), "up".into()),
                ("loadtest_run".into(), run.into()),
                ("pod".into(), pod.into()),
            ],
            Sample {
                value: 1.0,
                timestamp,
            },
        )
    }

    fn ids_of(protocol: Protocol, raw: &[u8], run: &str) -> Vec<SampleId> {
        let mut decoder = Decoder::new();
        let mut ids = Vec::new();
        decoder
            .samples_of_run(
                protocol.content_type(),
                raw,
                "loadtest_run",
                run,
                &mut |id| ids.push(id),
            )
            .unwrap();
        ids
    }

    #[test]
    fn identities_agree_across_protocols_and_label_order() {
        let batch = vec![
            series("a", "run", 1),
            series("b", "run", 1),
            series("a", "run", 2),
        ];
        let v1 = ids_of(Protocol::V1, &encode_v1(&batch), "run");
        let v2 = ids_of(Protocol::V2, &encode_v2(&batch), "run");
        assert_eq!(v1.len(), 3);
        assert_eq!(v1, v2);
        assert_ne!(v1[0], v1[1], "labels differ");
        assert_ne!(v1[0], v1[2], "timestamps differ");

        let mut reversed = batch[0].clone();
        reversed.0.reverse();
        assert_eq!(
            ids_of(Protocol::V1, &encode_v1(&[reversed]), "run"),
            vec![v1[0]]
        );
    }

    #[test]
    fn other_runs_are_ignored() {
        let batch = vec![series("a", "other", 1), series("b", "run", 1)];
        assert_eq!(ids_of(Protocol::V1, &encode_v1(&batch), "run").len(), 1);
        assert_eq!(ids_of(Protocol::V2, &encode_v2(&batch), "run").len(), 1);
        assert!(ids_of(Protocol::V1, &encode_v1(&batch), "none").is_empty());
    }

    /// A group in an unknown field is skipped as prost skips it; a stray
    /// end group is refused by both.
    #[test]
    fn groups_are_read_as_prost_reads_them() {
        use prost::Message as _;
        use proto::wire::{WIRE_END_GROUP, WIRE_START_GROUP, put_int64, put_key};
        let batch = vec![series("a", "run", 1), series("b", "run", 2)];
        for (protocol, plain, unknown) in [
            (
                Protocol::V1,
                encode_v1(&batch),
                v1::WRITE_REQUEST_METADATA + 1,
            ),
            (Protocol::V2, encode_v2(&batch), v2::REQUEST_TIMESERIES + 1),
        ] {
            let prost_reads = |bytes: &[u8]| match protocol {
                Protocol::V1 => proto::prometheus::WriteRequest::decode(bytes).is_ok(),
                Protocol::V2 => proto::v2::Request::decode(bytes).is_ok(),
            };
            let mut with_group = plain.clone();
            put_key(&mut with_group, unknown, WIRE_START_GROUP);
            put_int64(&mut with_group, unknown, 3);
            put_key(&mut with_group, unknown, WIRE_END_GROUP);
            assert!(prost_reads(&with_group));
            assert_eq!(
                ids_of(protocol, &with_group, "run"),
                ids_of(protocol, &plain, "run")
            );
            let mut stray = plain.clone();
            put_key(&mut stray, unknown, WIRE_END_GROUP);
            assert!(!prost_reads(&stray));
            let result = Decoder::new().samples_of_run(
                protocol.content_type(),
                &stray,
                "loadtest_run",
                "run",
                &mut |_| {},
            );
            assert!(result.is_err(), "{protocol:?}");
        }
    }

    #[test]
    fn corrupt_records_of_this_run_are_errors() {
        let mut decoder = Decoder::new();
        // A series that says it is 5 bytes long and holds the run id only.
        let series_key = proto::wire::key_byte(v1::WRITE_REQUEST_TIMESERIES, proto::wire::WIRE_LEN);
        let truncated = [series_key, 5, b'r', b'u', b'n'];
        let result =
            decoder.samples_of_run(proto::CONTENT_TYPE_V1, &truncated, "l", "run", &mut |_| {});
        assert!(result.is_err());
        // Records without the run id are not even walked.
        let result = decoder.samples_of_run(
            proto::CONTENT_TYPE_V1,
            &truncated,
            "l",
            "other",
            &mut |_| {},
        );
        assert!(result.is_ok());

        // v2 series referring to a symbol that does not exist, and an odd
        // number of references.
        for labels_refs in [vec![1, 7], vec![1, 1, 1]] {
            let bad = proto::v2::Request {
                symbols: vec![String::new(), "run".into()],
                timeseries: vec![proto::v2::TimeSeries {
                    labels_refs: labels_refs.clone(),
                    ..Default::default()
                }],
            };
            let result = decoder.samples_of_run(
                proto::CONTENT_TYPE_V2,
                &prost::Message::encode_to_vec(&bad),
                "l",
                "run",
                &mut |_| {},
            );
            assert!(
                matches!(result, Err(VerifyError::BadSymbol)),
                "{labels_refs:?}"
            );
        }
    }

    /// Hand-made records: sample ids 1..=6 sent; the topic is read back with
    /// some copies lost, some doubled and one stranger.
    #[test]
    fn ledger_counts_missing_and_duplicated_copies() {
        let mut ledger = SampleLedger::new();
        ledger.sent(1, 1); // found once: fine
        ledger.sent(2, 1); // never found: missing
        ledger.sent(3, 1); // found twice: one duplicate
        ledger.sent(4, 2); // the ring sent it twice, both acked, found once: one missing
        ledger.sent(5, 0); // request failed, yet found once: unacknowledged, not duplicated
        ledger.sent(6, 0); // request failed, found twice: unacknowledged and one duplicate
        ledger.sent(4, 0); // a third send of 4 that failed changes nothing
        for found in [1, 3, 3, 4, 5, 6, 6, 99] {
            ledger.found(found);
        }
        assert_eq!(
            ledger.counts(),
            VerifyCounts {
                acknowledged: 5,
                found: 8,
                missing: 2,
                duplicated: 2,
                found_unacknowledged: 2,
                unexpected: 1,
            }
        );
    }

    #[test]
    fn ledger_of_a_clean_run_is_clean() {
        let mut decoder = Decoder::new();
        let batch = vec![series("a", "run", 1), series("b", "run", 1)];
        let body = snap::raw::Encoder::new()
            .compress_vec(&encode_v2(&batch))
            .unwrap();
        let ids = body_samples(
            &mut decoder,
            proto::CONTENT_TYPE_V2,
            &body,
            "loadtest_run",
            "run",
        )
        .unwrap();
        let mut ledger = SampleLedger::new();
        for id in &ids {
            ledger.sent(*id, 1);
        }
        // Ingest re-encodes per partition: the same samples come back as v2 records split in two.
        for record in [encode_v2(&batch[..1]), encode_v2(&batch[1..])] {
            decoder
                .samples_of_run(
                    proto::CONTENT_TYPE_V2,
                    &record,
                    "loadtest_run",
                    "run",
                    &mut |id| ledger.found(id),
                )
                .unwrap();
        }
        let counts = ledger.counts();
        assert_eq!(
            (
                counts.acknowledged,
                counts.found,
                counts.missing,
                counts.duplicated
            ),
            (2, 2, 0, 0)
        );
    }
}
