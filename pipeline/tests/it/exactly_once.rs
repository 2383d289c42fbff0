//! Nothing lost, nothing doubled: file ingest killed with SIGKILL at random points and
//! restarted ends with every valid event in the lake exactly once and every bad line in
//! quarantine exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::{lake_counts, local_lake, orderpulse, run_ok, scalar, simulate, simulated_lake, truth_malformed};

/// Starts `ingest` six times and SIGKILLs it each time after a random number of further
/// commits (as `commits` counts them): sometimes between two tables' commits of one
/// batch, sometimes mid-batch. Fails if the ingest finished too soon to be killed.
pub async fn kill_repeatedly(ingest: &dyn Fn() -> Command, commits: impl AsyncFn() -> usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let mut kills = 0;
    for _ in 0..6 {
        let target = commits().await + rng.random_range(1..6);
        let mut child = ingest().spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while commits().await < target && child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "the ingest finished before it could be killed often enough ({kills} kills)");
}

/// Commits so far to a local lake's order_events table (its log files).
pub fn commits(lake: &Path) -> usize {
    std::fs::read_dir(lake.join("order_events/_delta_log"))
        .map(|entries| entries.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_file_ingest_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (events, truth) = simulate(
        dir.path(),
        &[
            "--days",
            "4",
            "--orders-per-day",
            "1500",
            "--seed",
            "11",
            "--duplicates",
            "0.02",
            "--out-of-order",
            "0.02",
            "--late",
            "0.01",
            "--malformed",
            "0.005",
        ],
    );
    let lake = dir.path().join("lake");
    let ingest = || {
        let mut command = orderpulse();
        command
            .args(["ingest", "--quiet", "--json"])
            .arg(&events)
            .arg("--lake")
            .arg(&lake)
            .env("ORDERPULSE_INGEST__BATCH_MAX_EVENTS", "400")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    };

    kill_repeatedly(&ingest, async || commits(&lake)).await;
    let output = run_ok(&mut ingest());
    let last: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(last["lines"].as_u64().unwrap() < truth["lines"].as_u64().unwrap(), "the last run resumed instead of starting over: {last}");

    let counts = lake_counts(&local_lake(&lake)).await;
    assert_eq!(counts.rows, counts.distinct_ids, "an event was written twice");
    assert_eq!(counts.rows, truth["events"].as_i64().unwrap(), "valid events lost or doubled");
    assert_eq!(counts.quarantine_by_reason, truth_malformed(&truth), "bad lines lost or doubled");

    // Ingesting the same file again changes nothing.
    let again: serde_json::Value = serde_json::from_slice(&run_ok(&mut ingest()).stdout).unwrap();
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(lake_counts(&local_lake(&lake)).await, counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_across_inputs_are_recognised_and_stdin_works() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, events, truth) = simulated_lake(dir.path(), &["--days", "1", "--orders-per-day", "400", "--seed", "5"]);

    // The same events again, through stdin and as a gzip file: all duplicates.
    let gz = dir.path().join("again.ndjson.gz");
    let mut encoder = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(&events).unwrap(), &mut encoder).unwrap();
    encoder.finish().unwrap();
    let output = run_ok(orderpulse().args(["ingest", "-", "--json", "--lake"]).arg(&lake).stdin(std::fs::File::open(&events).unwrap()));
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["accepted"], 0, "{stats}");
    assert_eq!(stats["duplicates"], truth["events"], "{stats}");
    let output = run_ok(orderpulse().args(["ingest", "--json", "--lake"]).arg(&lake).arg(&gz));
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["accepted"], 0, "{stats}");
    let total = lake_counts(&local_lake(&lake)).await;
    assert_eq!(total.rows, truth["events"].as_i64().unwrap());

    // Compaction and checkpointing change files, not rows.
    let files_before = scalar(&local_lake(&lake), "SELECT count(*) FROM order_events").await;
    run_ok(orderpulse().args(["lake", "optimize", "--lake"]).arg(&lake));
    assert_eq!(scalar(&local_lake(&lake), "SELECT count(*) FROM order_events").await, files_before);
    let info = run_ok(orderpulse().args(["lake", "info", "--json", "--lake"]).arg(&lake));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let orders = info.as_array().unwrap().iter().find(|t| t["table"] == "order_events").unwrap();
    assert_eq!(orders["rows"].as_i64().unwrap(), files_before, "{info}");
    assert!(dir.path().join("lake/order_events/_delta_log/_last_checkpoint").exists(), "no checkpoint written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_beside_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let server = crate::common::Server::start(&lake, &["--no-simulator"], &[]);
    // One request at a time: one commit per table each, well over 100 commits.
    let client = reqwest::Client::new();
    for i in 0..130 {
        let line = format!(r#"{{"event_id":"cp-{i}","type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o-{i}"}}"#);
        let (status, _) = crate::common::post(&client, &format!("{}/v1/events", server.base), &[], line.into_bytes()).await;
        assert_eq!(status, 200);
    }
    let log = lake.join("order_events/_delta_log");
    let deadline = Instant::now() + Duration::from_secs(30);
    let checkpoint = log.join("00000000000000000100.checkpoint.parquet");
    while !checkpoint.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<String> = std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(checkpoint.exists(), "no checkpoint at version 100 in {names:?}");
    // Readers use it, and the table still reads whole.
    assert_eq!(scalar(&local_lake(&lake), "SELECT count(*) FROM order_events").await, 130);
}
