//! The Kafka clients' shared parts: configuration layering, topic creation,
//! and what every consumer group member needs (commits on rebalance, stored
//! offsets that mean what they say).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

/// For [`client_config`] of a client with no defaults of its own.
pub const NO_DEFAULTS: [(&str, &str); 0] = [];

/// The brokers, then the client's `defaults`, then `properties` (the
/// operator's `[kafka.properties]`), which override them.
pub fn client_config<K: Into<String>, V: Into<String>>(
    brokers: &str,
    defaults: impl IntoIterator<Item = (K, V)>,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (name, value) in defaults {
        config.set(name, value);
    }
    for (name, value) in properties {
        config.set(name, value);
    }
    config
}

/// A topic a service writes or reads and, when allowed, creates.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub config: Vec<(&'static str, String)>,
}

/// Creates the topics that do not exist yet with an admin client of `config`;
/// existing ones are left alone.
pub async fn create_topics(config: &ClientConfig, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|spec| {
            let mut topic = NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(spec.replication_factor),
            );
            for (name, value) in &spec.config {
                topic = topic.set(name, value);
            }
            topic
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| error!(topic = %name, %code, "creating topic failed"));
            }
        }
    }
    Ok(())
}

/// Commits stored offsets before partitions move, and tells the loop which left.
pub struct RebalanceContext {
    pub revoked: Arc<Mutex<Vec<i32>>>,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            // Stored offsets cover only acknowledged work: safe to commit now.
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
                warn!(%error, "commit before rebalance");
            }
            let ids: Vec<i32> = partitions
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect();
            self.revoked.lock().expect("revoked lock").extend(ids);
        }
    }
}

/// Stores `next` as the offset to resume `partition` from (the next record to
/// read). rdkafka's `store_offset` would add one to it, as librdkafka's legacy
/// call does; a list of exact offsets says what it means.
pub fn store_next_offset<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    topic: &str,
    partition: i32,
    next: i64,
) {
    let mut offsets = TopicPartitionList::new();
    if offsets
        .add_partition_offset(topic, partition, Offset::Offset(next))
        .is_ok()
    {
        if let Err(error) = consumer.store_offsets(&offsets) {
            // A partition that moved to another member cannot be stored: its new owner reads again.
            debug!(%error, partition, "storing offset");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_override_the_defaults_and_the_brokers_come_first() {
        let properties = BTreeMap::from([("linger.ms".to_string(), "50".to_string())]);
        let config = client_config("b:9092", [("linger.ms", "5"), ("acks", "all")], &properties);
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
        let overridden = BTreeMap::from([("bootstrap.servers".to_string(), "o:1".to_string())]);
        let config = client_config("b:9092", [("acks", "all")], &overridden);
        assert_eq!(config.get("bootstrap.servers"), Some("o:1"));
    }
}
