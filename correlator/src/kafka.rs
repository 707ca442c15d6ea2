//! What the correlator's Kafka clients share: configuration (brokers,
//! defaults, then `[kafka.properties]`), the producers' defaults, the
//! consumers' rebalance handling and offset storing. The join, the
//! materializer and the topology feed all build their clients here.

use rdkafka::ClientConfig;
use shared::kafka::client_config;
pub use shared::kafka::{RebalanceContext, store_next_offset};

use crate::config::Settings;

pub fn consumer_config(settings: &Settings) -> ClientConfig {
    kafka_config(settings, &[])
}

/// The brokers, then `defaults`, then `[kafka.properties]`, which override them.
pub fn kafka_config(settings: &Settings, defaults: &[(&str, &str)]) -> ClientConfig {
    client_config(
        &settings.kafka_brokers,
        defaults.iter().copied(),
        &settings.kafka_properties,
    )
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// How long an output is retried before the correlator gives up on it
/// (`message.timeout.ms`; `[kafka.properties]` may set another).
pub const OUTPUT_DELIVERY_TIMEOUT_MS: &str = "120000";

/// Records the producer queues before the join waits for acknowledgements
/// (`queue.buffering.max.messages`; `[kafka.properties]` may set another).
pub const OUTPUT_QUEUE_RECORDS: &str = "20000";

/// Defaults of every producer of the correlator, the exactly-once one too;
/// `[kafka.properties]` overrides them.
pub const PRODUCER_DEFAULTS: [(&str, &str); 3] = [
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    // A short queue (librdkafka's default is 100,000 records): once it is
    // full the join waits, and the backlog stays in metrics.samples. The
    // records in flight then fit the CPU caches; produce_ceiling wrote
    // 20-30 % more records per second with it, on less CPU.
    ("queue.buffering.max.messages", OUTPUT_QUEUE_RECORDS),
];

/// The partitioner of join outputs (`metrics.bound`, `metrics.unbound`): the
/// Java clients' murmur2, as ingest's, so a component's key lands on the
/// partition a Java producer would give it (Kafka Streams joins by key find
/// it co-partitioned), at less CPU than librdkafka's default CRC32 of every
/// key. Not for `topology.components`: a compacted topic keeps a key's
/// partition.
pub const OUTPUT_PARTITIONER: (&str, &str) = ("partitioner", "murmur2_random");

/// Settings of the producer of topology changes (`topology.components`).
pub fn producer_config(settings: &Settings) -> ClientConfig {
    producer_config_with(settings, &[])
}

/// Settings of the at-least-once producer of join outputs.
pub fn output_producer_config(settings: &Settings) -> ClientConfig {
    producer_config_with(settings, &[OUTPUT_PARTITIONER])
}

fn producer_config_with(settings: &Settings, extra: &[(&str, &str)]) -> ClientConfig {
    let defaults: Vec<(&str, &str)> = [("acks", "all"), ("enable.idempotence", "true")]
        .into_iter()
        .chain(PRODUCER_DEFAULTS)
        .chain(extra.iter().copied())
        // Outputs are retried for this long; then their batch fails, the
        // correlator stops with an error and is started again from offsets
        // stored only for acknowledged outputs: nothing is lost either way,
        // and a producer that cannot deliver never hangs the correlator.
        .chain([("message.timeout.ms", OUTPUT_DELIVERY_TIMEOUT_MS)])
        .collect();
    kafka_config(settings, &defaults)
}

/// Fetch sizes of the samples consumer, unless `[kafka.properties]` sets
/// them: with librdkafka's (1 MiB per partition, 50 MiB per fetch) the join
/// waited for records on a backlog; larger fetches cost RSS (BENCHMARKS.md,
/// "fetch size").
pub const SAMPLES_FETCH: [(&str, &str); 2] = [
    ("max.partition.fetch.bytes", "4194304"),
    ("fetch.max.bytes", "33554432"),
];

/// Settings of the exactly-once producer: the defaults of the other producers,
/// which `[kafka.properties]` may override, except what transactions need
/// (acks from all replicas, idempotence, the instance's transactional id). Not
/// their `message.timeout.ms`, which must stay under `transaction.timeout.ms`.
pub fn transactional_producer_config(settings: &Settings, instance_id: &str) -> ClientConfig {
    let defaults: Vec<(&str, &str)> = PRODUCER_DEFAULTS
        .into_iter()
        .chain([OUTPUT_PARTITIONER, ("transaction.timeout.ms", "60000")])
        .collect();
    let mut config = kafka_config(settings, &defaults);
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set(
            "transactional.id",
            format!("{}-{instance_id}", settings.transactional_id_prefix),
        );
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Options;

    #[test]
    fn kafka_properties_override_the_defaults() {
        let mut settings = Settings::resolve(shared::settings::defaults::<Options>()).unwrap();
        settings
            .kafka_properties
            .insert("linger.ms".into(), "50".into());
        let config = kafka_config(&settings, &[("linger.ms", "5"), ("acks", "all")]);
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(
            config.get("bootstrap.servers"),
            Some(settings.kafka_brokers.as_str())
        );
        let producer = producer_config(&settings);
        assert_eq!(producer.get("linger.ms"), Some("50"));
        assert_eq!(
            producer.get("queue.buffering.max.messages"),
            Some(OUTPUT_QUEUE_RECORDS)
        );
    }

    /// Outputs are placed by the Java clients' murmur2; topology changes keep
    /// librdkafka's default, under which topology.components was compacted.
    #[test]
    fn only_output_producers_use_the_java_partitioner() {
        let settings = Settings::resolve(shared::settings::defaults::<Options>()).unwrap();
        let murmur2 = Some("murmur2_random");
        let outputs = output_producer_config(&settings);
        assert_eq!(outputs.get("partitioner"), murmur2);
        let transactional = transactional_producer_config(&settings, "a");
        assert_eq!(transactional.get("partitioner"), murmur2);
        let topology = producer_config(&settings);
        assert_eq!(topology.get("partitioner"), None);
    }

    #[test]
    fn the_transactional_producer_keeps_what_transactions_need() {
        let mut settings = Settings::resolve(shared::settings::defaults::<Options>()).unwrap();
        for (name, value) in [("compression.type", "zstd"), ("acks", "1")] {
            settings.kafka_properties.insert(name.into(), value.into());
        }
        let config = transactional_producer_config(&settings, "a");
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("linger.ms"), Some("5"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("transactional.id"), Some("correlator-a"));
    }
}
