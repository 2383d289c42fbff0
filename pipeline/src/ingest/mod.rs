//! The ingest loop: lines from a source, decoded and validated, deduplicated, and
//! committed to the lake exactly once.
//!
//! ```text
//! source thread ──RawChunk──▶ decode thread ──DecodedChunk──▶ Ingestor (async) ──▶ LakeWriter
//!    (bounded channel)           (bounded channel)           dedup, route, batch     Delta commits + txn
//! ```
//!
//! Three stages on their own threads keep both cores busy (JSON decoding on one, Parquet
//! encoding on the other) and every channel is bounded, so a slow lake holds the source
//! back instead of filling memory.
//!
//! Sources that cannot be replayed (HTTP) use [`http`]: a request is answered only after
//! its lines are committed.

pub mod http;
pub mod kafka;

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::kpi::SqlEngine;
use crate::lake::writer::{LakeWriter, PendingBatch};
use crate::lake::{Lake, LakeError};
use crate::model::schema::{LakeTable, Lineage};
use crate::model::{decode_line, DecodeLimits, Event, RejectReason, Rejection};
use crate::source::RawChunk;
use crate::stream::{Arrivals, DedupWindow};

/// How the ingest loop batches and deduplicates.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub limits: DecodeLimits,
    pub batch_max_events: usize,
    pub batch_max_age: Duration,
    pub dedup_window: Duration,
    pub dedup_max_ids: usize,
}

impl From<&crate::config::IngestConfig> for IngestOptions {
    fn from(c: &crate::config::IngestConfig) -> Self {
        IngestOptions {
            limits: DecodeLimits { max_line_bytes: c.max_line_bytes },
            batch_max_events: c.batch_max_events,
            batch_max_age: c.batch_max_age,
            dedup_window: c.dedup_window,
            dedup_max_ids: c.dedup_max_ids,
        }
    }
}

/// What happened to the lines of one run.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct IngestStats {
    /// Lines read, of every kind.
    pub lines: u64,
    /// Valid, new events written to the lake.
    pub accepted: u64,
    /// Valid events whose `event_id` was already seen (not written again).
    pub duplicates: u64,
    /// Invalid lines written to `quarantine`, by reason.
    pub quarantined: BTreeMap<RejectReason, u64>,
    /// Lines already in the lake from an earlier, interrupted run (not written again).
    pub already_in_lake: u64,
    /// Empty lines, which carry no event.
    pub blank: u64,
    /// Lake commits (one per batch, covering every table).
    pub commits: u64,
}

impl IngestStats {
    pub fn quarantined_total(&self) -> u64 {
        self.quarantined.values().sum()
    }
}

/// Lines decoded: each raw line with what it turned out to be.
pub struct DecodedChunk {
    pub raw: RawChunk,
    pub outcomes: Vec<Result<Event, Rejection>>,
}

impl DecodedChunk {
    /// Decodes every line of `raw`, a large chunk on two threads (decoding is the costliest
    /// step per line, and the machine this is sized for has two cores). CPU work: call
    /// it off the async runtime's threads.
    pub fn decode(raw: RawChunk, limits: &DecodeLimits) -> Self {
        let lines: Vec<&[u8]> = raw.iter().map(|(line, _)| line).collect();
        let decode_all = |lines: &[&[u8]]| lines.iter().map(|line| decode_line(line, limits)).collect::<Vec<_>>();
        let outcomes = if lines.len() < 1024 {
            decode_all(&lines)
        } else {
            let (first, second) = lines.split_at(lines.len() / 2);
            std::thread::scope(|scope| {
                let second = scope.spawn(|| decode_all(second));
                let mut outcomes = decode_all(first);
                // A panic in the other half is a bug in the decoder; let it surface.
                outcomes.extend(second.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
                outcomes
            })
        };
        DecodedChunk { raw, outcomes }
    }
}

/// What became of one line. Serialised as the per-line answer of `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LineOutcome {
    /// A new event, written to its table.
    Accepted,
    /// An event whose id was already seen; not written again.
    Duplicate,
    /// Refused and written to `quarantine`.
    Rejected(Rejection),
    /// Written by an earlier, interrupted run of the same source.
    AlreadyInLake,
    /// An empty line.
    Blank,
}

/// Starts the decode stage: a thread that turns raw chunks into decoded ones.
pub fn spawn_decoder(mut raw: mpsc::Receiver<RawChunk>, limits: DecodeLimits) -> mpsc::Receiver<DecodedChunk> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::Builder::new()
        .name("orderpulse-decode".into())
        .spawn(move || {
            while let Some(chunk) = raw.blocking_recv() {
                if tx.blocking_send(DecodedChunk::decode(chunk, &limits)).is_err() {
                    break;
                }
            }
        })
        .expect("the OS can start a thread");
    rx
}

/// Owns a source's path into the lake: dedup window, pending batch, writer. A source is
/// one or more *parts* (a file; a Kafka topic's partitions), each with its own positions.
pub struct Ingestor {
    writer: LakeWriter,
    dedup: DedupWindow,
    /// The (source, position) of lines quarantined within the dedup window: a rejected
    /// line has no trustworthy id, so its place in its source is its identity. A second
    /// line of defence behind the positions, as the id window is for events.
    quarantined: DedupWindow,
    options: IngestOptions,
    batch: PendingBatch,
    /// Each part's last position in `batch`: the `txn` versions of the next commit.
    pending: BTreeMap<String, i64>,
    stats: IngestStats,
}

impl Ingestor {
    /// Opens the lake, reads the positions of `parts`, and rebuilds the dedup window.
    pub async fn open(lake: &Lake, parts: &[String], options: IngestOptions) -> Result<Self, LakeError> {
        let mut writer = LakeWriter::open(lake).await?;
        writer.track(parts).await?;
        let window_micros = i64::try_from(options.dedup_window.as_micros()).unwrap_or(i64::MAX);
        let (dedup, quarantined) = rebuild_dedup(lake, window_micros, options.dedup_max_ids).await?;
        for part in parts {
            tracing::info!(part, remembered_ids = dedup.len(), resume_after = ?writer.positions().resume_after(part), "ingest opened");
        }
        Ok(Ingestor { writer, dedup, quarantined, options, batch: PendingBatch::default(), pending: BTreeMap::new(), stats: IngestStats::default() })
    }

    /// Starts tracking more parts (partitions newly assigned), reading their positions.
    pub async fn track(&mut self, parts: &[String]) -> Result<(), LakeError> {
        self.writer.track(parts).await
    }

    /// Where `part` must resume: after this position, or from its start (`None`).
    pub fn resume_after(&self, part: &str) -> Option<i64> {
        self.writer.positions().resume_after(part)
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Takes a decoded chunk of `part`'s lines into the pending batch (dedup, route,
    /// quarantine) and says what became of each line. The outcome holds once the batch
    /// is committed.
    pub fn take(&mut self, part: &str, chunk: &DecodedChunk) -> Vec<LineOutcome> {
        let ingested_at_micros = chrono::Utc::now().timestamp_micros();
        let positions = self.writer.positions();
        let mut outcomes = Vec::with_capacity(chunk.outcomes.len());
        if let Some((_, last)) = chunk.raw.lines.last() {
            self.pending.insert(part.to_owned(), *last);
        }
        for ((line, position), decoded) in chunk.raw.iter().zip(&chunk.outcomes) {
            self.stats.lines += 1;
            self.batch.note_line();
            let lineage = Lineage { source: part, position, ingested_at_micros };
            let outcome = if line.iter().all(u8::is_ascii_whitespace) {
                self.stats.blank += 1;
                LineOutcome::Blank
            } else {
                match decoded {
                    Ok(event) => {
                        let table = LakeTable::for_stream(event.stream());
                        if !positions.should_write(table, part, position) {
                            self.stats.already_in_lake += 1;
                            LineOutcome::AlreadyInLake
                        } else if !self.dedup.insert(&event.event_id, ingested_at_micros) {
                            self.stats.duplicates += 1;
                            LineOutcome::Duplicate
                        } else {
                            self.batch.push_event(event, &lineage);
                            self.stats.accepted += 1;
                            LineOutcome::Accepted
                        }
                    }
                    Err(_)
                        if !positions.should_write(LakeTable::Quarantine, part, position)
                            || !self.quarantined.insert(&quarantine_key(part, position), ingested_at_micros) =>
                    {
                        self.stats.already_in_lake += 1;
                        LineOutcome::AlreadyInLake
                    }
                    Err(rejection) => {
                        self.batch.push_rejection(line, rejection, &lineage);
                        *self.stats.quarantined.entry(rejection.reason).or_default() += 1;
                        LineOutcome::Rejected(rejection.clone())
                    }
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Whether lines wait in the pending batch for a commit.
    pub fn has_pending_lines(&self) -> bool {
        self.batch.lines > 0
    }

    /// Whether the pending batch is full or old enough to commit.
    pub fn batch_is_due(&self) -> bool {
        self.batch.lines >= self.options.batch_max_events || self.batch.started.is_some_and(|s| s.elapsed() >= self.options.batch_max_age)
    }

    /// Commits the pending batch (if any) with each part's last position in it.
    pub async fn commit(&mut self) -> Result<(), LakeError> {
        if self.batch.lines == 0 || self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let parts = std::mem::take(&mut self.pending);
        let rows = batch.row_counts();
        self.writer.commit(batch, &parts).await?;
        self.stats.commits += 1;
        tracing::debug!(?parts, ?rows, "committed");
        Ok(())
    }

    /// Runs one part until the channel closes, committing by size and age, and a last
    /// time at the end.
    pub async fn run(mut self, part: &str, mut decoded: mpsc::Receiver<DecodedChunk>) -> Result<IngestStats, LakeError> {
        loop {
            let deadline = self.batch.started.map(|s| tokio::time::Instant::from_std(s + self.options.batch_max_age));
            let next = match deadline {
                Some(deadline) => tokio::select! {
                    chunk = decoded.recv() => Some(chunk),
                    () = tokio::time::sleep_until(deadline) => None,
                },
                None => Some(decoded.recv().await),
            };
            match next {
                Some(Some(chunk)) => drop(self.take(part, &chunk)),
                Some(None) => break,
                None => {}
            }
            if self.batch_is_due() {
                self.commit().await?;
            }
        }
        self.commit().await?;
        Ok(self.stats)
    }
}

/// The dedup key of a quarantined line: its source and position (a position has no `@`,
/// so the key is unambiguous whatever the source id holds).
fn quarantine_key(source: &str, position: i64) -> String {
    format!("{source}@{position}")
}

/// Reloads, from the lake, what the dedup windows remembered before a restart: the ids
/// of the events ingested within the window, and the (source, position) of the lines
/// quarantined within it (the most recent `max_ids` of each). The rows are hashed as they
/// stream in, kept in runs of one arrival time ([`Arrivals`]), and the newest are picked
/// from those ([`DedupWindow::from_arrivals`]): sorting ten million id strings in SQL, or
/// even their hashes, took seconds of a restart.
async fn rebuild_dedup(lake: &Lake, window_micros: i64, max_ids: usize) -> Result<(DedupWindow, DedupWindow), LakeError> {
    let ctx = SqlEngine::new(lake.clone()).session().await?;
    let horizon = chrono::Utc::now().timestamp_micros().saturating_sub(window_micros);
    let failed = |message: String| LakeError::Other { what: "rebuilding the dedup window", message };
    // Every row of `select` as (arrival, the hash `key` makes of its first two columns),
    // the arrival its third column.
    let arrivals = |select: String, key: fn(&ArrayRef, &ArrayRef, usize) -> u128| {
        let ctx = &ctx;
        async move {
            let mut rows = ctx.sql(&select).await.map_err(|e| failed(e.to_string()))?.execute_stream().await.map_err(|e| failed(e.to_string()))?;
            let mut arrivals = Arrivals::default();
            while let Some(batch) = rows.next().await {
                let batch = batch.map_err(|e| failed(e.to_string()))?;
                // The scan may hand strings back as Utf8View; normalise before reading.
                let first = arrow::compute::cast(batch.column(0), &DataType::Utf8).map_err(|e| failed(e.to_string()))?;
                let times = batch.column(2).as_primitive::<TimestampMicrosecondType>();
                arrivals.push_batch((0..batch.num_rows()).map(|row| (times.value(row), key(&first, batch.column(1), row))));
            }
            Ok::<_, LakeError>(arrivals)
        }
    };

    let selects: Vec<String> = LakeTable::EVENTS
        .iter()
        .filter(|table| ctx.table_exist(table.name()).unwrap_or(false))
        .map(|table| format!("SELECT event_id, 0, ingested_at FROM {table} WHERE ingested_at >= to_timestamp_micros({horizon})"))
        .collect();
    let events = if selects.is_empty() {
        Arrivals::default()
    } else {
        arrivals(selects.join(" UNION ALL "), |ids, _, row| DedupWindow::key_of(ids.as_string::<i32>().value(row))).await?
    };
    let quarantined = if ctx.table_exist(LakeTable::Quarantine.name()).unwrap_or(false) {
        let select = format!("SELECT source, source_position, received_at FROM quarantine WHERE received_at >= to_timestamp_micros({horizon})");
        arrivals(select, |sources, positions, row| {
            DedupWindow::key_of(&quarantine_key(sources.as_string::<i32>().value(row), positions.as_primitive::<Int64Type>().value(row)))
        })
        .await?
    } else {
        Arrivals::default()
    };
    Ok((DedupWindow::from_arrivals(window_micros, max_ids, events), DedupWindow::from_arrivals(window_micros, max_ids, quarantined)))
}

/// Why an ingest run stopped.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("reading the source: {0}")]
    Source(#[from] std::io::Error),
}

/// Runs one source to its end: opens the lake for `source_id`, starts `read` on its own
/// thread from the resume position, decodes on another, and commits until the source is
/// exhausted. `read` gets the position to resume after and the channel to fill.
pub async fn ingest_source<F>(lake: &Lake, source_id: &str, options: IngestOptions, read: F) -> Result<IngestStats, IngestError>
where
    F: FnOnce(Option<i64>, crate::source::ChunkSender) -> std::io::Result<()> + Send + 'static,
{
    let ingestor = Ingestor::open(lake, &[source_id.to_owned()], options.clone()).await?;
    let resume_after = ingestor.resume_after(source_id);
    let (tx, rx) = mpsc::channel(4);
    let reader = std::thread::Builder::new().name("orderpulse-source".into()).spawn(move || read(resume_after, tx)).expect("the OS can start a thread");
    let stats = ingestor.run(source_id, spawn_decoder(rx, options.limits)).await;
    // The reader ends once the channel closes, whether the run succeeded or not.
    let read_result = tokio::task::spawn_blocking(move || reader.join()).await;
    let stats = stats?;
    match read_result {
        Ok(Ok(result)) => result?,
        _ => return Err(IngestError::Source(std::io::Error::other("the source thread panicked"))),
    }
    Ok(stats)
}
