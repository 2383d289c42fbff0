//! Event time: the watermark, and timers that fire when it passes them.
//!
//! The watermark is the largest event time seen minus the allowed lateness; while the
//! sources are idle it also advances with the clock (a *floor*), so timers still fire when
//! nothing arrives. Timers fire in `(due, kind, subject)` order, whatever order they were
//! set in: a replay fires the same timers in the same order as the live run did.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::order::Key;
use crate::model::Stream;

/// How far event time has certainly progressed.
///
/// Each input (the orders stream, the carrier stream) has its own largest event time; the
/// watermark follows the input that is furthest behind, so reading one table ahead of
/// the other never makes the other's events late. An input that has gone idle (the
/// caller decides, by the clock) stops holding the others back; an input that has sent
/// nothing yet holds them back until it is idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    lateness_micros: i64,
    /// The largest event time seen, per input.
    max_event: BTreeMap<Stream, i64>,
    /// Inputs that are idle.
    idle: BTreeSet<Stream>,
    /// The clock's contribution while sources are idle: now minus the lateness.
    floor: Option<i64>,
}

impl Watermark {
    /// The inputs every watermark waits for.
    pub const INPUTS: [Stream; 2] = [Stream::Orders, Stream::Carrier];

    pub fn new(lateness_micros: i64) -> Self {
        Watermark { lateness_micros, max_event: BTreeMap::new(), idle: BTreeSet::new(), floor: None }
    }

    /// The watermark now: no event older than this is expected any more.
    pub fn current(&self) -> Option<i64> {
        let mut active = Self::INPUTS.iter().filter(|input| !self.idle.contains(input)).peekable();
        let from_events = if active.peek().is_none() {
            self.max_event.values().max().copied()
        } else {
            // An active input that has sent nothing yet holds everything back.
            active.map(|input| self.max_event.get(input).copied()).min().flatten()
        };
        from_events.map(|m| m - self.lateness_micros).max(self.floor)
    }

    /// Takes an event time of `input` into account; `true` if the event is late (behind
    /// the watermark as it was before this event).
    pub fn observe(&mut self, input: Stream, event_at: i64) -> bool {
        let late = self.current().is_some_and(|w| event_at < w);
        let max = self.max_event.entry(input).or_insert(event_at);
        *max = (*max).max(event_at);
        self.idle.remove(&input);
        late
    }

    /// Says that `input` has had nothing new for a while.
    pub fn set_idle(&mut self, input: Stream) {
        self.idle.insert(input);
    }

    /// Advances with the clock while the sources are idle (never backwards).
    pub fn advance_with_clock(&mut self, now_micros: i64) {
        self.floor = self.floor.max(Some(now_micros - self.lateness_micros));
    }
}

crate::model::vocabulary! {
    /// What a timer is for. Timers due at the same instant fire in this order.
    TimerKind {
        /// An order's `ship_by` passed: fires if it had not shipped (nor been cancelled) by then.
        ShipByPassed = "ship_by_passed",
        /// A parcel's label was created N hours ago: fires if the carrier has not scanned it
        /// as moving since.
        LabelNotScanned = "label_not_scanned",
        /// A parcel was last scanned N hours ago and has not been delivered or returned.
        NoScanFor = "no_scan_for",
        /// A parcel was first scanned N hours ago and no `order.shipped` (at or before
        /// now) names its tracking number: the scans are held for their order, but the
        /// merchant should know. `order_id` is the order the scans named, if any.
        ParcelUnclaimed = "parcel_unclaimed",
        /// Internal: a parcel's delivery is final; its transit time joins its lane's statistics.
        LaneDelivery = "lane_delivery",
    }
}

/// One event-time timer: fire `kind` for `subject` (an order id, or a parcel key) once the
/// watermark reaches `due`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub due: i64,
    pub kind: TimerKind,
    pub subject: Key,
}

/// The timers one order or parcel has pending, as `(due, kind)`. Setting the same timer
/// twice keeps one.
///
/// Held by their subject, not in a set of their own: the event that sets or cancels a
/// timer has its subject at hand, so that costs no look-up (most timers are cancelled
/// before they are due: a parcel's next scan ends the wait its previous scan started).
/// Room for two inline, the most a parcel usually has.
#[derive(Debug, Clone, Default)]
pub struct PendingTimers {
    /// Sorted.
    held: SmallVec<[(i64, TimerKind); 2]>,
    /// The subject's entry in the [`Timers`] queue that stands for all of `held`: at or
    /// before the earliest of them. Other entries of the subject there are stale.
    queued: Option<(i64, TimerKind)>,
}

/// Equal when the same timers are pending: which entry stands for them in the queue
/// depends on the order they were set in.
impl PartialEq for PendingTimers {
    fn eq(&self, other: &Self) -> bool {
        self.held == other.held
    }
}

impl Eq for PendingTimers {}

/// [`PendingTimers`] as checkpoints hold it.
#[derive(Serialize, Deserialize)]
struct SavedTimers {
    held: Vec<(i64, TimerKind)>,
    queued: Option<(i64, TimerKind)>,
}

impl Serialize for PendingTimers {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SavedTimers { held: self.held.to_vec(), queued: self.queued }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PendingTimers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let SavedTimers { mut held, queued } = SavedTimers::deserialize(deserializer)?;
        held.sort_unstable();
        held.dedup();
        Ok(PendingTimers { held: SmallVec::from_vec(held), queued })
    }
}

impl PendingTimers {
    /// `true` if the timer was not pending yet.
    fn insert(&mut self, timer: (i64, TimerKind)) -> bool {
        match self.held.binary_search(&timer) {
            Ok(_) => false,
            Err(place) => {
                self.held.insert(place, timer);
                true
            }
        }
    }

    /// `true` if the timer was pending.
    fn remove(&mut self, timer: (i64, TimerKind)) -> bool {
        match self.held.binary_search(&timer) {
            Ok(place) => {
                self.held.remove(place);
                true
            }
            Err(_) => false,
        }
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// What timers are about (an order or a parcel): it holds its own pending timers.
pub trait TimerSubject {
    fn pending_timers(&mut self) -> &mut PendingTimers;
}

/// When timers are due. Each subject with pending timers has one live entry here, for
/// its earliest (see [`PendingTimers::queued`]); when it comes up, the subject's next
/// timer is queued in turn. A parcel's scans set and cancel a `no_scan_for` timer each,
/// but its queue entries are a few: its label check, its delivery, and the waits that
/// were not cut short.
///
/// A calendar queue: a timer is appended, unsorted, to the bucket of the hour it is due
/// in, and a bucket is sorted once, when the watermark reaches it. That is one sort of an
/// hour's timers, in cache, instead of a heap's walk over the whole queue per timer set
/// and per timer fired.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timers {
    /// Queued timers, stale ones included, by the hour they are due.
    queue: BTreeMap<i64, Bucket>,
    /// How many timers the subjects hold.
    pending: usize,
}

/// The timers due in one hour.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Bucket {
    /// In reverse firing order while `sorted`, so the next one comes off the end.
    timers: Vec<Timer>,
    sorted: bool,
}

impl Timers {
    const BUCKET_MICROS: i64 = crate::model::Timestamp::MICROS_PER_HOUR;

    /// Sets a timer for `subject`, which holds its pending timers in `held`. The subject
    /// is the state's own key: cloning it costs no allocation, even for a long one.
    pub fn set(&mut self, held: &mut PendingTimers, due: i64, kind: TimerKind, subject: &Key) {
        if !held.insert((due, kind)) {
            return;
        }
        self.pending += 1;
        if held.queued.is_none_or(|queued| (due, kind) < queued) {
            held.queued = Some((due, kind));
            self.enqueue(Timer { due, kind, subject: subject.clone() });
        }
    }

    fn enqueue(&mut self, timer: Timer) {
        let bucket = self.queue.entry(timer.due.div_euclid(Self::BUCKET_MICROS)).or_default();
        // Still sorted if it fires before everything already there (timers are mostly
        // set in due order); a bucket nobody has reached yet is sorted when it is.
        bucket.sorted = bucket.timers.last().is_none_or(|last| bucket.sorted && timer <= *last);
        bucket.timers.push(timer);
    }

    /// Takes back a timer set before, if it is still pending. Its queue entry stays:
    /// when it comes up, it stands for the subject's next timer.
    pub fn cancel(&mut self, held: &mut PendingTimers, due: i64, kind: TimerKind) {
        self.pending -= usize::from(held.remove((due, kind)));
    }

    /// Takes a queue entry [`Timers::next_due`] gave to its subject, which holds `held`:
    /// `true` if it is a timer still pending (it fires), `false` if it was cancelled or
    /// the entry is stale. Queues the subject's next timer.
    pub fn fire(&mut self, held: &mut PendingTimers, timer: &Timer) -> bool {
        let entry = (timer.due, timer.kind);
        if held.queued != Some(entry) {
            return false;
        }
        let fires = held.remove(entry);
        self.pending -= usize::from(fires);
        held.queued = held.held.first().copied();
        if let Some((due, kind)) = held.queued {
            self.enqueue(Timer { due, kind, subject: timer.subject.clone() });
        }
        fires
    }

    /// Forgets the pending timers of a subject that leaves the state.
    pub fn forget(&mut self, held: &PendingTimers) {
        self.pending -= held.len();
    }

    /// The next queued timer due at or before `watermark`, in `(due, kind, subject)`
    /// order, taken out of the queue; [`Timers::fire`] says whether it fires.
    pub fn next_due(&mut self, watermark: i64) -> Option<Timer> {
        loop {
            let mut first = self.queue.first_entry()?;
            if *first.key() * Self::BUCKET_MICROS > watermark {
                return None;
            }
            let bucket = first.get_mut();
            if !bucket.sorted {
                bucket.timers.sort_unstable_by(|a, b| b.cmp(a));
                bucket.sorted = true;
            }
            if bucket.timers.last().is_some_and(|next| next.due > watermark) {
                return None;
            }
            match bucket.timers.pop() {
                Some(timer) => return Some(timer),
                None => {
                    first.remove();
                }
            }
        }
    }

    /// How many timers are pending.
    pub fn len(&self) -> usize {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_trails_the_input_furthest_behind_by_the_lateness() {
        use Stream::{Carrier, Orders};
        let mut w = Watermark::new(10);
        assert_eq!(w.current(), None);
        let steps: &[(Stream, i64, bool, Option<i64>)] = &[
            (Orders, 100, false, None),
            (Carrier, 95, false, Some(85)),
            (Carrier, 120, false, Some(90)),
            (Orders, 130, false, Some(110)),
            (Orders, 105, true, Some(110)),
        ];
        for &(input, event, late, watermark) in steps {
            assert_eq!(w.observe(input, event), late, "{input} event at {event}");
            assert_eq!(w.current(), watermark, "after {input} {event}");
        }
        w.set_idle(Carrier);
        assert_eq!(w.current(), Some(120), "an idle input holds nothing back");
        w.set_idle(Orders);
        assert_eq!(w.current(), Some(120), "all idle: everything seen is done");
        w.observe(Carrier, 121);
        assert_eq!(w.current(), Some(111), "a carrier event wakes its input");
        w.advance_with_clock(200);
        assert_eq!(w.current(), Some(190), "idle: the clock moves it");
        w.advance_with_clock(150);
        assert_eq!(w.current(), Some(190), "never backwards");
    }

    /// Timers with their subjects, as the state holds them.
    #[derive(Debug, Default)]
    struct World {
        timers: Timers,
        held: BTreeMap<Key, PendingTimers>,
    }

    impl World {
        fn set(&mut self, due: i64, subject: &str) {
            let subject = Key::new(subject);
            self.timers.set(self.held.entry(subject.clone()).or_default(), due, TimerKind::NoScanFor, &subject);
        }

        fn cancel(&mut self, due: i64, subject: &str) {
            self.timers.cancel(self.held.entry(Key::new(subject)).or_default(), due, TimerKind::NoScanFor);
        }

        /// The timers that fire once the watermark reaches `watermark`, in order.
        fn fire(&mut self, watermark: i64) -> Vec<Timer> {
            let mut fired = Vec::new();
            while let Some(timer) = self.timers.next_due(watermark) {
                if self.timers.fire(self.held.entry(timer.subject.clone()).or_default(), &timer) {
                    fired.push(timer);
                }
            }
            fired
        }
    }

    fn subjects(timers: &[Timer]) -> Vec<&str> {
        timers.iter().map(|t| t.subject.as_str()).collect()
    }

    #[test]
    fn timers_fire_in_due_order_whatever_order_they_were_set_in() {
        let hour = crate::model::Timestamp::MICROS_PER_HOUR;
        let set = [(30 * hour, "p1"), (10, "o1"), (10, "o0"), (hour + 5, "p2")];
        let (mut a, mut b) = (World::default(), World::default());
        for (due, subject) in set {
            a.set(due, subject);
        }
        for (due, subject) in set.iter().rev() {
            b.set(*due, subject);
            b.set(*due, subject);
        }
        assert_eq!((a.held.clone(), a.timers.len()), (b.held.clone(), b.timers.len()), "setting a timer twice keeps one");
        assert_eq!(subjects(&a.fire(2 * hour)), ["o0", "o1", "p2"]);
        assert_eq!(a.timers.len(), 1);
        assert!(a.fire(30 * hour - 1).is_empty());
        assert_eq!(subjects(&b.fire(30 * hour)), ["o0", "o1", "p2", "p1"]);
        assert!(b.timers.is_empty());
    }

    #[test]
    fn a_cancelled_timer_does_not_fire_and_one_set_again_fires_once() {
        let mut world = World::default();
        // (set or cancel, due, subject), then what fires by 100.
        let cases: &[(&[(bool, i64, &str)], &[&str])] = &[
            (&[(true, 10, "p1"), (false, 10, "p1")], &[]),
            (&[(true, 10, "p1"), (false, 10, "p1"), (true, 10, "p1")], &["p1"]),
            (&[(true, 10, "p1"), (false, 10, "p1"), (true, 10, "p1"), (true, 10, "p1")], &["p1"]),
            (&[(true, 20, "p2"), (true, 10, "p1"), (false, 20, "p2"), (true, 30, "p2")], &["p1", "p2"]),
            (&[(false, 10, "never-set")], &[]),
        ];
        for (steps, fired) in cases {
            for &(set, due, subject) in *steps {
                if set {
                    world.set(due, subject);
                } else {
                    world.cancel(due, subject);
                }
            }
            assert_eq!(subjects(&world.fire(100)), *fired, "{steps:?}");
            assert!(world.timers.is_empty(), "{steps:?}");
        }
    }

    /// A step of the property test below: set or cancel a timer (due in one of a few
    /// hours, on one of a few subjects), let the watermark move on, or save and restore.
    #[derive(Debug, Clone)]
    enum Step {
        Set(i64, u8),
        Cancel(i64, u8),
        Advance(i64),
        Checkpoint,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        let due = 0..6 * crate::model::Timestamp::MICROS_PER_HOUR;
        prop_oneof![
            (due.clone(), 0..4u8).prop_map(|(d, s)| Step::Set(d, s)),
            (due, 0..4u8).prop_map(|(d, s)| Step::Cancel(d, s)),
            (0..crate::model::Timestamp::MICROS_PER_HOUR).prop_map(Step::Advance),
            Just(Step::Checkpoint),
        ]
    }

    proptest::proptest! {
        /// The calendar queue fires what a plain sorted set of pending timers would, in
        /// the same order, whatever is set, cancelled and set again around the watermark,
        /// and through a checkpoint.
        #[test]
        fn timers_fire_as_a_sorted_set_would(steps in proptest::collection::vec(step(), 1..200)) {
            let mut world = World::default();
            let mut model = BTreeSet::new();
            let mut watermark = 0;
            let timer = |due: i64, subject: u8| Timer { due, kind: TimerKind::NoScanFor, subject: Key::new(format!("p{subject}")) };
            for step in steps {
                match step {
                    Step::Set(due, subject) => {
                        world.set(due, &format!("p{subject}"));
                        model.insert(timer(due, subject));
                    }
                    Step::Cancel(due, subject) => {
                        world.cancel(due, &format!("p{subject}"));
                        model.remove(&timer(due, subject));
                    }
                    Step::Advance(by) => {
                        watermark += by;
                        let due: Vec<Timer> = std::iter::from_fn(|| model.first().filter(|t| t.due <= watermark).cloned().inspect(|t| { model.remove(t); })).collect();
                        proptest::prop_assert_eq!(world.fire(watermark), due);
                    }
                    Step::Checkpoint => {
                        let bytes = postcard::to_stdvec(&world.timers).expect("serialise");
                        world.timers = postcard::from_bytes(&bytes).expect("deserialise");
                    }
                }
                proptest::prop_assert_eq!(world.timers.len(), model.len());
            }
        }
    }
}
