//! Order look-ups over HTTP with a million orders in the stream state: the state is
//! built in memory from the simulator (as the processor would from the lake), the API's
//! router serves `GET /v1/orders/{id}` and `/status-text` on loopback, and one client
//! asks for random orders, one request at a time, over a kept-alive connection.
//! Prints the latency percentiles and writes them to `benches/results/lookup.json`.
//!
//! `ORDERS` (default 1,000,000) and `REQUESTS` (default 20,000) change the size.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use orderpulse::api::auth::Keys;
use orderpulse::api::orders::OrderLookup;
use orderpulse::api::{serve, AppState};
use orderpulse::kpi::{QueryLimits, SqlEngine};
use orderpulse::lake::Lake;
use orderpulse::notify::status_text::StatusTexts;
use orderpulse::source::simulator::{Scenario, Simulator};
use orderpulse::stream::processor::ProcessorStatus;
use orderpulse::stream::{StreamSettings, StreamState};
use rand::{Rng, SeedableRng};

/// The allocator the `orderpulse` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    // The state is served as `orderpulse run` serves it.
    orderpulse::allocator::configure(orderpulse::allocator::Workload::Queries);
    let orders = env_number("ORDERS", 1_000_000);
    let requests = env_number("REQUESTS", 20_000);
    let days = 10;
    let started = Instant::now();
    let scenario = Scenario { days, orders_per_day: orders as f64 / f64::from(days), ..Scenario::default() };
    // Keep every order: the simulated history runs weeks past its last order, and the
    // default retention would let the finished ones go.
    let year = 365 * orderpulse::model::Timestamp::MICROS_PER_DAY;
    let mut state = StreamState::new(StreamSettings { retention: year, max_idle: year, ..StreamSettings::default() });
    let mut events = 0u64;
    for event in Simulator::new(scenario).map_err(anyhow::Error::msg)?.events() {
        state.apply(event);
        events += 1;
        if events.is_multiple_of(100_000) {
            state.fire_due_timers();
        }
    }
    state.fire_due_timers();
    let order_ids: Vec<String> = state.orders().map(|o| o.order_id.to_string()).collect();
    let in_state = order_ids.len();
    let summary = state.summary();
    eprintln!(
        "state: {} orders, {} parcels from {events} events in {:.1} s (watermark {:?}, {:?})",
        order_ids.len(),
        state.parcel_count(),
        started.elapsed().as_secs_f64(),
        summary.watermark,
        summary.counters
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let lake = Lake::open("memory:///", Default::default())?;
        let lookup = OrderLookup { state: Arc::new(RwLock::new(state)), processor: ProcessorStatus::caught_up(), texts: Arc::new(StatusTexts::load(None)?) };
        let app = AppState::new(
            SqlEngine::new(lake),
            QueryLimits::time_only(Duration::from_secs(30)),
            None,
            1 << 20,
            Keys::new(&[]).map_err(anyhow::Error::msg)?,
            Default::default(),
        )
        .with_orders(lookup);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(serve(listener, app, std::future::pending()));
        let client = reqwest::Client::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut report = serde_json::Map::new();
        for (name, suffix) in [("timeline", ""), ("status_text", "/status-text")] {
            // Warm the connection and the caches a little first.
            for _ in 0..200 {
                let id = &order_ids[rng.random_range(0..order_ids.len())];
                client.get(format!("{base}/v1/orders/{id}{suffix}")).send().await?.bytes().await?;
            }
            let mut latencies = Vec::with_capacity(requests);
            let run_started = Instant::now();
            for _ in 0..requests {
                let id = &order_ids[rng.random_range(0..order_ids.len())];
                let sent = Instant::now();
                let response = client.get(format!("{base}/v1/orders/{id}{suffix}")).send().await?;
                anyhow::ensure!(response.status().is_success(), "{id}: {}", response.status());
                response.bytes().await?;
                latencies.push(sent.elapsed());
            }
            let elapsed = run_started.elapsed().as_secs_f64();
            latencies.sort();
            let figures = serde_json::json!({
                "requests": requests,
                "p50_ms": percentile(&latencies, 0.5),
                "p99_ms": percentile(&latencies, 0.99),
                "max_ms": percentile(&latencies, 1.0),
                "requests_per_s": requests as f64 / elapsed,
            });
            eprintln!("{name}: {figures}");
            report.insert(name.to_owned(), figures);
        }
        anyhow::Ok(report)
    })?;
    let report = serde_json::json!({
        "bench": "order look-ups over HTTP on loopback, one request at a time, random orders",
        "orders_in_state": in_state,
        "events_applied": events,
        "peak_rss_mib": peak_rss_mib(),
        "target_p99_ms": 5.0,
        "results": result,
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/results/lookup.json");
    std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// The process's peak resident memory (Linux), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
