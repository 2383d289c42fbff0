//! The stream processor's loop: follow the event tables, apply each event to the state,
//! fire timers as the watermark passes them, checkpoint, write the outputs.
//!
//! ```text
//! order_events ─┐ TableTail                 StreamState                CheckpointStore
//!               ├──────────▶ apply(event) ─▶ fire_due_timers ─▶ outbox ─▶ save(seq, state,
//! carrier_events┘  (commit by commit)        (watermark)                  positions, outbox)
//!                                                                              │ then
//!                                                     order_status (MERGE) ◀───┤
//!                                                     timer_firings (txn seq) ◀┘
//! ```
//!
//! Exactly once: a checkpoint holds the state with the table versions it reflects and the
//! outputs not yet written; the outputs are written after it. A restart loads the newest
//! checkpoint, writes its outputs again (the MERGE is idempotent, the firings' commit is
//! skipped if its transaction version is already in the table), and reads the tables
//! from the recorded versions on. Re-reading a commit partly applied before a crash is
//! harmless: the state ignores events it has seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use super::output;
use super::state::{StreamSettings, StreamState, TimerFiring};
use super::tail::TableTail;
use crate::lake::{Lake, LakeError};
use crate::model::schema::LakeTable;
use crate::model::Stream;

/// How the loop paces itself (`[stream]` in the configuration).
#[derive(Debug, Clone)]
pub struct ProcessorOptions {
    pub settings: StreamSettings,
    /// How often to look for new commits when caught up.
    pub poll_interval: Duration,
    /// How often to checkpoint (when something changed).
    pub checkpoint_interval: Duration,
    /// After this long without new events, the watermark advances with the clock.
    pub idle_after: Duration,
}

/// The state, shared with the API's order look-ups (which only read).
pub type SharedState = Arc<RwLock<StreamState>>;

/// Where a running processor stands, as the API tells its callers (`/healthz`,
/// `/metrics`, and whether an order missing from the state is "not found").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Phase {
    /// It has not yet read everything its tables held since it started: an order missing
    /// from the state may still be in the lake (a state rebuilt from the event tables, or
    /// the commits after its checkpoint).
    CatchingUp = 0,
    /// It has read the whole lake at least once since its start, and follows it.
    CaughtUp = 1,
    /// It stopped (another processor took the state over, or it was shut down); the
    /// state is what it reached.
    Stopped = 2,
}

/// The processor's [`Phase`], shared with the API.
#[derive(Debug, Clone, Default)]
pub struct ProcessorStatus(Arc<AtomicU8>);

impl ProcessorStatus {
    /// For a state built whole before it is served (the look-up bench).
    pub fn caught_up() -> Self {
        let status = ProcessorStatus::default();
        status.set(Phase::CaughtUp);
        status
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::CatchingUp,
            1 => Phase::CaughtUp,
            _ => Phase::Stopped,
        }
    }

    pub(crate) fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }
}

/// The tables the processor follows, with the stream each carries.
const FOLLOWED: [(LakeTable, Stream); 2] = [(LakeTable::OrderEvents, Stream::Orders), (LakeTable::CarrierEvents, Stream::Carrier)];

/// The stream processor over one lake.
pub struct Processor {
    lake: Lake,
    options: ProcessorOptions,
    checkpoints: CheckpointStore,
    state: SharedState,
    tails: Vec<TableTail>,
    /// The sequence number of the last checkpoint written (0: none yet).
    seq: u64,
    outbox: Vec<TimerFiring>,
    /// Something changed since the last checkpoint.
    dirty: bool,
    /// When each followed table last had new events (same order as `tails`).
    last_events: Vec<Instant>,
    last_checkpoint: Instant,
    status: ProcessorStatus,
}

/// What a step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub events: usize,
    pub firings: usize,
}

fn poisoned() -> LakeError {
    LakeError::Other { what: "the stream state", message: "a thread panicked while changing it".into() }
}

/// Deletes the processor's checkpoints and its output tables (`order_status`,
/// `timer_firings`), so that the next start rebuilds the state from the event tables:
/// after a change of the state's format, or to apply changed `[stream]` settings. Every
/// processor of the lake must be stopped first. Returns the objects deleted per folder.
pub async fn discard_state(lake: &Lake) -> Result<Vec<(&'static str, usize)>, LakeError> {
    let mut deleted = Vec::new();
    // The checkpoints first: without them, leftover outputs are rewritten by the rebuild.
    for folder in std::iter::once(super::checkpoint::FOLDER).chain(output::TABLES) {
        deleted.push((folder, lake.delete_folder(folder).await?));
    }
    Ok(deleted)
}

impl Processor {
    /// Resumes from the newest checkpoint (writing the outputs it still owed), or starts
    /// afresh from the tables' current snapshots.
    pub async fn open(lake: &Lake, options: ProcessorOptions) -> Result<Self, CheckpointError> {
        let checkpoints = CheckpointStore::open(lake)?;
        let (state, positions, seq, outbox) = match checkpoints.load_latest().await? {
            Some(checkpoint) => {
                if checkpoint.state.settings() != &options.settings {
                    tracing::warn!("the [stream] settings changed since the checkpoint; the checkpoint's are kept until the state is rebuilt");
                }
                tracing::info!(seq = checkpoint.seq, positions = ?checkpoint.positions, orders = checkpoint.state.order_count(), "stream state restored");
                (checkpoint.state, checkpoint.positions, checkpoint.seq, checkpoint.outbox)
            }
            None => (StreamState::new(options.settings.clone()), BTreeMap::new(), 0, Vec::new()),
        };
        let tails = FOLLOWED.into_iter().map(|(table, _)| TableTail::new(lake, table, positions.get(table.name()).copied())).collect::<Result<Vec<_>, _>>()?;
        let mut processor = Processor {
            lake: lake.clone(),
            options,
            checkpoints,
            state: Arc::new(RwLock::new(state)),
            tails,
            seq,
            outbox,
            dirty: false,
            last_events: vec![Instant::now(); FOLLOWED.len()],
            last_checkpoint: Instant::now(),
            status: ProcessorStatus::default(),
        };
        if seq > 0 {
            processor.write_outputs().await?;
        }
        Ok(processor)
    }

    pub fn shared_state(&self) -> SharedState {
        self.state.clone()
    }

    pub fn status(&self) -> ProcessorStatus {
        self.status.clone()
    }

    fn positions(&self) -> BTreeMap<String, i64> {
        self.tails.iter().filter_map(|t| Some((t.table().name().to_owned(), t.version()?))).collect()
    }

    /// Reads and applies up to `max_chunks` chunks of new rows per table, then fires the
    /// timers the watermark has passed.
    pub async fn step(&mut self, max_chunks: usize) -> Result<Progress, LakeError> {
        let mut progress = Progress::default();
        for (i, (_, input)) in FOLLOWED.iter().enumerate() {
            let mut events = 0;
            for _ in 0..max_chunks {
                let Some(chunk) = self.tails[i].next_chunk().await? else { break };
                let mut state = self.state.write().map_err(|_| poisoned())?;
                events += chunk.events.len();
                for event in chunk.events {
                    state.apply(event);
                }
                let fired = state.fire_due_timers();
                progress.firings += fired.len();
                self.outbox.extend(fired);
                self.dirty = true;
            }
            if events > 0 {
                self.last_events[i] = Instant::now();
            } else if self.last_events[i].elapsed() >= self.options.idle_after {
                self.state.write().map_err(|_| poisoned())?.set_input_idle(*input);
            }
            progress.events += events;
        }
        if progress.events == 0 && self.status.phase() == Phase::CatchingUp {
            // Every table was read to its end without an error.
            self.status.set(Phase::CaughtUp);
        }
        let all_idle = self.last_events.iter().all(|at| at.elapsed() >= self.options.idle_after);
        if progress.events == 0 && all_idle {
            self.fire_with_clock()?;
        }
        Ok(progress)
    }

    /// Lets the watermark advance to the clock (the sources are idle) and fires what is due.
    fn fire_with_clock(&mut self) -> Result<(), LakeError> {
        let mut state = self.state.write().map_err(|_| poisoned())?;
        let before = state.watermark();
        state.advance_with_clock(chrono::Utc::now().timestamp_micros());
        let fired = state.fire_due_timers();
        self.dirty |= !fired.is_empty() || state.watermark() != before;
        self.outbox.extend(fired);
        Ok(())
    }

    /// Saves a checkpoint (if anything changed since the last) and writes its outputs.
    pub async fn checkpoint(&mut self) -> Result<(), CheckpointError> {
        if !self.dirty {
            return Ok(());
        }
        let started = Instant::now();
        let checkpoint = {
            let state = self.state.read().map_err(|_| poisoned())?;
            Checkpoint { seq: self.seq + 1, positions: self.positions(), state: state.clone(), outbox: self.outbox.clone() }
        };
        let bytes = self.checkpoints.save(&checkpoint).await?;
        self.seq = checkpoint.seq;
        self.last_checkpoint = Instant::now();
        tracing::debug!(seq = self.seq, bytes, positions = ?checkpoint.positions, elapsed = ?started.elapsed(), "stream checkpoint saved");
        // Outputs not written stay owed (changes restored, outbox kept): the next
        // checkpoint carries them again.
        self.write_outputs().await?;
        self.dirty = false;
        Ok(())
    }

    /// Writes what the last checkpoint owes: `order_status` rows of the orders that
    /// changed, and the outbox's timer firings.
    async fn write_outputs(&mut self) -> Result<(), LakeError> {
        let (changes, batch) = {
            let mut state = self.state.write().map_err(|_| poisoned())?;
            let changes = state.take_changes();
            let batch = output::order_status_batch(&state, &changes);
            (changes, batch)
        };
        let batch = batch.map_err(|e| LakeError::Derived { name: output::ORDER_STATUS.into(), message: e.to_string() })?;
        if let Err(error) = output::upsert_order_status(&self.lake, batch).await {
            // Put them back: the next checkpoint writes them.
            self.state.write().map_err(|_| poisoned())?.restore_changes(changes);
            return Err(error);
        }
        output::append_timer_firings(&self.lake, self.seq, &self.outbox).await?;
        self.outbox.clear();
        Ok(())
    }

    /// Processes everything the tables hold now, fires what the clock allows if
    /// `advance_clock`, checkpoints and returns (`orderpulse process --once`).
    pub async fn catch_up(&mut self, advance_clock: bool) -> Result<Progress, CheckpointError> {
        let mut total = Progress::default();
        loop {
            let progress = self.step(64).await?;
            total.events += progress.events;
            total.firings += progress.firings;
            if progress.events == 0 {
                break;
            }
            if self.checkpoint_due() {
                self.checkpoint().await?;
            }
        }
        // Caught up: as far as this run knows, every input is idle.
        {
            let mut state = self.state.write().map_err(|_| poisoned())?;
            for (_, input) in FOLLOWED {
                state.set_input_idle(input);
            }
            let fired = state.fire_due_timers();
            total.firings += fired.len();
            self.outbox.extend(fired);
            self.dirty = true;
        }
        if advance_clock {
            self.fire_with_clock()?;
        }
        self.checkpoint().await?;
        Ok(total)
    }

    fn checkpoint_due(&self) -> bool {
        self.dirty && self.last_checkpoint.elapsed() >= self.options.checkpoint_interval
    }

    /// Runs until `shutdown` resolves, checkpointing every `checkpoint_interval`. A lake
    /// that cannot be read or written (a network blip, a throttled store) is logged and
    /// retried with backoff; only losing the ownership of the state (another processor
    /// wrote the next checkpoint) stops it.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), CheckpointError> {
        let ended = self.follow(shutdown).await;
        self.status.set(Phase::Stopped);
        ended
    }

    /// [`Processor::run`]'s loop, until shutdown (after a last checkpoint) or fencing.
    async fn follow(&mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), CheckpointError> {
        tokio::pin!(shutdown);
        let mut checkpoints = tokio::time::interval(self.options.checkpoint_interval);
        checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        loop {
            let pause = match self.step(16).await {
                Ok(progress) => {
                    backoff = Duration::ZERO;
                    if progress.events > 0 {
                        Duration::ZERO
                    } else {
                        self.options.poll_interval
                    }
                }
                Err(error) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
                    tracing::warn!(%error, retry_in = ?backoff, "stream processor cannot read the lake; retrying");
                    backoff
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                _ = checkpoints.tick() => match self.checkpoint().await {
                    Err(error @ CheckpointError::Fenced { .. }) => return Err(error),
                    Err(error) => tracing::warn!(%error, "stream checkpoint failed; the next one tries again"),
                    Ok(()) => {}
                },
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.checkpoint().await
    }
}
