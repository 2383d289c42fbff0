//! Kafka → lake exactly once, against a real Kafka-protocol broker (librdkafka's mock
//! cluster, serving on loopback from this test process): consumers SIGKILLed at random
//! points, two consumers in one group with one leaving and rejoining, and poisoned
//! messages quarantined with their partition and offset while the partition flows on.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::common::{lake_counts, local_lake, orderpulse, query, run_ok, simulate, truth_malformed};
use crate::exactly_once::{commits, kill_repeatedly};

const TOPICS: [&str; 3] = ["orders", "carrier", "tickets"];

fn consumer(brokers: &str, lake: &std::path::Path) -> Command {
    let mut command = orderpulse();
    command
        .args(["consume", "--brokers", brokers, "--lake"])
        .arg(lake)
        .env("ORDERPULSE_INGEST__BATCH_MAX_EVENTS", "3000")
        .env("ORDERPULSE_INGEST__BATCH_MAX_AGE", "500ms")
        .env("ORDERPULSE_INGEST__MAX_LINE_BYTES", "8192")
        .env("ORDERPULSE_KAFKA__SESSION_TIMEOUT", "6s")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Stops a consumer politely (SIGTERM: it leaves the group) and waits for it.
fn stop(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_to_lake_is_exactly_once_across_kills_and_rebalances() {
    let cluster = MockCluster::new(3).unwrap();
    for topic in TOPICS {
        cluster.create_topic(topic, 4, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let (_, truth) = simulate(dir.path(), &["--days", "4", "--orders-per-day", "2600", "--seed", "77", "--duplicates", "0.01", "--malformed", "0.002"]);
    // The same simulation, produced into Kafka.
    run_ok(
        orderpulse()
            .args(["simulate", "--days", "4", "--orders-per-day", "2600", "--seed", "77", "--duplicates", "0.01", "--malformed", "0.002", "--to"])
            .arg(format!("kafka://{brokers}")),
    );
    assert!(truth["events"].as_i64().unwrap() >= 100_000, "{truth}");

    // Poisoned messages in orders partition 0: not JSON, a wrong type, oversized.
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let oversized = format!(r#"{{"event_id":"big","type":"order.paid","pad":"{}"}}"#, "x".repeat(10_000));
    for payload in ["this is not json", r#"{"event_id":"p2","type":"order.teleported","occurred_at":"2026-11-20T10:00:00Z"}"#, oversized.as_str()] {
        producer.send(BaseRecord::<str, str>::to("orders").partition(0).payload(payload)).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let lake = dir.path().join("lake");
    kill_repeatedly(&|| consumer(&brokers, &lake), async || commits(&lake)).await;

    // Two consumers in one group; B leaves and rejoins mid-stream. A serves its lag.
    let metrics_port = crate::common::free_port();
    let a = consumer(&brokers, &lake).arg("--metrics-listen").arg(format!("127.0.0.1:{metrics_port}")).spawn().unwrap();
    let b = consumer(&brokers, &lake).spawn().unwrap();
    let target = commits(&lake) + 3;
    let deadline = Instant::now() + Duration::from_secs(60);
    while commits(&lake) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(b);
    let b = consumer(&brokers, &lake).spawn().unwrap();

    // Wait until everything has arrived.
    let expected_events = truth["events"].as_i64().unwrap();
    let mut expected_quarantine = truth_malformed(&truth);
    *expected_quarantine.entry("not_json".into()).or_default() += 1;
    *expected_quarantine.entry("unknown_type".into()).or_default() += 1;
    *expected_quarantine.entry("line_too_long".into()).or_default() += 1;
    let deadline = Instant::now() + Duration::from_secs(240);
    let counts = loop {
        let counts = lake_counts(&local_lake(&lake)).await;
        let quarantined: i64 = counts.quarantine_by_reason.values().sum();
        let expected: i64 = expected_quarantine.values().sum();
        if (counts.rows >= expected_events && quarantined >= expected) || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let metrics_deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let body = match reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if body.contains("orderpulse_kafka_consumer_lag{") || Instant::now() > metrics_deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop(a);
    stop(b);
    assert!(metrics.contains("orderpulse_kafka_consumer_lag{topic=\""), "no lag on /metrics:\n{metrics}");
    assert_eq!(counts.rows, counts.distinct_ids, "an event was written twice");
    assert_eq!(counts.rows, expected_events, "events lost or doubled");
    if counts.quarantine_by_reason != expected_quarantine {
        let doubled = query(
            &local_lake(&lake),
            "SELECT source, source_position, count(*) AS n, min(received_at) AS first, max(received_at) AS last \
             FROM quarantine GROUP BY source, source_position HAVING count(*) > 1 ORDER BY source, source_position",
        )
        .await;
        panic!("quarantine lost or doubled: {:?} for {expected_quarantine:?}; doubled: {doubled:?}", counts.quarantine_by_reason);
    }

    // The poisoned messages are the last three of their partition, in order.
    let poisoned = query(
        &local_lake(&lake),
        "SELECT reason, source_position FROM quarantine WHERE source = 'orderpulse-orders-0' \
         AND (CAST(raw AS VARCHAR) = 'this is not json' OR CAST(raw AS VARCHAR) LIKE '%\"p2\"%' OR reason = 'line_too_long') \
         ORDER BY source_position",
    )
    .await;
    let reasons: Vec<&str> = poisoned.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["not_json", "unknown_type", "line_too_long"], "{poisoned:?}");
    let offsets: Vec<i64> = poisoned.iter().map(|r| r["source_position"].as_i64().unwrap()).collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "not consecutive offsets: {offsets:?}");
    drop(cluster);
}

#[test]
fn a_broker_that_is_down_at_start_is_reported_and_retried_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let closed_port = crate::common::free_port();
    let log = dir.path().join("consume.log");
    let mut child = orderpulse()
        .args(["consume", "--brokers", &format!("127.0.0.1:{closed_port}"), "--lake"])
        .arg(dir.path().join("lake"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while Instant::now() < deadline && !text.contains("reconnecting with backoff") {
        std::thread::sleep(Duration::from_millis(100));
        text = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let still_running = child.try_wait().unwrap().is_none();
    stop(child);
    assert!(text.contains("reconnecting with backoff"), "no log line about the broker:\n{text}");
    assert!(still_running, "the consumer exited instead of retrying:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_goes_away_mid_run_is_reported_and_the_stream_resumes_when_it_returns() {
    let cluster = MockCluster::new(1).unwrap();
    for topic in TOPICS {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let day = |seed: &str| ["--days", "1", "--orders-per-day", "300", "--seed", seed, "--start", "2026-11-02T00:00:00Z"].map(str::to_owned);
    let produce = |seed: &str| run_ok(orderpulse().arg("simulate").args(day(seed)).arg("--to").arg(format!("kafka://{brokers}")));
    let expected: i64 = ["5", "6"]
        .iter()
        .map(|seed| {
            let folder = dir.path().join(seed);
            std::fs::create_dir(&folder).unwrap();
            simulate(&folder, &day(seed).each_ref().map(String::as_str)).1["events"].as_i64().unwrap()
        })
        .sum();

    produce("5");
    let lake = dir.path().join("lake");
    let log = dir.path().join("consume.log");
    let mut child = consumer(&brokers, &lake).env("RUST_LOG", "warn").stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
    let wait_for = async |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_for("a first commit", &|| commits(&lake) > 0).await;

    cluster.broker_down(1).unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("a log line about the lost broker", &|| log_text().contains("reconnecting with backoff")).await;
    assert!(child.try_wait().unwrap().is_none(), "the consumer exited while the broker was away:\n{}", log_text());

    cluster.broker_up(1).unwrap();
    produce("6");
    let deadline = Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let counts = lake_counts(&local_lake(&lake)).await;
        if counts.rows >= expected || Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let still_running = child.try_wait().unwrap().is_none();
    stop(child);
    assert!(still_running, "the consumer exited:\n{}", log_text());
    assert_eq!((counts.rows, counts.distinct_ids), (expected, expected), "events lost or doubled across the outage");
}
