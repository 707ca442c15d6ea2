//! Producing the join's outputs with one acknowledgement per batch.
//!
//! A consumed samples record turns into hundreds of output records. Instead of
//! a delivery future (a channel, a task to wake, a join over all of them) per
//! output record, every record of a batch carries a shared [`BatchAck`] as its
//! delivery opaque; librdkafka's delivery reports count it down on the
//! producer's polling thread, and the last report, or the first failure,
//! completes the batch's one future.
//!
//! Records go to librdkafka on topic handles taken once ([`OutputProducer`]):
//! producing by topic name, as `BaseProducer::send` does, costs a C string, a
//! read lock and a search of the client's topics for every record.

use std::ffi::{CStr, CString, c_void};
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use prometheus_client::metrics::counter::Counter;
use rdkafka::bindings as rdsys;
use rdkafka::bindings::rd_kafka_vtype_t::*;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::IntoOpaque;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::watch;

use crate::config::{Settings, Topics};
use crate::join::{Destination, Output};
use crate::output;

/// The join's producer: delivery reports go to the batch they belong to, and
/// records go out on the handles of the output topics. Everything else of
/// `ThreadedProducer` (flush, transactions) is reached through it.
pub struct OutputProducer {
    /// Declared before the producer so that they are released before it is.
    bound: TopicHandle,
    unbound: TopicHandle,
    producer: ThreadedProducer<BatchDeliveries>,
}

/// A producer of join outputs with `config`, holding handles of the output
/// topics of `topics`.
pub fn output_producer(config: &ClientConfig, topics: &Topics) -> KafkaResult<OutputProducer> {
    let producer = ThreadedProducer::from_config_and_context(config, BatchDeliveries)?;
    Ok(OutputProducer {
        bound: TopicHandle::new(&producer, &topics.bound)?,
        unbound: TopicHandle::new(&producer, &topics.unbound)?,
        producer,
    })
}

impl Deref for OutputProducer {
    type Target = ThreadedProducer<BatchDeliveries>;
    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

impl OutputProducer {
    fn topic(&self, destination: Destination) -> &TopicHandle {
        match destination {
            Destination::Bound => &self.bound,
            Destination::Unbound => &self.unbound,
        }
    }

    /// Hands one record to librdkafka on `topic`, copied, with headers
    /// `tenant` and `content-type`, and the component's (`component`,
    /// `component-type`, `rule`) or the `reason`; its delivery reported to
    /// `batch`.
    fn produce(
        &self,
        topic: &TopicHandle,
        output: &Output,
        content_type: &str,
        batch: &Arc<BatchAck>,
    ) -> RDKafkaRespErr {
        let key: &[u8] = output.key.as_bytes();
        let reason = output.reason.map_or("", output::reason_name);
        let mut headers: [(&CStr, &str); 5] = [
            (c"tenant", &output.tenant),
            (c"content-type", content_type),
            (c"reason", reason),
            (c"", ""),
            (c"", ""),
        ];
        let count = match &output.component {
            Some(component) => {
                headers[2] = (c"component", &component.external_id);
                headers[3] = (c"component-type", &component.type_name);
                headers[4] = (c"rule", &component.rule);
                5
            }
            None => 3,
        };
        // SAFETY: a new list, filled with NUL-terminated names and values that
        // librdkafka copies; handed to producev below, or destroyed here.
        let list = unsafe {
            let list = rdsys::rd_kafka_headers_new(count);
            for (name, value) in &headers[..count] {
                rdsys::rd_kafka_header_add(
                    list,
                    name.as_ptr(),
                    -1,
                    value.as_ptr() as *const c_void,
                    value.len() as isize,
                );
            }
            list
        };
        let opaque = Arc::clone(batch).into_ptr();
        // SAFETY: the handle belongs to this producer and outlives the call;
        // librdkafka copies key and value (RD_KAFKA_MSG_F_COPY) before it
        // returns. On success it owns the header list and the opaque's
        // reference (the delivery report takes it back); on failure neither.
        let error = unsafe {
            rdsys::rd_kafka_producev(
                self.producer.client().native_ptr(),
                RD_KAFKA_VTYPE_RKT,
                topic.0.as_ptr(),
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                output.payload.as_ptr() as *mut c_void,
                output.payload.len(),
                RD_KAFKA_VTYPE_KEY,
                key.as_ptr() as *mut c_void,
                key.len(),
                RD_KAFKA_VTYPE_OPAQUE,
                opaque,
                RD_KAFKA_VTYPE_HEADERS,
                list,
                RD_KAFKA_VTYPE_END,
            )
        };
        if error != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka took neither the list nor the reference.
            unsafe { rdsys::rd_kafka_headers_destroy(list) };
            drop(unsafe { Arc::<BatchAck>::from_ptr(opaque) });
        }
        error
    }
}

/// A topic handle of one producer (`rd_kafka_topic_t`), released on drop.
struct TopicHandle(NonNull<rdsys::rd_kafka_topic_t>);

// SAFETY: librdkafka's topic handles are reference counted and locked
// inside; any thread may produce on one or release it.
unsafe impl Send for TopicHandle {}
unsafe impl Sync for TopicHandle {}

impl TopicHandle {
    fn new(producer: &ThreadedProducer<BatchDeliveries>, name: &str) -> KafkaResult<Self> {
        let name_c = CString::new(name)?;
        // SAFETY: a valid client and a NUL-terminated name; no topic config
        // (the client's defaults apply, as for records produced by name).
        let handle = unsafe {
            rdsys::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name_c.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        NonNull::new(handle)
            .map(TopicHandle)
            .ok_or_else(|| KafkaError::ClientCreation(format!("no topic handle for {name:?}")))
    }
}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was made by rd_kafka_topic_new and is released once.
        unsafe { rdsys::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

/// Seconds the join waited for room in the producer's queue.
pub type QueueFullSeconds = Counter<f64, AtomicU64>;

/// Completes when every record of a batch is acknowledged, or with the first error.
pub type Acked = Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send>>;

/// How long to wait before offering a record again to a full producer queue.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Producer context that routes each delivery report to its [`BatchAck`].
pub struct BatchDeliveries;

impl ClientContext for BatchDeliveries {}

impl ProducerContext for BatchDeliveries {
    type DeliveryOpaque = Arc<BatchAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchAck>) {
        match result {
            Ok(_) => batch.count_down(),
            Err((error, _)) => batch.complete(Err(error.clone())),
        }
    }
}

/// The records of one batch still unacknowledged, and who waits for them.
pub struct BatchAck {
    /// Records handed to the producer and not yet acknowledged, plus one
    /// while the batch is still being handed over (so that early reports
    /// cannot complete it before its last record is sent).
    outstanding: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<Result<(), KafkaError>>>>,
}

impl BatchAck {
    fn new() -> (Arc<Self>, oneshot::Receiver<Result<(), KafkaError>>) {
        let (done, acked) = oneshot::channel();
        let batch = BatchAck {
            outstanding: AtomicUsize::new(1),
            done: Mutex::new(Some(done)),
        };
        (Arc::new(batch), acked)
    }

    fn add_record(&self) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
    }

    fn count_down(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.complete(Ok(()));
        }
    }

    /// The first completion wins: a failure reported before the last
    /// acknowledgement fails the batch, and later reports change nothing.
    fn complete(&self, result: Result<(), KafkaError>) {
        let done = self.done.lock().expect("batch ack lock").take();
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }
}

/// Hands `outputs` to the producer and returns their acknowledgement. A full
/// producer queue is back-pressure: this waits for room, without holding up
/// the runtime, adds the seconds waited to `queue_full`, and gives up
/// (outputs unacknowledged, offsets not stored) when shutdown starts.
pub async fn send_outputs(
    producer: &OutputProducer,
    settings: &Settings,
    outputs: Vec<Output>,
    shutdown: &watch::Receiver<bool>,
    queue_full: &QueueFullSeconds,
) -> Acked {
    if outputs.is_empty() {
        return Box::pin(async { Ok(()) });
    }
    let content_type = settings.join.encoding.content_type();
    let (batch, acked) = BatchAck::new();
    for output in &outputs {
        let topic = producer.topic(output.destination);
        batch.add_record();
        let mut full_since = None;
        loop {
            match producer.produce(topic, output, content_type, &batch) {
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR => break,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR__QUEUE_FULL => {
                    if *shutdown.borrow() {
                        return Box::pin(async { Err(KafkaError::Canceled) });
                    }
                    full_since.get_or_insert_with(Instant::now);
                    // The producer's own thread delivers meanwhile.
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                error => {
                    let error = KafkaError::MessageProduction(error.into());
                    return Box::pin(async move { Err(error) });
                }
            }
        }
        if let Some(since) = full_since {
            queue_full.inc_by(since.elapsed().as_secs_f64());
        }
    }
    // Every record is handed over: the last report may now complete the batch.
    batch.count_down();
    Box::pin(async move { acked.await.unwrap_or(Err(KafkaError::Canceled)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;
    use rdkafka::types::RDKafkaErrorCode;
    use std::time::Instant;

    fn output(index: usize) -> Output {
        Output {
            destination: Destination::Bound,
            tenant: "acme".into(),
            key: format!("acme/urn:pod/{index}").into(),
            payload: vec![0; 64],
            points: 1,
            series: 1,
            reason: None,
            component: None,
            origins: Vec::new(),
        }
    }

    fn settings() -> Settings {
        Settings::resolve(shared::settings::defaults::<Options>()).unwrap()
    }

    /// A producer of the mock `cluster`, with `properties`.
    fn producer_of(
        cluster: &MockCluster<'_, DefaultProducerContext>,
        properties: &[(&str, &str)],
    ) -> OutputProducer {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", cluster.bootstrap_servers());
        for (name, value) in properties {
            config.set(*name, *value);
        }
        output_producer(&config, &settings().topics).unwrap()
    }

    /// Batches of records sent to a broker (librdkafka's mock cluster)
    /// complete, each with success.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_completes_when_all_its_records_are_acknowledged() {
        let cluster = MockCluster::new(1).unwrap();
        let settings = settings();
        cluster.create_topic(&settings.topics.bound, 4, 1).unwrap();
        let producer = producer_of(&cluster, &[("linger.ms", "1")]);
        let (_stop, shutdown) = watch::channel(false);
        let queue_full = QueueFullSeconds::default();
        let batches: Vec<Acked> = futures::future::join_all((0..5).map(|b| {
            send_outputs(
                &producer,
                &settings,
                (b * 100..b * 100 + 100).map(output).collect(),
                &shutdown,
                &queue_full,
            )
        }))
        .await;
        for acked in batches {
            tokio::time::timeout(Duration::from_secs(10), acked)
                .await
                .expect("acknowledged in time")
                .expect("delivered");
        }
    }

    /// A batch completes only once its last record is acknowledged, never
    /// while it is still being handed over, and a failure wins.
    #[test]
    fn a_batch_waits_for_its_last_acknowledgement() {
        let (batch, mut acked) = BatchAck::new();
        for _ in 0..3 {
            batch.add_record();
        }
        batch.count_down(); // two acknowledged before the hand-over ends
        batch.count_down();
        assert!(matches!(acked.try_recv(), Ok(None)));
        batch.count_down(); // the hand-over ends
        assert!(matches!(acked.try_recv(), Ok(None)));
        batch.count_down(); // the last record
        assert!(matches!(acked.try_recv(), Ok(Some(Ok(())))));

        let (batch, mut acked) = BatchAck::new();
        batch.add_record();
        batch.add_record();
        batch.complete(Err(KafkaError::Canceled));
        batch.count_down();
        batch.count_down();
        batch.count_down();
        assert!(matches!(
            acked.try_recv(),
            Ok(Some(Err(KafkaError::Canceled)))
        ));
    }

    /// A record that cannot be delivered fails its batch, without waiting
    /// for the other records.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_undeliverable_record_fails_its_batch() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.broker_down(1).unwrap();
        let producer = producer_of(&cluster, &[("message.timeout.ms", "200")]);
        let (_stop, shutdown) = watch::channel(false);
        let acked = send_outputs(
            &producer,
            &settings(),
            (0..3).map(output).collect(),
            &shutdown,
            &QueueFullSeconds::default(),
        )
        .await;
        let result = tokio::time::timeout(Duration::from_secs(10), acked)
            .await
            .expect("fails in time");
        assert!(matches!(
            result,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageTimedOut
            ))
        ));
    }

    /// A producer whose queue is full and whose broker is gone (librdkafka's
    /// mock cluster, to inject the fault) must not keep the join from
    /// stopping: the outputs come back unacknowledged, as cancelled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_producer_queue_gives_way_to_shutdown() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.broker_down(1).unwrap();
        let producer = producer_of(
            &cluster,
            &[
                ("queue.buffering.max.messages", "2"),
                ("message.timeout.ms", "0"),
            ],
        );
        let settings = settings();
        let (stop, shutdown) = watch::channel(false);
        let started = Instant::now();
        let queue_full = QueueFullSeconds::default();
        let sending = send_outputs(
            &producer,
            &settings,
            (0..10).map(output).collect(),
            &shutdown,
            &queue_full,
        );
        tokio::pin!(sending);
        // The queue fills and stays full: sending waits, and lets the runtime run.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut sending)
                .await
                .is_err(),
            "ten records cannot fit a queue of two"
        );
        stop.send_replace(true);
        let acked = tokio::time::timeout(Duration::from_secs(2), sending)
            .await
            .expect("sending stops once shutdown starts");
        assert!(matches!(acked.await, Err(KafkaError::Canceled)));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
