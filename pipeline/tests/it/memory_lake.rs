//! The lake writer in one process: a `memory://` lake, whose store the writer and the SQL
//! engine share, where a second writer for the same source resumes from the positions the
//! first recorded; and writers of different sources committing to the same tables in
//! turn, while a stale writer of the same source is refused. The SQL engine, which keeps
//! the snapshots it loaded, sees every commit made after its first query.

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

/// Every event in the lake, through `engine`.
async fn count_events(engine: &SqlEngine) -> usize {
    let limits = QueryLimits { max_rows: 10, ..QueryLimits::time_only(std::time::Duration::from_secs(60)) };
    let sql = "SELECT (SELECT count(*) FROM order_events) + (SELECT count(*) FROM carrier_events) + (SELECT count(*) FROM ticket_events) AS n";
    let result = engine.query(sql, limits).await.unwrap();
    let json = orderpulse::kpi::format::json_rows(&result.batches).unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&json).unwrap();
    rows[0]["n"].as_u64().unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_lake_is_shared_within_the_process_and_resumes() {
    let lines: Vec<String> = Simulator::new(Scenario { days: 1, orders_per_day: 300.0, ..Scenario::default() }).unwrap().collect();
    let lake = Lake::open("memory://", Default::default()).unwrap();
    let first_half = lines[..lines.len() / 2].to_vec();
    let stats = ingest_source(&lake, "test-source", options(), move |resume, tx| feed(first_half, resume, tx)).await.unwrap();
    assert_eq!(stats.accepted as usize, lines.len() / 2);
    // The engine keeps the snapshots it loads; later queries must still see later commits.
    let engine = SqlEngine::new(lake.clone());
    assert_eq!(count_events(&engine).await, lines.len() / 2);

    // The same source again, now with every line: only the second half is new.
    let all = lines.clone();
    let stats = ingest_source(&lake, "test-source", options(), move |resume, tx| feed(all, resume, tx)).await.unwrap();
    assert_eq!(stats.lines as usize, lines.len() - lines.len() / 2, "did not resume: {stats:?}");
    assert_eq!(stats.accepted as usize, lines.len() - lines.len() / 2);
    assert_eq!(count_events(&engine).await, lines.len(), "the engine's kept snapshots were not brought up to date");
    assert_eq!(count_events(&SqlEngine::new(lake)).await, lines.len());
}

/// A batch of `events` for one commit, positions from `first`.
fn batch_of(events: &[orderpulse::model::Event], part: &'static str, first: i64) -> orderpulse::lake::writer::PendingBatch {
    let mut batch = orderpulse::lake::writer::PendingBatch::default();
    for (i, event) in events.iter().enumerate() {
        batch.note_line();
        batch.push_event(event, &orderpulse::model::schema::Lineage { source: part, position: first + i as i64, ingested_at_micros: 0 });
    }
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_different_parts_interleave_and_a_second_writer_of_a_part_is_refused() {
    use orderpulse::lake::writer::LakeWriter;
    use std::collections::BTreeMap;

    let limits = orderpulse::model::DecodeLimits::default();
    let events: Vec<_> = Simulator::new(Scenario { days: 1, orders_per_day: 200.0, ..Scenario::default() })
        .unwrap()
        .filter_map(|line| orderpulse::model::decode_line(line.as_bytes(), &limits).ok())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap(), Default::default()).unwrap();
    let (mut a, mut b) = (LakeWriter::open(&lake).await.unwrap(), LakeWriter::open(&lake).await.unwrap());
    a.track(&["a".to_owned()]).await.unwrap();
    b.track(&["b".to_owned()]).await.unwrap();
    // A writer of part `a` that opened before any commit: it will find its version taken.
    let mut stale_a = LakeWriter::open(&lake).await.unwrap();

    // Each commit of one writer takes a version the other believes is next; `a` commits
    // twice for each of `b`'s, so `b` has two versions to look past.
    let chunks: Vec<_> = events.chunks(events.len() / 6 + 1).collect();
    let by_b = |i: usize| i % 3 == 2;
    let mut written = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let (writer, part) = if by_b(i) { (&mut b, "b") } else { (&mut a, "a") };
        let last = (written + chunk.len()) as i64;
        writer.commit(batch_of(chunk, part, written as i64 + 1), &BTreeMap::from([(part.to_owned(), last)])).await.unwrap();
        written += chunk.len();
    }
    let counts = crate::common::lake_counts(&lake).await;
    let distinct = events.iter().map(|e| e.event_id.as_str()).collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!((counts.rows, counts.distinct_ids), (events.len() as i64, distinct as i64));

    let refused = stale_a.commit(batch_of(&events[..1], "a", 1), &BTreeMap::from([("a".to_owned(), 1)])).await.unwrap_err();
    assert!(refused.to_string().contains("wrote part a too"), "{refused}");
    assert_eq!(crate::common::lake_counts(&lake).await.rows, events.len() as i64, "the refused commit added rows");

    // Positions as recorded in the log: each part where its writer left it.
    let mut reader = LakeWriter::open(&lake).await.unwrap();
    reader.track(&["a".to_owned(), "b".to_owned()]).await.unwrap();
    let last_of = |of_b: bool| {
        let mut end = 0;
        let mut last = None;
        for (i, chunk) in chunks.iter().enumerate() {
            end += chunk.len() as i64;
            if by_b(i) == of_b {
                last = Some(end);
            }
        }
        last
    };
    assert_eq!((reader.positions().resume_after("a"), reader.positions().resume_after("b")), (last_of(false), last_of(true)));
}
