//! Criterion benches for the stream processor's pure core and the carrier adapters:
//! events applied to the order state machine per second (one core), and carrier payloads
//! turned into canonical scans per second.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use orderpulse::model::Event;
use orderpulse::source::simulator::{Scenario, Simulator};
use orderpulse::stream::{StreamSettings, StreamState};

/// The allocator the `orderpulse` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Simulated events (orders and scans; tickets are ignored by the state) in event-time order.
fn simulated_events(days: u32, orders_per_day: f64) -> Vec<Event> {
    let scenario = Scenario { days, orders_per_day, ..Scenario::default() };
    let mut events: Vec<Event> = Simulator::new(scenario).expect("valid scenario").events().collect();
    events.sort_by_key(|e| e.occurred_at.micros);
    events
}

fn state_machine(c: &mut Criterion) {
    let events = simulated_events(7, 4000.0);
    let mut group = c.benchmark_group("state_machine");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    // As the processor does it: apply a file's worth of events, then fire what is due;
    // at each checkpoint, take the changed orders (for `order_status`).
    group.bench_function("apply_and_fire", |b| {
        b.iter_batched(
            || (StreamState::new(StreamSettings::default()), events.clone()),
            |(mut state, events)| {
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
