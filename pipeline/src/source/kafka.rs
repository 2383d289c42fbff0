//! Kafka: the consumer's configuration and rebalance hooks, the names of partition
//! parts, and a producer for the simulator. The consume loop is `ingest::kafka`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use serde::{Deserialize, Serialize};

use crate::model::Stream;

/// `[kafka]`: where the streams are, and as whom to read them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`
    pub brokers: String,
    /// The consumer group; also the prefix of every partition's `txn` id in the lake.
    pub group_id: String,
    /// The topic of each stream.
    pub topics: BTreeMap<Stream, String>,
    /// How long the group waits for a silent member before giving its partitions to
    /// others: a crashed consumer's partitions move after this long.
    #[serde(with = "humantime_serde")]
    pub session_timeout: std::time::Duration,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, ...), passed as they are.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "orderpulse".into(),
            topics: Stream::ALL.iter().map(|s| (*s, s.as_str().to_owned())).collect(),
            session_timeout: std::time::Duration::from_secs(45),
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The consumer's librdkafka configuration: no automatic offset commits (the lake
    /// holds the positions), start from the beginning of a partition nobody has read,
    /// statistics every 5 s for the lag.
    pub fn consumer_config(&self) -> ClientConfig {
        let session_ms = self.session_timeout.as_millis().max(1);
        let mut config = ClientConfig::new();
        config
            .set("session.timeout.ms", session_ms.to_string())
            .set("heartbeat.interval.ms", (session_ms / 3).max(1).to_string())
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", "5000")
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "10000");
        self.with_brokers_and_properties(config)
    }

    /// The producer's configuration (for `simulate --to kafka://`).
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("linger.ms", "20").set("enable.idempotence", "true").set("compression.type", "lz4");
        self.with_brokers_and_properties(config)
    }

    /// Adds what every client needs: the brokers, then the extra properties, last, so that
    /// a key in `[kafka.properties]` wins over orderpulse's defaults.
    fn with_brokers_and_properties(&self, mut config: ClientConfig) -> ClientConfig {
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    pub fn topic_names(&self) -> Vec<&str> {
        self.topics.values().map(String::as_str).collect()
    }
}

/// The lake's id for one partition: `<group>-<topic>-<partition>`, the Delta `txn`
/// application id under which its offsets are recorded.
pub fn part_id(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}-{topic}-{partition}")
}

/// What the rebalance callbacks saw since the consume loop last looked.
#[derive(Debug, Default)]
pub struct RebalanceNews {
    /// Partitions were taken away: uncommitted state must be dropped before anything
    /// else is committed (their new owner starts from the lake's positions).
    pub revoked: bool,
    /// The new assignment, to seek to the lake's positions.
    pub assigned: Option<Vec<(String, i32)>>,
}

/// The consumer's context: records rebalances for the consume loop and keeps the
/// latest per-partition lag from librdkafka's statistics.
///
/// The callbacks run inside the consumer's poll, that is inside the consume loop's
/// `recv()`, never during one of its commits; so the loop sees a revoke before it could
/// commit anything of a partition it no longer owns.
#[derive(Clone, Default)]
pub struct ConsumerHooks {
    pub news: Arc<Mutex<RebalanceNews>>,
    /// (topic, partition) → messages behind the high watermark.
    pub lag: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
}

impl ClientContext for ConsumerHooks {
    /// librdkafka's client-level errors (brokers unreachable, all brokers down): it keeps
    /// retrying with backoff by itself, and this says so instead of stalling silently.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error; reconnecting with backoff");
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag = HashMap::new();
        for (topic, stats) in &statistics.topics {
            for (partition, p) in &stats.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *partition), p.consumer_lag);
                }
            }
        }
        if !lag.is_empty() {
            tracing::info!(lag = ?lag, "consumer lag per partition");
            if let Ok(mut shared) = self.lag.lock() {
                shared.extend(lag);
            }
        }
    }
}

impl ConsumerContext for ConsumerHooks {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions revoked");
            if let Ok(mut news) = self.news.lock() {
                news.revoked = true;
                news.assigned = None;
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            let assigned: Vec<(String, i32)> = partitions.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
            tracing::info!(?assigned, "partitions assigned");
            if let Ok(mut news) = self.news.lock() {
                news.assigned = Some(assigned);
            }
        }
    }
}

impl ConsumerHooks {
    /// The lag per partition in the Prometheus text format.
    pub fn metrics(&self) -> String {
        use crate::metrics::{Exposition, Kind};
        let lag: Vec<_> = match self.lag.lock() {
            Ok(lag) => lag
                .iter()
                .map(|((topic, partition), messages)| (vec![("topic", topic.clone()), ("partition", partition.to_string())], *messages as f64))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut page = Exposition::default();
        page.family("orderpulse_kafka_consumer_lag", Kind::Gauge, "Messages behind the partition's high watermark.", lag);
        page.finish()
    }
}

/// The Kafka key of an event line: its `order_id`, else (carrier scans) its
/// `tracking_number`; `None` for lines that do not decode (they still go to the topic
/// of the stream they claim, or the orders topic).
pub fn message_key(event: &crate::model::Event) -> Option<String> {
    use crate::model::{EventBody, TicketDetail};
    match &event.body {
        EventBody::Order(order) => Some(order.order_id.clone()),
        EventBody::Carrier(scan) => Some(scan.order_id.clone().unwrap_or_else(|| scan.tracking_number.clone())),
        EventBody::Ticket(ticket) => match &ticket.detail {
            TicketDetail::Opened { order_id: Some(order_id), .. } => Some(order_id.clone()),
            _ => Some(ticket.ticket_id.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_after_group_topic_and_partition() {
        assert_eq!(part_id("orderpulse", "orders", 3), "orderpulse-orders-3");
    }

    #[test]
    fn extra_properties_win_over_the_defaults() {
        let config = KafkaConfig {
            properties: BTreeMap::from([("linger.ms".to_owned(), "5".to_owned()), ("auto.offset.reset".to_owned(), "latest".to_owned())]),
            ..KafkaConfig::default()
        };
        assert_eq!(config.producer_config().get("linger.ms"), Some("5"));
        assert_eq!(config.consumer_config().get("auto.offset.reset"), Some("latest"));
        assert_eq!(config.consumer_config().get("bootstrap.servers"), Some("127.0.0.1:9092"));
    }

    #[test]
    fn default_topics_cover_every_stream() {
        let config = KafkaConfig::default();
        assert_eq!(config.topic_names(), vec!["orders", "carrier", "tickets"]);
    }
}
