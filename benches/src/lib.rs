//! Criterion benchmarks for orderpulse live in `benches/`; see README.
