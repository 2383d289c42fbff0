//! Criterion benches for the stream processor's pure core and the carrier adapters:
//! events applied to the order state machine per second (one core), and carrier payloads
//! turned into canonical scans per second.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use orderpulse::model::Event;
use orderpulse::source::simulator::{Scenario, Simulator};
use orderpulse::stream::{StreamSettings, StreamState};

/// The allocator the `orderpulse` binary uses; with transparent huge pages, as in
/// `orderpulse process` (see `orderpulse::allocator`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulated events (orders and scans; tickets are ignored by the state) in event-time order.
fn simulated_events(days: u32, orders_per_day: f64) -> Vec<Event> {
    let scenario = Scenario { days, orders_per_day, ..Scenario::default() };
    let mut events: Vec<Event> = Simulator::new(scenario).expect("valid scenario").events().collect();
    events.sort_by_key(|e| e.occurred_at.micros);
    events
}

/// Applies `events` as the processor does: a file's worth (2,000 events) at a time, then
/// fires what is due; every 25 files (a checkpoint) takes the changed orders (for
/// `order_status`).
fn process(state: &mut StreamState, events: Vec<Event>) {
    let mut events = events.into_iter();
    for file in 1.. {
        let mut applied = 0;
        for event in events.by_ref().take(2000) {
            state.apply(event);
            applied += 1;
        }
        black_box(state.fire_due_timers());
        if file % 25 == 0 || applied == 0 {
            black_box(state.take_changes());
        }
        if applied == 0 {
            break;
        }
    }
}

fn state_machine(c: &mut Criterion) {
    let mut group = c.benchmark_group("state_machine");
    group.sample_size(10);
    // A processor starting from nothing: its maps grow and its memory is fresh.
    let week = simulated_events(7, 4000.0);
    group.throughput(Throughput::Elements(week.len() as u64));
    group.bench_function("apply_and_fire", |b| {
        b.iter_batched(
            || (StreamState::new(StreamSettings::default()), week.clone()),
            |(mut state, events)| {
                process(&mut state, events);
                state
            },
            BatchSize::LargeInput,
        )
    });
    // A processor that has run for a week: the second week of a fortnight, applied to
    // the state the first week left (built outside the timing), as a long-running
    // processor sees its input.
    let fortnight = simulated_events(14, 4000.0);
    let second_week_starts = fortnight.first().map_or(0, |e| e.occurred_at.micros) + 7 * orderpulse::model::Timestamp::MICROS_PER_DAY;
    let split = fortnight.partition_point(|e| e.occurred_at.micros < second_week_starts);
    let (first_week, second_week) = (fortnight[..split].to_vec(), fortnight[split..].to_vec());
    group.throughput(Throughput::Elements(second_week.len() as u64));
    group.bench_function("apply_and_fire_after_a_week", |b| {
        b.iter_batched(
            || {
                let mut state = StreamState::new(StreamSettings::default());
                process(&mut state, first_week.clone());
                (state, second_week.clone())
            },
            |(mut state, events)| {
                process(&mut state, events);
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn carrier_adapters(c: &mut Criterion) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/carriers");
    let mut payloads: Vec<(String, Vec<u8>)> = Vec::new();
    for carrier in orderpulse::carriers::BUILT_IN {
        let dir = std::path::Path::new(root).join(carrier);
        for entry in std::fs::read_dir(&dir).expect("fixtures") {
            let path = entry.expect("fixture").path();
            let name = path.to_string_lossy().into_owned();
            if (name.ends_with(".json") || name.ends_with(".xml")) && !name.contains(".expected.") {
                payloads.push((carrier.to_owned(), std::fs::read(&path).expect("fixture")));
            }
        }
    }
    let generic = BTreeMap::new();
    let adapters: Vec<_> = payloads.iter().map(|(carrier, _)| orderpulse::carriers::adapter(carrier, &generic).expect("built in")).collect();
    let scans: usize = payloads.iter().zip(&adapters).map(|((_, p), a)| a.scans(p).expect("fixture maps").len()).sum();
    let mut group = c.benchmark_group("carrier_adapters");
    group.throughput(Throughput::Elements(payloads.len() as u64));
    group.bench_function(format!("fixtures_{}_payloads_{}_scans", payloads.len(), scans), |b| {
        b.iter(|| {
            for ((_, payload), adapter) in payloads.iter().zip(&adapters) {
                black_box(adapter.scans(payload).ok());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, state_machine, carrier_adapters);
criterion_main!(benches);
