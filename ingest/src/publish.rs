//! Last stage of a write: the records of one request go to Kafka together and
//! the answer waits for every ack (acks=all). Queue full, timeouts and an
//! unreachable cluster are back-pressure (503), never a hang or a crash.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use proto::keys::{HEADER_CONTENT_TYPE, HEADER_TENANT};
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use thiserror::Error;
use tracing::{error, info, warn};

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("kafka producer queue is full")]
    QueueFull,
    #[error("kafka did not acknowledge within {0:?}")]
    Timeout(Duration),
    #[error("kafka delivery failed: {0}")]
    Delivery(KafkaError),
    #[error("kafka topic {0} is not known yet")]
    TopicUnknown(String),
}

/// How the producer and topics are set up.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    pub brokers: String,
    pub compression: String,
    /// Every delivery resolves within this (librdkafka's `message.timeout.ms`).
    pub delivery_timeout: Duration,
    pub max_record_bytes: usize,
    pub properties: BTreeMap<String, String>,
}

pub struct Publisher {
    settings: PublisherSettings,
    producer: RwLock<FutureProducer>,
    samples_topic: String,
    /// Partitions of the samples topic; 0 until metadata says.
    samples_partitions: AtomicU32,
    connected: AtomicBool,
}

impl Publisher {
    pub fn new(
        settings: PublisherSettings,
        samples_topic: String,
    ) -> Result<Publisher, KafkaError> {
        let producer = producer_config(&settings).create()?;
        Ok(Publisher {
            settings,
            producer: RwLock::new(producer),
            samples_topic,
            samples_partitions: AtomicU32::new(0),
            connected: AtomicBool::new(false),
        })
    }

    fn producer(&self) -> FutureProducer {
        self.producer.read().expect("producer lock").clone()
    }

    /// Partitions of the samples topic, or None while metadata is not in.
    pub fn samples_partitions(&self) -> Option<u32> {
        match self.samples_partitions.load(Ordering::Acquire) {
            0 => None,
            partitions => Some(partitions),
        }
    }

    pub fn samples_topic(&self) -> &str {
        &self.samples_topic
    }

    /// Connected to the cluster, with the samples topic's partitions known.
    pub fn is_ready(&self) -> bool {
        self.connected.load(Ordering::Acquire) && self.samples_partitions().is_some()
    }

    /// Messages waiting in the producer for delivery or acks.
    pub fn queue_depth(&self) -> i32 {
        self.producer().in_flight_count()
    }

    /// Sends every record and waits for all their acks, or fails as a whole.
    /// `partition` None lets the key choose the partition.
    pub async fn publish(
        &self,
        topic: &str,
        key: &str,
        content_type: &str,
        tenant: &str,
        records: &[(Option<i32>, &[u8])],
        timeout: Duration,
    ) -> Result<(), PublishError> {
        let deliveries = self.enqueue(topic, key, content_type, tenant, records)?;
        self.await_deliveries(deliveries, timeout, ()).await
    }

    /// Waits for every delivery, or fails as a whole. `keep` is dropped once
    /// all of them are resolved, even when the wait times out first: what it
    /// stands for (the in-flight bytes of the records) stays held while
    /// librdkafka still has them.
    pub async fn await_deliveries<K: Send + 'static>(
        &self,
        deliveries: Vec<DeliveryFuture>,
        timeout: Duration,
        keep: K,
    ) -> Result<(), PublishError> {
        let mut all = Box::pin(futures::future::join_all(deliveries));
        let results = tokio::select! {
            results = &mut all => results,
            () = tokio::time::sleep(timeout) => {
                tokio::spawn(async move {
                    all.await;
                    drop(keep);
                });
                return Err(PublishError::Timeout(timeout));
            }
        };
        drop(keep);
        for result in results {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(self.failed(error)),
                Err(_canceled) => return Err(PublishError::Delivery(KafkaError::Canceled)),
            }
        }
        Ok(())
    }

    /// The first half of [`Self::publish`]: hands every record to the
    /// producer (which copies it) and returns their deliveries to await. A
    /// record the producer refuses fails the lot; those already handed over
    /// are still delivered, which a retry of the request makes at-least-once.
    pub fn enqueue(
        &self,
        topic: &str,
        key: &str,
        content_type: &str,
        tenant: &str,
        records: &[(Option<i32>, &[u8])],
    ) -> Result<Vec<DeliveryFuture>, PublishError> {
        self.enqueue_each(topic, key, content_type, tenant, records.iter().copied())
    }

    /// [`Self::enqueue`] of records the caller gives up: each is freed as soon
    /// as the producer has its copy, so a request never holds both copies of
    /// all its records at once.
    pub fn enqueue_owned(
        &self,
        topic: &str,
        key: &str,
        content_type: &str,
        tenant: &str,
        records: Vec<(i32, Vec<u8>)>,
    ) -> Result<Vec<DeliveryFuture>, PublishError> {
        let records = records
            .into_iter()
            .map(|(partition, record)| (Some(partition), record));
        self.enqueue_each(topic, key, content_type, tenant, records)
    }

    fn enqueue_each<P: AsRef<[u8]>>(
        &self,
        topic: &str,
        key: &str,
        content_type: &str,
        tenant: &str,
        records: impl ExactSizeIterator<Item = (Option<i32>, P)>,
    ) -> Result<Vec<DeliveryFuture>, PublishError> {
        let producer = self.producer();
        let mut deliveries = Vec::with_capacity(records.len());
        for (partition, payload) in records {
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: HEADER_TENANT,
                    value: Some(tenant),
                })
                .insert(Header {
                    key: HEADER_CONTENT_TYPE,
                    value: Some(content_type),
                });
            let mut record = FutureRecord::to(topic)
                .key(key)
                .payload(payload.as_ref())
                .headers(headers);
            if let Some(partition) = partition {
                record = record.partition(partition);
            }
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => return Err(self.failed(error)),
            }
        }
        Ok(deliveries)
    }

    /// Drops every message still queued in the producer (their deliveries
    /// fail): for benchmarks that enqueue without a broker to take them.
    #[doc(hidden)]
    pub fn purge_queued(&self) {
        self.producer().purge(PurgeConfig::default().queue());
    }

    fn failed(&self, error: KafkaError) -> PublishError {
        self.recreate_if_fatal();
        match error {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => PublishError::QueueFull,
            KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition)
            | KafkaError::MessageProduction(RDKafkaErrorCode::UnknownPartition) => {
                PublishError::TopicUnknown(self.samples_topic.clone())
            }
            other => PublishError::Delivery(other),
        }
    }

    /// A fatal error (such as a fenced idempotent producer) leaves the client
    /// unusable: replace it so the next request can succeed.
    fn recreate_if_fatal(&self) {
        let current = self.producer();
        let Some((code, reason)) = current.client().fatal_error() else {
            return;
        };
        error!(%code, %reason, "kafka producer hit a fatal error, recreating it");
        match producer_config(&self.settings).create::<FutureProducer>() {
            Ok(fresh) => {
                let mut slot = self.producer.write().expect("producer lock");
                if slot.client().fatal_error().is_some() {
                    *slot = fresh;
                }
            }
            Err(create_error) => {
                error!(error = %create_error, "recreating the kafka producer failed")
            }
        }
    }

    /// Refreshes connectivity and the samples topic's partition count (blocking).
    pub fn refresh_metadata(&self) {
        let producer = self.producer();
        match producer
            .client()
            .fetch_metadata(Some(&self.samples_topic), Duration::from_secs(5))
        {
            Ok(metadata) => {
                self.connected.store(true, Ordering::Release);
                let partitions = metadata
                    .topics()
                    .iter()
                    .find(|topic| topic.name() == self.samples_topic && topic.error().is_none())
                    .map(|topic| topic.partitions().len() as u32)
                    .unwrap_or(0);
                let previous = self.samples_partitions.swap(partitions, Ordering::AcqRel);
                if previous != partitions {
                    info!(topic = %self.samples_topic, partitions, "samples topic partitions");
                }
            }
            Err(fetch_error) => {
                if self.connected.swap(false, Ordering::AcqRel) {
                    warn!(error = %fetch_error, "kafka metadata unavailable");
                }
            }
        }
    }

    /// Puts the producer in librdkafka's fatal state, as a fenced idempotent
    /// producer would be: for the fault-injection test of [`Self::recreate_if_fatal`].
    #[doc(hidden)]
    pub fn inject_fatal_error(&self) {
        let producer = self.producer();
        let reason = c"injected by a test";
        // SAFETY: the client pointer is valid while `producer` lives; the reason is a C string.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__FENCED,
                reason.as_ptr(),
            );
        }
    }

    /// Waits for queued messages to be delivered (blocking), for shutdown.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer().flush(timeout)
    }
}

fn producer_config(settings: &PublisherSettings) -> ClientConfig {
    let defaults = [
        ("acks", "all".to_string()),
        ("enable.idempotence", "true".into()),
        ("compression.type", settings.compression.clone()),
        ("linger.ms", "2".into()),
        (
            "message.timeout.ms",
            settings.delivery_timeout.as_millis().to_string(),
        ),
        ("message.max.bytes", settings.max_record_bytes.to_string()),
        // The Java clients' partitioner, so keyed records land where they would.
        ("partitioner", "murmur2_random".into()),
    ];
    shared::kafka::client_config(&settings.brokers, defaults, &settings.properties)
}
