//! The simulator: a seeded, deterministic world of merchants, customers and carriers that
//! emits the three input streams as NDJSON lines in event-time order, with faults
//! (duplicates, reordering, late arrivals, malformed lines) and incidents on request, and
//! a ground-truth record of everything it injected.
//!
//! Orders are created day by day; each order's whole life is generated at creation
//! ([`generate`]) and its events wait in a heap until the stream's clock reaches them.
//! The heap holds the events of orders still in flight (about two weeks of orders), which
//! bounds memory for any length of simulation.

pub mod generate;
pub mod scenario;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use chrono::{Datelike, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use self::generate::{generate_order, micros, OrderSpec};
pub use self::scenario::{Incident, Scenario};
use crate::model::{decode_line, DecodeLimits, Event, RejectReason};

/// What the simulator injected: the answer key for tests and detectors.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GroundTruth {
    pub seed: u64,
    pub orders: u64,
    pub parcels: u64,
    /// Distinct valid events generated (each at least once in the output).
    pub events: u64,
    /// Lines written, valid or not, duplicates included.
    pub lines: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub late: u64,
    /// Malformed lines by the reason ingest must give for them.
    pub malformed: BTreeMap<RejectReason, u64>,
    pub incidents: Vec<IncidentTruth>,
}

/// One injected incident and how many orders it touched.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentTruth {
    #[serde(flatten)]
    pub incident: Incident,
    pub affected_orders: u64,
}

/// An event waiting for the stream's clock, ordered by event time then creation order.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Waiting {
    at: i64,
    seq: u64,
    line: String,
    /// Already held back once as a late arrival.
    delayed: bool,
}

/// An iterator over the NDJSON lines of a scenario.
pub struct Simulator {
    scenario: Scenario,
    /// Next day (from `scenario.start`) whose orders have not been created.
    next_day: u32,
    /// Next order number per merchant.
    numbers: Vec<u64>,
    /// Orders of the current day not yet generated: (created, merchant index).
    todays_orders: VecDeque<(i64, usize)>,
    /// Generated events waiting for their time.
    waiting: BinaryHeap<Reverse<Waiting>>,
    seq: u64,
    /// Lines held back by faults until `emitted` reaches the first field.
    held: BinaryHeap<Reverse<(u64, u64, String)>>,
    ready: VecDeque<String>,
    emitted: u64,
    /// Faults draw from their own stream, so turning them on does not change the world.
    fault_rng: ChaCha8Rng,
    volume_rng: ChaCha8Rng,
    affected: Vec<u64>,
    truth: GroundTruth,
}

impl Simulator {
    /// The stream's valid events, decoded (lines a fault made malformed are left out):
    /// what tests and benches feed to the stream state.
    pub fn events(self) -> impl Iterator<Item = Event> {
        let limits = DecodeLimits::default();
        self.filter_map(move |line| decode_line(line.as_bytes(), &limits).ok())
    }

    pub fn new(scenario: Scenario) -> Result<Self, String> {
        scenario.validate()?;
        let seed = scenario.seed;
        Ok(Simulator {
            numbers: vec![0; scenario.merchants.len()],
            affected: vec![0; scenario.incidents.len()],
            truth: GroundTruth { seed, ..GroundTruth::default() },
            fault_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xfa17_5eed),
            volume_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x0f0f_da75),
            scenario,
            next_day: 0,
            todays_orders: VecDeque::new(),
            waiting: BinaryHeap::new(),
            seq: 0,
            held: BinaryHeap::new(),
            ready: VecDeque::new(),
            emitted: 0,
        })
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Event time the stream has reached (the latest created order), for progress.
    pub fn days_done(&self) -> u32 {
        self.next_day
    }

    /// The ground truth so far; complete once the iterator is exhausted.
    pub fn truth(&self) -> GroundTruth {
        let mut truth = self.truth.clone();
        truth.incidents =
            self.scenario.incidents.iter().zip(&self.affected).map(|(incident, n)| IncidentTruth { incident: incident.clone(), affected_orders: *n }).collect();
        truth
    }

    fn plan_day(&mut self) {
        let day_start = micros(&self.scenario.start) + i64::from(self.next_day) * generate::DAY;
        let date = chrono::DateTime::from_timestamp_micros(day_start).unwrap_or_default();
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let peak = self.scenario.peaks.iter().find(|p| day_start >= micros(&p.from) && day_start < micros(&p.to)).map_or(1.0, |p| p.volume);
        let mut orders = Vec::new();
        for (index, merchant) in self.scenario.merchants.iter().enumerate() {
            let mean = self.scenario.orders_per_day * merchant.share * peak * if weekend { self.scenario.weekend_volume } else { 1.0 };
            let count = Poisson::new(mean.max(1e-9)).map(|p| p.sample(&mut self.volume_rng) as u64).unwrap_or(0);
            let offset_seconds = scenario::region(&merchant.origin).map_or(0, |r| i64::from(r.utc_offset_minutes) * 60);
            for _ in 0..count {
                let local_seconds = diurnal_second(&mut self.volume_rng);
                let utc_seconds = (local_seconds - offset_seconds).rem_euclid(86_400);
                orders.push((day_start + utc_seconds * 1_000_000, index));
            }
        }
        orders.sort_unstable();
        self.todays_orders = orders.into();
        self.next_day += 1;
    }

    fn create_order(&mut self, created: i64, merchant_index: usize) {
        let merchant = &self.scenario.merchants[merchant_index];
        let number = self.numbers[merchant_index];
        self.numbers[merchant_index] += 1;
        let rng = ChaCha8Rng::seed_from_u64(xxh3_64(format!("{}/{}/{number}", self.scenario.seed, merchant.id).as_bytes()));
        let order = generate_order(&OrderSpec { scenario: &self.scenario, merchant, number, created }, rng);
        self.truth.orders += 1;
        self.truth.parcels += order.parcels as u64;
        self.truth.events += order.events.len() as u64;
        for index in order.incidents.iter().collect::<BTreeSet<_>>() {
            self.affected[*index] += 1;
        }
        for event in order.events {
            self.seq += 1;
            self.waiting.push(Reverse(Waiting { at: event.at, seq: self.seq, line: event.line, delayed: false }));
        }
    }

    /// Sends one due event through the fault injectors into `ready` (or a holding pen).
    fn release(&mut self, item: Waiting) {
        let faults = self.scenario.faults.clone();
        if !item.delayed && self.fault_rng.random_bool(faults.late_rate) {
            self.truth.late += 1;
            let at = item.at + (faults.late_hours * generate::HOUR as f64) as i64;
            self.waiting.push(Reverse(Waiting { at, delayed: true, ..item }));
            return;
        }
        if self.fault_rng.random_bool(faults.duplicate_rate) {
            self.truth.duplicates += 1;
            let after = self.emitted + self.fault_rng.random_range(1..200);
            self.seq += 1;
            self.held.push(Reverse((after, self.seq, item.line.clone())));
        }
        if self.fault_rng.random_bool(faults.malformed_rate) {
            let (reason, line) = malform(&item.line, &mut self.fault_rng);
            *self.truth.malformed.entry(reason).or_default() += 1;
            self.ready.push_back(line);
        }
        if self.fault_rng.random_bool(faults.out_of_order_rate) {
            self.truth.out_of_order += 1;
            let after = self.emitted + self.fault_rng.random_range(1..20);
            self.seq += 1;
            self.held.push(Reverse((after, self.seq, item.line)));
        } else {
            self.ready.push_back(item.line);
        }
    }
}

impl Iterator for Simulator {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                self.emitted += 1;
                self.truth.lines += 1;
                while self.held.peek().is_some_and(|Reverse((after, _, _))| *after <= self.emitted) {
                    if let Some(Reverse((_, _, held))) = self.held.pop() {
                        self.ready.push_back(held);
                    }
                }
                return Some(line);
            }
            if let Some(&(created, merchant)) = self.todays_orders.front() {
                let due = self.waiting.peek().is_some_and(|Reverse(w)| w.at <= created);
                if due {
                    let Reverse(item) = self.waiting.pop()?;
                    self.release(item);
                } else {
                    self.todays_orders.pop_front();
                    self.create_order(created, merchant);
                }
            } else if self.next_day < self.scenario.days {
                self.plan_day();
            } else if let Some(Reverse(item)) = self.waiting.pop() {
                self.release(item);
            } else if let Some(Reverse((_, _, held))) = self.held.pop() {
                self.ready.push_back(held);
            } else {
                return None;
            }
        }
    }
}

/// A second of the local day, shaped like online shopping: quiet at night, busy at
/// lunchtime and in the evening.
fn diurnal_second(rng: &mut ChaCha8Rng) -> i64 {
    const HOURLY: [f64; 24] = [0.4, 0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.1, 1.2, 1.3, 1.4, 1.3, 1.2, 1.1, 1.1, 1.2, 1.4, 1.7, 1.9, 1.8, 1.3, 0.8];
    let total: f64 = HOURLY.iter().sum();
    let mut x = rng.random_range(0.0..total);
    let mut hour = 23;
    for (h, weight) in HOURLY.iter().enumerate() {
        if x < *weight {
            hour = h;
            break;
        }
        x -= weight;
    }
    hour as i64 * 3600 + rng.random_range(0..3600)
}

/// Spoils a valid line in one of several ways, returning the reason ingest must give.
fn malform(line: &str, rng: &mut ChaCha8Rng) -> (RejectReason, String) {
    let mut value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let kind = rng.random_range(0..7);
    let reason = match kind {
        0 => {
            let half: String = line.chars().take(line.chars().count() / 2).collect();
            return (RejectReason::NotJson, half);
        }
        1 => return (RejectReason::NotAnObject, serde_json::json!([line]).to_string()),
        2 => {
            value.as_object_mut().map(|o| o.remove("event_id"));
            RejectReason::MissingField
        }
        3 => {
            let naive = value["occurred_at"].as_str().map(|s| s.chars().take(19).collect::<String>());
            value["occurred_at"] = serde_json::json!(naive);
            RejectReason::TimestampWithoutOffset
        }
        4 => {
            value["type"] = serde_json::json!("order.teleported");
            RejectReason::UnknownType
        }
        5 => {
            value["event_id"] = serde_json::json!("");
            RejectReason::EmptyIdentifier
        }
        _ => {
            value["event_id"] = serde_json::json!(12345);
            RejectReason::WrongType
        }
    };
    (reason, value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{decode_line, DecodeLimits, EventBody, OrderDetail, ParcelStatus};
    use std::collections::HashMap;

    fn small(seed: u64) -> Scenario {
        Scenario { seed, days: 3, orders_per_day: 300.0, ..Scenario::default() }
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_and_another_seed_does_not() {
        let a: Vec<String> = Simulator::new(small(7)).unwrap().collect();
        let b: Vec<String> = Simulator::new(small(7)).unwrap().collect();
        let c: Vec<String> = Simulator::new(small(8)).unwrap().collect();
        assert!(a.len() > 1000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_line_without_faults_is_valid_and_ids_are_unique() {
        let mut sim = Simulator::new(small(1)).unwrap();
        let lines: Vec<String> = sim.by_ref().collect();
        let limits = DecodeLimits::default();
        let mut ids = std::collections::HashSet::new();
        let mut statuses = BTreeSet::new();
        for line in &lines {
            let event = decode_line(line.as_bytes(), &limits).unwrap_or_else(|r| panic!("{r}: {line}"));
            assert!(ids.insert(event.event_id.clone()), "duplicate id {}", event.event_id);
            if let EventBody::Carrier(scan) = &event.body {
                statuses.insert(scan.status);
            }
        }
        let truth = sim.truth();
        assert_eq!(truth.events, lines.len() as u64);
        assert_eq!(truth.lines, lines.len() as u64);
        for status in [
            ParcelStatus::InfoReceived,
            ParcelStatus::InTransit,
            ParcelStatus::OutForDelivery,
            ParcelStatus::Delivered,
            ParcelStatus::FailedAttempt,
            ParcelStatus::Exception,
        ] {
            assert!(statuses.contains(&status), "no {status} scan in {statuses:?}");
        }
    }

    #[test]
    fn faults_are_injected_at_their_rates_and_accounted_for() {
        let scenario = Scenario {
            faults: scenario::Faults { duplicate_rate: 0.02, out_of_order_rate: 0.02, late_rate: 0.01, late_hours: 6.0, malformed_rate: 0.01 },
            ..small(3)
        };
        let mut sim = Simulator::new(scenario).unwrap();
        let lines: Vec<String> = sim.by_ref().collect();
        let truth = sim.truth();
        let limits = DecodeLimits::default();
        let mut rejected: BTreeMap<RejectReason, u64> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = 0;
        for line in &lines {
            match decode_line(line.as_bytes(), &limits) {
                Ok(event) => duplicates += u64::from(!seen.insert(event.event_id)),
                Err(rejection) => *rejected.entry(rejection.reason).or_default() += 1,
            }
        }
        assert_eq!(rejected, truth.malformed);
        assert_eq!(duplicates, truth.duplicates);
        assert_eq!(seen.len() as u64, truth.events);
        let events = truth.events as f64;
        for (name, count, rate) in [("duplicates", truth.duplicates, 0.02), ("late", truth.late, 0.01)] {
            let observed = count as f64 / events;
            assert!((observed - rate).abs() < rate * 0.3, "{name}: {observed} vs {rate}");
        }
    }

    /// The per-lane median of pickup → delivery for parcels with a clean run (no failed
    /// attempt, no exception) matches the scenario's lane median within 10 %.
    #[test]
    fn lane_transit_medians_match_the_scenario() {
        let scenario = Scenario { days: 10, orders_per_day: 2500.0, ..Scenario::default() };
        let expected = scenario.clone();
        let limits = DecodeLimits::default();
        let mut shipments: HashMap<String, (String, String, String)> = HashMap::new(); // tracking → carrier, service, order
        let mut origin_of: HashMap<String, String> = HashMap::new(); // order → origin region
        let mut destination_of: HashMap<String, String> = HashMap::new(); // order → destination region
        let mut pickups: HashMap<String, i64> = HashMap::new();
        let mut troubled: BTreeSet<String> = BTreeSet::new();
        let mut delivered: HashMap<String, i64> = HashMap::new();
        for line in Simulator::new(scenario).unwrap() {
            let event = decode_line(line.as_bytes(), &limits).unwrap();
            match &event.body {
                EventBody::Order(order) => match &order.detail {
                    OrderDetail::Created(c) => {
                        let dest = format!("{}-{}", c.customer.country.clone().unwrap_or_default(), c.customer.region.clone().unwrap_or_default());
                        destination_of.insert(order.order_id.clone(), dest);
                    }
                    OrderDetail::FulfillmentStarted { warehouse } => {
                        let origin = warehouse.clone().unwrap_or_default().trim_start_matches("wh-").to_owned();
                        origin_of.insert(order.order_id.clone(), origin);
                    }
                    OrderDetail::Shipped(s) => {
                        shipments.insert(s.tracking_number.clone(), (s.carrier.clone(), s.service_level.clone().unwrap_or_default(), order.order_id.clone()));
                    }
                    _ => {}
                },
                EventBody::Carrier(scan) => match scan.status {
                    ParcelStatus::InTransit => {
                        pickups.entry(scan.tracking_number.clone()).or_insert(event.occurred_at.micros);
                    }
                    ParcelStatus::Delivered => {
                        delivered.insert(scan.tracking_number.clone(), event.occurred_at.micros);
                    }
                    ParcelStatus::FailedAttempt | ParcelStatus::Exception => {
                        troubled.insert(scan.tracking_number.clone());
                    }
                    _ => {}
                },
                EventBody::Ticket(_) => {}
            }
        }
        let mut by_lane: BTreeMap<(String, String, String, String), Vec<f64>> = BTreeMap::new();
        for (tracking, at) in &delivered {
            if troubled.contains(tracking) {
                continue;
            }
            let (carrier, service, order) = &shipments[tracking];
            let hours = (at - pickups[tracking]) as f64 / generate::HOUR as f64;
            let lane = (carrier.clone(), service.clone(), origin_of[order].clone(), destination_of[order].clone());
            by_lane.entry(lane).or_default().push(hours);
        }
        let mut checked = 0;
        for ((carrier, service, origin, destination), mut hours) in by_lane {
            if hours.len() < 300 {
                continue;
            }
            hours.sort_by(f64::total_cmp);
            let median = hours[hours.len() / 2];
            let configured = expected.lane_median_hours(&carrier, &service, &origin, &destination).unwrap();
            let error = (median - configured).abs() / configured;
            assert!(error < 0.10, "{carrier}/{service} {origin}→{destination}: median {median:.1} h vs {configured:.1} h over {} parcels", hours.len());
            checked += 1;
        }
        assert!(checked >= 8, "only {checked} lanes had enough parcels");
    }

    #[test]
    fn incidents_touch_orders_and_are_reported() {
        let from = chrono::DateTime::parse_from_rfc3339("2026-11-03T00:00:00Z").unwrap().to_utc();
        let to = chrono::DateTime::parse_from_rfc3339("2026-11-04T00:00:00Z").unwrap().to_utc();
        let scenario = Scenario {
            incidents: vec![
                Incident::CarrierSlowdown { carrier: "dhl".into(), region: "DE-BE".into(), from, to, factor: 2.5 },
                Incident::MerchantStopsShipping { merchant: "m_northwind".into(), from, to },
                Incident::TicketSurge { merchant: "m_lotus".into(), from, to, factor: 5.0 },
            ],
            ..small(5)
        };
        let mut sim = Simulator::new(scenario).unwrap();
        sim.by_ref().for_each(drop);
        let truth = sim.truth();
        assert_eq!(truth.incidents.len(), 3);
        for incident in &truth.incidents {
            assert!(incident.affected_orders > 0, "{incident:?}");
        }
    }
}
