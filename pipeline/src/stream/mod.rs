//! Stream processing: what is decided per event as it flows.
//!
//! [`dedup`] keeps the ingest loop from writing an event twice. The rest follows every
//! order and parcel through its life in event time: [`order`] (one order and its
//! parcels), [`time`] (watermark and timers), [`lanes`] (per-lane statistics) and
//! [`state`] (the rules that tie them together) are pure; [`tail`] reads the lake's new
//! commits, [`checkpoint`] saves and restores the state with the lake versions it
//! reflects, and [`processor`] runs the loop.

pub mod checkpoint;
pub mod dedup;
pub mod lanes;
pub mod order;
pub mod output;
pub mod processor;
pub mod state;
pub mod tail;
pub mod time;

pub use dedup::{Arrivals, DedupWindow};
pub use state::{Applied, StreamSettings, StreamState, TimerFiring};

/// The hash map of the stream state. Its keys (order ids, parcel keys) are caller data,
/// so it is randomly seeded; foldhash hashes such short strings fastest (it is
/// hashbrown's own default).
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The hash set of the stream state (see [`HashMap`]).
pub type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
