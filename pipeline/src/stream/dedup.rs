//! Deduplication by `event_id` over a window of arrival time.

use std::collections::VecDeque;

use ahash::AHashSet;
use xxhash_rust::xxh3::xxh3_128;

/// Remembers the ids of events that arrived within the last `window_micros` (and at most
/// `max_ids` of them), so that a redelivered event is counted, not written twice.
///
/// The window is over *arrival* (ingest) time, not event time: redeliveries (producer
/// retries, a file ingested twice, a replayed Kafka partition) cluster in arrival time,
/// while their event times can be anything: an old scan re-sent, or the sparse tail of a
/// stream where a few lines span days of event time. An event-time window forgot ids in
/// exactly those cases.
///
/// Ids are kept as 128-bit XXH3 hashes, not strings: 16 bytes per id instead of ~60, so
/// the default ten million ids take a few hundred MB, and the chance of two distinct ids
/// colliding is negligible (about 1 in 10^23 at that size). Their arrival times are kept
/// once per run of ids that arrived together (a chunk of a source shares one), not once
/// per id.
///
/// Owned by the ingest loop (one per source); it is rebuilt from the lake's `ingested_at`
/// column on start ([`DedupWindow::from_arrivals`]), so it survives restarts without a
/// checkpoint of its own. The set is randomly keyed (ahash): the ids are caller data, and
/// their XXH3 hashes are not keyed.
#[derive(Debug)]
pub struct DedupWindow {
    window_micros: i64,
    max_ids: usize,
    seen: AHashSet<u128>,
    /// The remembered ids' hashes, oldest first: the eviction order.
    by_arrival: VecDeque<u128>,
    /// The arrival times of `by_arrival`, run-length encoded: `(arrival, ids)`, oldest first.
    arrival_runs: VecDeque<(i64, usize)>,
}

/// What a restart reads back for a [`DedupWindow`]: id hashes with their arrival times,
/// batch by batch in whatever order the scan hands them out. Rows of a batch that share
/// an arrival time are kept as one run, so putting them in arrival order sorts a few runs
/// per commit instead of every id.
#[derive(Debug, Default)]
pub struct Arrivals {
    hashes: Vec<Vec<u128>>,
    runs: Vec<ArrivalRun>,
}

/// Ids of one batch (`hashes[batch][start..start + len]`) that arrived at `arrival`.
#[derive(Debug)]
struct ArrivalRun {
    arrival: i64,
    batch: usize,
    start: usize,
    len: usize,
}

impl Arrivals {
    /// Adds one batch of `(arrival_micros, DedupWindow::key_of(id))` rows.
    pub fn push_batch(&mut self, rows: impl ExactSizeIterator<Item = (i64, u128)>) {
        let batch = self.hashes.len();
        let mut hashes = Vec::with_capacity(rows.len());
        for (arrival, hash) in rows {
            match self.runs.last_mut() {
                Some(run) if run.batch == batch && run.arrival == arrival => run.len += 1,
                _ => self.runs.push(ArrivalRun { arrival, batch, start: hashes.len(), len: 1 }),
            }
            hashes.push(hash);
        }
        self.hashes.push(hashes);
    }

    pub fn len(&self) -> usize {
        self.runs.iter().map(|run| run.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

impl DedupWindow {
    pub fn new(window_micros: i64, max_ids: usize) -> Self {
        DedupWindow { window_micros, max_ids: max_ids.max(1), seen: AHashSet::new(), by_arrival: VecDeque::new(), arrival_runs: VecDeque::new() }
    }

    /// Records `event_id` as arrived at `arrival_micros`; `true` the first time, `false`
    /// for a duplicate. Arrival times are expected not to go backwards.
    pub fn insert(&mut self, event_id: &str, arrival_micros: i64) -> bool {
        self.insert_hash(Self::key_of(event_id), arrival_micros)
    }

    /// The window that inserting `arrivals` oldest first would leave: what a restart
    /// rebuilds from the lake. Only the newest `max_ids` can stay, so the oldest beyond
    /// them are skipped rather than inserted and evicted.
    pub fn from_arrivals(window_micros: i64, max_ids: usize, mut arrivals: Arrivals) -> Self {
        let mut window = DedupWindow::new(window_micros, max_ids);
        // Stable: runs of one arrival keep the order the scan gave them.
        arrivals.runs.sort_by_key(|run| run.arrival);
        let total = arrivals.len();
        let mut older = total.saturating_sub(window.max_ids);
        window.seen.reserve(total - older);
        window.by_arrival.reserve(total - older);
        for run in &arrivals.runs {
            let hashes = &arrivals.hashes[run.batch][run.start..run.start + run.len];
            let skipped = older.min(hashes.len());
            older -= skipped;
            for &hash in &hashes[skipped..] {
                window.insert_hash(hash, run.arrival);
            }
        }
        window
    }

    /// What a window keeps of an event id (or of a quarantined line's source position).
    pub fn key_of(id: &str) -> u128 {
        xxh3_128(id.as_bytes())
    }

    fn insert_hash(&mut self, hash: u128, arrival_micros: i64) -> bool {
        if !self.seen.insert(hash) {
            return false;
        }
        self.by_arrival.push_back(hash);
        match self.arrival_runs.back_mut() {
            Some((arrival, ids)) if *arrival == arrival_micros => *ids += 1,
            _ => self.arrival_runs.push_back((arrival_micros, 1)),
        }
        self.evict(arrival_micros);
        true
    }

    /// Whether `event_id` is currently remembered.
    pub fn contains(&self, event_id: &str) -> bool {
        self.seen.contains(&Self::key_of(event_id))
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets, oldest first, the ids that arrived before the window or beyond the cap.
    fn evict(&mut self, now_micros: i64) {
        let horizon = now_micros.saturating_sub(self.window_micros);
        while let Some((arrival, ids)) = self.arrival_runs.front_mut() {
            let over_cap = self.by_arrival.len().saturating_sub(self.max_ids);
            let leaving = if *arrival < horizon { *ids } else { over_cap.min(*ids) };
            if leaving == 0 {
                break;
            }
            for hash in self.by_arrival.drain(..leaving) {
                self.seen.remove(&hash);
            }
            *ids -= leaving;
            if *ids == 0 {
                self.arrival_runs.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn duplicates_within_the_window_are_recognised() {
        // (event id, arrival hour, expected: first time?)
        let cases = [
            ("a", 0, true),
            ("b", 1, true),
            ("a", 2, false),
            ("c", 30, true),
            ("b", 30, true), // "b" (hour 1) left the 24-hour window when "c" arrived
            ("c", 31, false),
        ];
        let mut window = DedupWindow::new(24 * HOUR, 1_000);
        for (id, hour, first) in cases {
            assert_eq!(window.insert(id, hour * HOUR), first, "{id} at hour {hour}");
        }
        assert!(window.contains("c"));
        assert!(!window.contains("a"));
    }

    #[test]
    fn memory_is_bounded_by_the_window_and_the_cap() {
        let mut by_time = DedupWindow::new(10 * HOUR, 1_000_000);
        let mut by_count = DedupWindow::new(1_000 * HOUR, 100);
        for i in 0..1_000 {
            by_time.insert(&format!("e{i}"), i * HOUR);
            by_count.insert(&format!("e{i}"), i);
        }
        assert!(by_time.len() <= 11, "kept {}", by_time.len());
        assert_eq!(by_count.len(), 100);
        assert!(by_count.contains("e999") && !by_count.contains("e899"));
        // The cap cuts into a run of ids that arrived together: the oldest of it go.
        let mut one_chunk = DedupWindow::new(HOUR, 4);
        for i in 0..10 {
            one_chunk.insert(&format!("e{i}"), 0);
        }
        let kept: Vec<bool> = (0..10).map(|i| one_chunk.contains(&format!("e{i}"))).collect();
        assert_eq!(kept, [false, false, false, false, false, false, true, true, true, true]);
        assert!(one_chunk.insert("late", 2 * HOUR) && one_chunk.len() == 1, "the whole run left the window");
    }

    #[test]
    fn a_window_rebuilt_from_arrivals_in_any_order_is_the_one_inserting_them_left() {
        // (window hours, cap): by time, by count, and both.
        for (window_hours, cap) in [(10, 1_000_000), (1_000, 100), (10, 5)] {
            let mut inserted = DedupWindow::new(window_hours * HOUR, cap);
            let mut rows = Vec::new();
            for i in 0..500i64 {
                let id = format!("e{}", i % 450); // some ids arrive twice
                                                  // In chunks of 5 sharing an arrival time (the caps are whole chunks: which
                                                  // ids of a chunk stay at the cap is not decided by time).
                let arrival = i / 5 * HOUR / 10;
                inserted.insert(&id, arrival);
                rows.push((arrival, DedupWindow::key_of(&id)));
            }
            rows.reverse();
            rows.swap(3, 300);
            // Batches of uneven sizes, as a scan hands them out.
            let mut arrivals = Arrivals::default();
            for batch in rows.chunks(61) {
                arrivals.push_batch(batch.iter().copied());
            }
            assert_eq!(arrivals.len(), 500);
            let rebuilt = DedupWindow::from_arrivals(window_hours * HOUR, cap, arrivals);
            assert_eq!(rebuilt.len(), inserted.len(), "window {window_hours} h, cap {cap}");
            for i in 0..450 {
                let id = format!("e{i}");
                assert_eq!(rebuilt.contains(&id), inserted.contains(&id), "{id}: window {window_hours} h, cap {cap}");
            }
        }
    }
}
