//! Stream processing: what is decided per event as it flows, before the lake.
//!
//! Today that is deduplication; the order state machine, timers, watermarks and lane
//! statistics join it here.

pub mod dedup;

pub use dedup::DedupWindow;
