//! The broker the tests run against is real: N records in, exactly N out.

mod common;

use std::time::Duration;

use ingest::publish::{Publisher, PublisherSettings};
use shared::kafka::{NO_DEFAULTS, TopicSpec, client_config, create_topics};

/// A publisher of the real broker, with `topic` created with `partitions`.
async fn fresh_publisher(topic: &str, partitions: i32) -> Publisher {
    let settings = PublisherSettings {
        brokers: common::brokers(),
        compression: "lz4".into(),
        delivery_timeout: Duration::from_secs(10),
        max_record_bytes: 1 << 20,
        properties: Default::default(),
    };
    let spec = TopicSpec {
        name: topic.to_string(),
        partitions,
        replication_factor: -1,
        config: vec![],
    };
    let admin = client_config(&settings.brokers, NO_DEFAULTS, &settings.properties);
    create_topics(&admin, &[spec]).await.unwrap();
    Publisher::new(settings, topic.to_string()).unwrap()
}

/// Publishes `records` to `topic`, all with one key, content type and tenant.
async fn publish(
    publisher: &Publisher,
    topic: &str,
    records: &[(Option<i32>, &[u8])],
) -> Result<(), ingest::publish::PublishError> {
    publisher
        .publish(
            topic,
            "k",
            "text/plain",
            "t",
            records,
            Duration::from_secs(10),
        )
        .await
}

/// Publishes `payloads` 100 at a time, to `partition` or to the publisher's choice.
async fn publish_in_chunks(
    publisher: &Publisher,
    topic: &str,
    payloads: &[Vec<u8>],
    partition: Option<i32>,
) {
    for chunk in payloads.chunks(100) {
        let records: Vec<(Option<i32>, &[u8])> =
            chunk.iter().map(|p| (partition, p.as_slice())).collect();
        publish(publisher, topic, &records).await.unwrap();
    }
}

#[tokio::test]
async fn records_produced_to_a_fresh_topic_read_back_exactly() {
    let topic = common::unique("roundtrip");
    let publisher = fresh_publisher(&topic, 3).await;

    const N: usize = 1000;
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| format!("record {i}").into_bytes()).collect();
    publish_in_chunks(&publisher, &topic, &payloads, None).await;

    let mut read: Vec<Vec<u8>> = common::read_all(&topic)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    read.sort();
    let mut expected = payloads.clone();
    expected.sort();
    assert_eq!(read.len(), N);
    assert_eq!(read, expected);
}

#[tokio::test]
async fn a_fatal_producer_error_fails_one_publish_and_the_next_succeeds() {
    let topic = common::unique("fatal");
    let publisher = fresh_publisher(&topic, 1).await;
    publish(&publisher, &topic, &[(None, b"before".as_slice())])
        .await
        .unwrap();

    publisher.inject_fatal_error();
    let failed = publish(&publisher, &topic, &[(None, b"during".as_slice())]).await;
    assert!(failed.is_err(), "a fatal producer cannot deliver");

    publish(&publisher, &topic, &[(None, b"after".as_slice())])
        .await
        .expect("recreated producer delivers");
    let payloads: Vec<Vec<u8>> = common::read_all(&topic)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(payloads, vec![b"before".to_vec(), b"after".to_vec()]);
}

/// Keeps the consumer's latest statistics.
struct LatestStatistics(std::sync::Arc<std::sync::Mutex<Option<rdkafka::Statistics>>>);

impl rdkafka::ClientContext for LatestStatistics {
    fn stats(&self, statistics: rdkafka::Statistics) {
        *self.0.lock().unwrap() = Some(statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for LatestStatistics {}

/// Our LZ4 frames carry their content size (the patched librdkafka of
/// third_party/), so a consumer decompresses each batch into one buffer of the
/// right size. Without it librdkafka guesses 4x the compressed size and grows
/// the buffer by reallocation, which it counts as `zbuf_grow`.
#[tokio::test]
async fn lz4_batches_decompress_without_growing_the_buffer() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let topic = common::unique("lz4-content-size");
    let publisher = fresh_publisher(&topic, 1).await;
    // Label text repeats as in remote-write: it compresses far beyond 4x.
    const N: usize = 500;
    let payloads: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            format!("container_cpu_usage_seconds_total{{namespace=\"default\",pod=\"web-{i}\"}} ")
                .repeat(40)
                .into_bytes()
        })
        .collect();
    publish_in_chunks(&publisher, &topic, &payloads, Some(0)).await;

    let latest = std::sync::Arc::new(std::sync::Mutex::new(None));
    let consumer: BaseConsumer<LatestStatistics> = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", common::unique("lz4-reader"))
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "100")
        .create_with_context(LatestStatistics(latest.clone()))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while read < N {
        assert!(std::time::Instant::now() < deadline, "read {read} of {N}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = rdkafka::Message::payload(&message.unwrap()).map(<[u8]>::to_vec);
            assert_eq!(message.as_deref(), Some(payloads[read].as_slice()));
            read += 1;
        }
    }
    // Statistics emitted after the last record was read.
    *latest.lock().unwrap() = None;
    while latest.lock().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "no statistics");
        consumer.poll(Duration::from_millis(100));
    }
    let statistics = latest.lock().unwrap().take().unwrap();
    let grown: u64 = statistics.brokers.values().map(|b| b.zbuf_grow).sum();
    assert_eq!(grown, 0, "decompression buffers grown {grown} times");
}
