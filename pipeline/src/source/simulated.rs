//! The simulator as a live source: its lines, paced to a rate, numbered by sequence.
//!
//! A line's position is its 1-based sequence number in the scenario's stream. The stream
//! is deterministic for a scenario, so resuming after position `p` regenerates and skips
//! the first `p` lines.

use std::time::{Duration, Instant};

use super::simulator::{Scenario, Simulator};
use super::{ChunkSender, RawChunk, CHUNK_LINES};

/// The source id under which a scenario's stream is recorded in the lake.
pub fn source_id(scenario: &Scenario) -> String {
    format!("orderpulse:simulator:{}:{}", scenario.seed, scenario.start.to_rfc3339())
}

/// Streams `scenario` at `rate` lines per second into `tx` until it ends or the receiver
/// goes away. Chunks are handed over at least every 100 ms so a slow rate still flows.
pub fn stream_simulation(scenario: Scenario, rate: f64, resume_after: Option<i64>, tx: &ChunkSender) -> std::io::Result<()> {
    let simulator = Simulator::new(scenario).map_err(std::io::Error::other)?;
    let skip = resume_after.unwrap_or(0).max(0) as usize;
    let started = Instant::now();
    let mut chunk = RawChunk::default();
    let mut last_flush = Instant::now();
    let mut sent = 0u64;
    for (index, line) in simulator.enumerate().skip(skip) {
        chunk.push(line.as_bytes(), index as i64 + 1);
        sent += 1;
        let due = started + Duration::from_secs_f64(sent as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if chunk.len() >= CHUNK_LINES || last_flush.elapsed() >= Duration::from_millis(100) {
            if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return Ok(());
            }
            last_flush = Instant::now();
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(chunk);
    }
    Ok(())
}
