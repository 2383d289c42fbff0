//! `benches/e2e/kafka`: sustained Kafka → lake throughput, exactly once.
//!
//! Hosts a Kafka-protocol broker (librdkafka's mock cluster) on loopback, produces a
//! simulation into it with `orderpulse simulate --to kafka://...`, then starts
//! `orderpulse consume` and times it until every event is in the lake (polled with the
//! library's SQL engine). Prints and writes `benches/results/kafka.json`.
//!
//! Usage: kafka_e2e ORDERPULSE_BIN WORK_DIR DAYS ORDERS_PER_DAY

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orderpulse::kpi::{QueryLimits, SqlEngine};
use orderpulse::lake::Lake;
use rdkafka::mocking::MockCluster;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 5, "usage: kafka_e2e ORDERPULSE_BIN WORK_DIR DAYS ORDERS_PER_DAY");
    let (bin, work, days, orders_per_day) = (&args[1], std::path::PathBuf::from(&args[2]), &args[3], &args[4]);
    let cluster = MockCluster::new(1)?;
    for topic in ["orders", "carrier", "tickets"] {
        // 16 partitions a topic: the mock broker trims a partition past a few tens of
        // thousands of messages, which would lose the oldest before the consumer starts.
        cluster.create_topic(topic, 16, 1)?;
    }
    let brokers = cluster.bootstrap_servers();

    let produced = Command::new(bin)
        .args(["simulate", "--seed", "3", "--days", days, "--orders-per-day", orders_per_day, "--to"])
        .arg(format!("kafka://{brokers}"))
        .output()?;
    anyhow::ensure!(produced.status.success(), "simulate failed: {}", String::from_utf8_lossy(&produced.stderr));
    let text = String::from_utf8_lossy(&produced.stderr);
    let events: i64 = text
        .split_whitespace()
        .nth(1)
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("cannot read the message count from {text:?}"))?;
    eprintln!("produced {events} events");

    let lake_dir = work.join("kafka-lake");
    let _ = std::fs::remove_dir_all(&lake_dir);
    let started = Instant::now();
    let mut consumer = Command::new(bin)
        .args(["consume", "--brokers", &brokers, "--lake"])
        .arg(&lake_dir)
        .env("RUST_LOG", std::env::var("CONSUMER_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("kafka-consumer.log"))?)
        .spawn()?;
    let lake = Lake::open(lake_dir.to_str().unwrap_or_default(), Default::default())?;
    let engine = SqlEngine::new(lake);
    let limits = QueryLimits { max_rows: 10, ..QueryLimits::time_only(Duration::from_secs(60)) };
    let sql = "SELECT (SELECT count(*) FROM order_events) + (SELECT count(*) FROM carrier_events) + (SELECT count(*) FROM ticket_events) AS n";
    let mut first_row_at = None;
    let done_at = loop {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "the consumer did not catch up in 15 minutes");
        if let Ok(result) = engine.query(sql, limits).await {
            let json = orderpulse::kpi::format::json_rows(&result.batches)?;
            let rows: serde_json::Value = serde_json::from_slice(&json)?;
            let n = rows[0]["n"].as_i64().unwrap_or(0);
            if n > 0 && first_row_at.is_none() {
                first_row_at = Some((started.elapsed(), n));
            }
            if n >= events {
                anyhow::ensure!(n == events, "{n} rows for {events} events");
                break started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = consumer.kill();
    let _ = consumer.wait();
    let (first, rows_at_first) = first_row_at.unwrap_or((done_at, events));
    let result = serde_json::json!({
        "benchmark": "Kafka -> lake, exactly once, one consumer, 48 partitions (mock Kafka-protocol broker on loopback)",
        "date": chrono::Utc::now().date_naive().to_string(),
        "events": events,
        "seconds_total": done_at.as_secs_f64(),
        "seconds_to_first_commit": first.as_secs_f64(),
        "events_per_s_including_group_join": (events as f64 / done_at.as_secs_f64()).round(),
        "rows_in_first_commit": rows_at_first,
        "events_per_s_after_first_commit": ((events - rows_at_first) as f64 / (done_at - first).as_secs_f64().max(1e-3)).round(),
        "target": "Kafka -> lake >= 100,000 events/s",
    });
    std::fs::write("benches/results/kafka.json", serde_json::to_vec_pretty(&result)?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    drop(cluster);
    Ok(())
}
