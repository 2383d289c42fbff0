//! orderpulse's integration tests: one binary (every extra test binary links DataFusion
//! again), one module per capability. Each test starts the real parts it needs (the
//! `orderpulse` binary, a Delta lake in a temp folder, Python's `deltalake` and DuckDB as
//! independent readers) and stops them when it ends.

mod carriers;
mod cli;
mod common;
mod exactly_once;
mod http_ingest;
mod independent_reader;
mod kafka;
mod kpi;
mod memory_lake;
mod pgwire;
mod run;
mod s3_lake;
mod stream;
mod tenancy;
