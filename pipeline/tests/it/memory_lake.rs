//! A `memory://` lake: the writer and the SQL engine of one process share its store, and
//! a second writer for the same source resumes from the positions the first recorded.

use orderpulse::ingest::{ingest_source, IngestOptions};
use orderpulse::kpi::{QueryLimits, SqlEngine};
use orderpulse::lake::Lake;
use orderpulse::source::simulator::{Scenario, Simulator};
use orderpulse::source::{RawChunk, CHUNK_LINES};

fn options() -> IngestOptions {
    IngestOptions::from(&orderpulse::config::IngestConfig { batch_max_events: 700, ..Default::default() })
}

/// Feeds `lines` (positions 1..) from after `resume_after`.
fn feed(lines: Vec<String>, resume_after: Option<i64>, tx: orderpulse::source::ChunkSender) -> std::io::Result<()> {
    let skip = resume_after.unwrap_or(0) as usize;
    let mut chunk = RawChunk::default();
    for (i, line) in lines.iter().enumerate().skip(skip) {
        chunk.push(line.as_bytes(), i as i64 + 1);
        if chunk.len() == CHUNK_LINES {
            tx.blocking_send(std::mem::take(&mut chunk)).map_err(std::io::Error::other)?;
        }
    }
    tx.blocking_send(chunk).map_err(std::io::Error::other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_lake_is_shared_within_the_process_and_resumes() {
    let lines: Vec<String> = Simulator::new(Scenario { days: 1, orders_per_day: 300.0, ..Scenario::default() }).unwrap().collect();
    let lake = Lake::open("memory://", Default::default()).unwrap();
    let first_half = lines[..lines.len() / 2].to_vec();
    let stats = ingest_source(&lake, "test-source", options(), move |resume, tx| feed(first_half, resume, tx)).await.unwrap();
    assert_eq!(stats.accepted as usize, lines.len() / 2);

    // The same source again, now with every line: only the second half is new.
    let all = lines.clone();
    let stats = ingest_source(&lake, "test-source", options(), move |resume, tx| feed(all, resume, tx)).await.unwrap();
    assert_eq!(stats.lines as usize, lines.len() - lines.len() / 2, "did not resume: {stats:?}");
    assert_eq!(stats.accepted as usize, lines.len() - lines.len() / 2);

    let engine = SqlEngine::new(lake);
    let limits = QueryLimits { max_rows: 10, ..QueryLimits::time_only(std::time::Duration::from_secs(60)) };
    let sql = "SELECT (SELECT count(*) FROM order_events) + (SELECT count(*) FROM carrier_events) + (SELECT count(*) FROM ticket_events) AS n";
    let result = engine.query(sql, limits).await.unwrap();
    let json = orderpulse::kpi::format::json_rows(&result.batches).unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(rows[0]["n"].as_u64().unwrap() as usize, lines.len());
}
