//! The broker the tests run against is real: N records in, exactly N out.

mod common;

use std::time::Duration;

use ingest::publish::{self, Publisher, PublisherSettings, TopicSpec};

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
    publish::create_topics(&settings, &[spec]).await.unwrap();
    Publisher::new(settings, topic.to_string()).unwrap()
}

#[tokio::test]
async fn records_produced_to_a_fresh_topic_read_back_exactly() {
    let topic = common::unique("roundtrip");
    let publisher = fresh_publisher(&topic, 3).await;

    const N: usize = 1000;
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| format!("record {i}").into_bytes()).collect();
    for chunk in payloads.chunks(100) {
        let records: Vec<(Option<i32>, &[u8])> =
            chunk.iter().map(|p| (None, p.as_slice())).collect();
        publisher
            .publish(
                &topic,
                "k",
                "text/plain",
                "t",
                &records,
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

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
    let record: [(Option<i32>, &[u8]); 1] = [(None, b"before")];
    publisher
        .publish(
            &topic,
            "k",
            "text/plain",
            "t",
            &record,
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    publisher.inject_fatal_error();
    let record: [(Option<i32>, &[u8]); 1] = [(None, b"during")];
    let failed = publisher
        .publish(
            &topic,
            "k",
            "text/plain",
            "t",
            &record,
            Duration::from_secs(10),
        )
        .await;
    assert!(failed.is_err(), "a fatal producer cannot deliver");

    let record: [(Option<i32>, &[u8]); 1] = [(None, b"after")];
    publisher
        .publish(
            &topic,
            "k",
            "text/plain",
            "t",
            &record,
            Duration::from_secs(10),
        )
        .await
        .expect("recreated producer delivers");
    let payloads: Vec<Vec<u8>> = common::read_all(&topic)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    assert_eq!(payloads, vec![b"before".to_vec(), b"after".to_vec()]);
}
