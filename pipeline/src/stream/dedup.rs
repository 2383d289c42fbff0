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
/// colliding is negligible (about 1 in 10^23 at that size).
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
    /// (arrival time, id hash), oldest first: the eviction order.
    by_arrival: VecDeque<(i64, u128)>,
}

impl DedupWindow {
    pub fn new(window_micros: i64, max_ids: usize) -> Self {
        DedupWindow { window_micros, max_ids: max_ids.max(1), seen: AHashSet::new(), by_arrival: VecDeque::new() }
    }

    /// Records `event_id` as arrived at `arrival_micros`; `true` the first time, `false`
    /// for a duplicate. Arrival times are expected not to go backwards.
    pub fn insert(&mut self, event_id: &str, arrival_micros: i64) -> bool {
        self.insert_hash(Self::key_of(event_id), arrival_micros)
    }

    /// The window that inserting `arrivals` oldest first would leave: what a restart
    /// rebuilds from the lake. The pairs, `(arrival_micros, key_of(id))`, may come in any
    /// order; only the newest `max_ids` can stay, so the rest are dropped before sorting.
    pub fn from_arrivals(window_micros: i64, max_ids: usize, mut arrivals: Vec<(i64, u128)>) -> Self {
        let mut window = DedupWindow::new(window_micros, max_ids);
        if let Some(older) = arrivals.len().checked_sub(window.max_ids).filter(|&n| n > 0) {
            arrivals.select_nth_unstable(older);
            arrivals.drain(..older);
        }
        arrivals.sort_unstable();
        window.seen.reserve(arrivals.len());
        window.by_arrival.reserve(arrivals.len());
        for (arrival, hash) in arrivals {
            window.insert_hash(hash, arrival);
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
        self.by_arrival.push_back((arrival_micros, hash));
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

    fn evict(&mut self, now_micros: i64) {
        let horizon = now_micros.saturating_sub(self.window_micros);
        while let Some(&(arrival, hash)) = self.by_arrival.front() {
            if arrival >= horizon && self.by_arrival.len() <= self.max_ids {
                break;
            }
            self.by_arrival.pop_front();
            self.seen.remove(&hash);
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
    }

    #[test]
    fn a_window_rebuilt_from_arrivals_in_any_order_is_the_one_inserting_them_left() {
        // (window hours, cap): by time, by count, and both.
        for (window_hours, cap) in [(10, 1_000_000), (1_000, 100), (10, 5)] {
            let mut inserted = DedupWindow::new(window_hours * HOUR, cap);
            let mut arrivals = Vec::new();
            for i in 0..500i64 {
                let id = format!("e{}", i % 450); // some ids arrive twice
                inserted.insert(&id, i * HOUR / 10);
                arrivals.push((i * HOUR / 10, DedupWindow::key_of(&id)));
            }
            arrivals.reverse();
            arrivals.swap(3, 300);
            let rebuilt = DedupWindow::from_arrivals(window_hours * HOUR, cap, arrivals);
            assert_eq!(rebuilt.len(), inserted.len(), "window {window_hours} h, cap {cap}");
            for i in 0..450 {
                let id = format!("e{i}");
                assert_eq!(rebuilt.contains(&id), inserted.contains(&id), "{id}: window {window_hours} h, cap {cap}");
            }
        }
    }
}
