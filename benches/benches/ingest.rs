//! Criterion benches for the ingest path: decode + validate, and batch build + commit.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use orderpulse::lake::writer::{LakeWriter, PendingBatch};
use orderpulse::lake::Lake;
use orderpulse::model::schema::Lineage;
use orderpulse::model::{decode_line, DecodeLimits, Event};
use orderpulse::source::simulator::{Scenario, Simulator};

/// A realistic mix of lines: one simulated day.
fn sample_lines(n: usize) -> Vec<String> {
    let scenario = Scenario { days: 3, orders_per_day: 4000.0, ..Scenario::default() };
    Simulator::new(scenario).expect("valid scenario").take(n).collect()
}

fn decode(c: &mut Criterion) {
    let lines = sample_lines(20_000);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let limits = DecodeLimits::default();
    let mut group = c.benchmark_group("decode_validate");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("events", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode_line(line.as_bytes(), &limits).ok());
            }
        })
    });
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode_line(line.as_bytes(), &limits).ok());
            }
        })
    });
    group.finish();
}

fn write(c: &mut Criterion) {
    let limits = DecodeLimits::default();
    let events: Vec<Event> = sample_lines(50_000).iter().filter_map(|l| decode_line(l.as_bytes(), &limits).ok()).collect();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("batch_write");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("build_and_commit_50k", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let lake = Lake::open(dir.path().to_str().expect("utf-8 path"), Default::default()).expect("lake");
                let writer = runtime.block_on(LakeWriter::open(&lake)).expect("writer");
                (dir, writer)
            },
            |(dir, mut writer)| {
                let mut batch = PendingBatch::default();
                let lineage = Lineage { source: "bench", position: 1, ingested_at_micros: 0 };
                for event in &events {
                    batch.note_line();
                    batch.push_event(event, &lineage);
                }
                let parts = BTreeMap::from([("bench".to_owned(), events.len() as i64)]);
                runtime.block_on(writer.commit(batch, &parts)).expect("commit");
                drop(dir);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, decode, write);
criterion_main!(benches);
