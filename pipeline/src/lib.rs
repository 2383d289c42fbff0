//! orderpulse: an order-tracking analytics pipeline for online stores.
//!
//! Events (orders, carrier scans, support tickets) come in from [`source`]s, are decoded
//! and validated by [`model`], deduplicated by [`stream`], and committed exactly once to
//! Delta tables in the [`lake`] by the [`ingest`] loop. [`kpi`] runs SQL over the lake and
//! [`api`] serves it over HTTP. `ARCHITECTURE.md` follows one event through all of it.

pub mod allocator;
pub mod api;
pub mod background;
pub mod carriers;
pub mod cli;
pub mod config;
pub mod ingest;
pub mod kpi;
pub mod lake;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod source;
pub mod stream;
