//! One order's whole life, generated up front: checkout, payment, fulfilment, each
//! parcel's scans, delivery, completion or return, and the tickets it causes. Pure: the
//! same scenario, order number and seed give the same events.

use chrono::{Datelike, Timelike, Weekday};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, StandardNormal};
use serde_json::{json, Value};
use xxhash_rust::xxh3::xxh3_64;

use super::scenario::{region, Carrier, Incident, Merchant, Region, Scenario, Service};
use crate::model::{ParcelStatus, SubStatus, Timestamp};

pub const SECOND: i64 = Timestamp::MICROS_PER_SECOND;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = Timestamp::MICROS_PER_HOUR;
pub const DAY: i64 = Timestamp::MICROS_PER_DAY;

/// One generated event: when it happened and its NDJSON line.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub at: i64,
    pub line: String,
}

/// An order's events, and which incidents changed it (indices into `scenario.incidents`).
#[derive(Debug, Default)]
pub struct GeneratedOrder {
    pub events: Vec<SimEvent>,
    pub parcels: usize,
    pub incidents: Vec<usize>,
}

/// What is needed to generate one order.
pub struct OrderSpec<'a> {
    pub scenario: &'a Scenario,
    pub merchant: &'a Merchant,
    /// The merchant's running order number.
    pub number: u64,
    pub created: i64,
}

/// Builds one order's events in event-time order of creation (not sorted).
struct Builder<'a> {
    spec: &'a OrderSpec<'a>,
    order_id: String,
    rng: ChaCha8Rng,
    out: GeneratedOrder,
    /// The first parcel's carrier: the one the checkout promise was made against.
    first_carrier: String,
}

pub fn generate_order(spec: &OrderSpec<'_>, rng: ChaCha8Rng) -> GeneratedOrder {
    let order_id = format!("{}-{}", spec.merchant.order_prefix, 100_000 + spec.number);
    let mut b = Builder { spec, order_id, rng, out: GeneratedOrder::default(), first_carrier: String::new() };
    b.run();
    b.out.events.sort_by_key(|e| e.at);
    b.out
}

/// A parcel's planned and actual course.
struct Parcel {
    delivered: Option<i64>,
    /// Delivery as it would have been without incidents: what the promise was made against.
    planned_delivery: Option<i64>,
    exception: bool,
}

impl<'a> Builder<'a> {
    fn run(&mut self) {
        let spec = self.spec;
        let scenario = spec.scenario;
        let behaviour = &scenario.behaviour;
        let merchant = spec.merchant;
        let origin = region(&merchant.origin).expect("scenario validated: origin region exists");
        let destination = region(self.pick(&merchant.destinations)).expect("scenario validated: destination exists");
        let created = spec.created;

        // Payment, or not.
        if self.chance(behaviour.unpaid_rate) {
            let at = created + self.hours_between(2.0, 48.0);
            self.order_event(at, origin, "order.cancelled", json!({"reason": "payment_failed"}));
            self.push_created(created, origin, destination, None, None);
            return;
        }
        let paid = created + self.exp_minutes(8.0);
        self.order_event(paid, origin, "order.paid", json!({}));

        // Fulfilment: after a merchant-specific delay, not at weekends for some, and not
        // while the warehouse has stopped.
        let mut fulfilment = paid + self.lognormal_hours(merchant.fulfilment_median_hours, 0.6);
        if !merchant.ships_weekends {
            fulfilment = next_working_time(fulfilment, origin);
        }
        for (index, incident) in scenario.incidents.iter().enumerate() {
            if let Incident::MerchantStopsShipping { merchant: m, from, to } = incident {
                let (from, to) = (micros(from), micros(to));
                if *m == merchant.id && fulfilment >= from && fulfilment < to {
                    fulfilment = to + self.lognormal_hours(3.0, 0.5);
                    self.out.incidents.push(index);
                }
            }
        }
        if self.chance(behaviour.cancel_rate) {
            let at = paid + self.hours_between(0.5, 20.0).min(fulfilment - paid - MINUTE).max(MINUTE);
            self.order_event(at, origin, "order.cancelled", json!({"reason": "customer_request"}));
            self.push_created(created, origin, destination, None, None);
            return;
        }
        self.order_event(fulfilment, origin, "order.fulfillment_started", json!({"warehouse": format!("wh-{}", origin.code)}));

        // Parcels.
        let parcel_count = if self.chance(behaviour.multi_parcel_rate) {
            if self.chance(0.2) {
                3
            } else {
                2
            }
        } else {
            1
        };
        self.out.parcels = parcel_count;
        let mut parcels = Vec::new();
        for index in 0..parcel_count {
            let shipped = fulfilment + self.lognormal_hours(3.0, 0.5) + index as i64 * self.hours_between(0.0, 6.0);
            parcels.push(self.parcel(index, shipped, origin, destination));
        }

        // The promise made at checkout: the first parcel lands inside it with the
        // carrier's on-time probability (incidents then make things worse).
        let first = &parcels[0];
        let carrier_code = self.first_carrier.clone();
        let on_time_rate = scenario.carrier(&carrier_code).map_or(0.9, |c| c.on_time_rate);
        let planned = first.planned_delivery.unwrap_or(created + 5 * DAY);
        let promised_to =
            if self.chance(on_time_rate) { planned + self.hours_between(1.0, 48.0) } else { planned - self.hours_between(4.0, 72.0) }.max(created + 12 * HOUR);
        let promised = (promised_to - 2 * DAY, promised_to);
        let ship_by = created + (merchant.ship_sla_hours * HOUR as f64) as i64;
        self.push_created(created, origin, destination, Some(promised), Some(ship_by));

        // After delivery.
        let all_delivered = parcels.iter().map(|p| p.delivered).collect::<Option<Vec<_>>>();
        let delivered = all_delivered.as_ref().and_then(|d| d.iter().copied().max());
        if let Some(delivered) = delivered
            && self.chance(behaviour.completion_rate)
        {
            let at = delivered + self.hours_between(2.0, 72.0);
            self.order_event(at, destination, "order.completed", json!({}));
        }
        let returned = match delivered {
            Some(delivered) if self.chance(behaviour.return_rate) => {
                let at = delivered + self.hours_between(24.0, 240.0);
                let reason = *self.choose(&["wrong_size", "damaged", "not_as_described", "changed_mind"]);
                self.order_event(at, destination, "order.return_requested", json!({"reason": reason}));
                true
            }
            _ => false,
        };

        // Tickets: more likely when the order runs late or something broke.
        let late = delivered.is_none_or(|d| d > promised_to);
        let exception = parcels.iter().any(|p| p.exception);
        self.maybe_ticket(created, promised_to, late, exception, returned, destination);
    }

    fn push_created(&mut self, created: i64, origin: &Region, destination: &Region, promised: Option<(i64, i64)>, ship_by: Option<i64>) {
        let merchant = self.spec.merchant;
        let customer_number = self.rng.random_range(1..2_000_000u32);
        let mut notify = vec!["email"];
        if self.chance(0.4) {
            notify.push("sms");
        }
        if self.chance(0.3) {
            notify.push("push");
        }
        let items: u32 = 1 + (self.rng.random::<f64>().powi(3) * 6.0) as u32;
        let unit_price = self.lognormal(35.0, 0.7);
        let amount = format!("{:.2}", unit_price * f64::from(items));
        let channel = *self.weighted(&[("web", 0.55), ("app", 0.3), ("marketplace", 0.1), ("pos", 0.05)]);
        let mut fields = json!({
            "channel": channel,
            "customer": {
                "id": format!("cus_{customer_number:07}"),
                "country": destination.country,
                "region": destination.region,
                "postal_code": destination.postal_code,
                "email": format!("c{customer_number}@example.com"),
                "phone": format!("+1555{customer_number:07}"),
                "notify": notify,
            },
            "items": items,
            "total": {"amount": amount, "currency": merchant.currency},
        });
        if let Some(ship_by) = ship_by {
            fields["ship_by"] = json!(ts(ship_by, origin));
        }
        if let Some((from, to)) = promised {
            fields["promised_delivery"] = json!({"from": ts(from, destination), "to": ts(to, destination)});
        }
        self.order_event(created, origin, "order.created", fields);
    }

    /// One parcel: its shipment event, every scan, and when it was (or would have been) delivered.
    fn parcel(&mut self, index: usize, shipped: i64, origin: &'static Region, destination: &'static Region) -> Parcel {
        let scenario = self.spec.scenario;
        let behaviour = &scenario.behaviour;
        let carrier_code = self.pick(&self.spec.merchant.carriers).to_owned();
        let carrier = scenario.carrier(&carrier_code).expect("scenario validated: carrier exists");
        if index == 0 {
            self.first_carrier = carrier_code.clone();
        }
        let international = origin.country != destination.country;
        let service = self.pick_service(carrier, international);
        let tracking = tracking_number(&carrier.code, &self.order_id, index);
        self.order_event(shipped, origin, "order.shipped", json!({"carrier": carrier.code, "tracking_number": tracking, "service_level": service.name}));
        let scan = ScanContext { carrier: carrier.code.clone(), tracking: tracking.clone() };
        let label = shipped + self.minutes_between(5.0, 60.0);
        self.scan(&scan, label, origin, ParcelStatus::InfoReceived, None, "Shipment information received", None);
        let never_lost = Parcel { delivered: None, planned_delivery: None, exception: false };
        if self.chance(behaviour.label_not_scanned_rate) {
            return never_lost;
        }

        // Transit: log-normal around the lane's median, longer in peaks and incidents.
        let pickup = label + self.lognormal_hours(5.0, 0.5);
        let median = scenario.lane_median_hours(&carrier.code, &service.name, origin.code, destination.code).unwrap_or(service.base_hours);
        let peak = scenario.peaks.iter().find(|p| pickup >= micros(&p.from) && pickup < micros(&p.to)).map_or(1.0, |p| p.transit);
        let transit_hours = self.lognormal(median, service.sigma) * peak;
        let mut slowdown = 1.0;
        for (i, incident) in scenario.incidents.iter().enumerate() {
            if let Incident::CarrierSlowdown { carrier: c, region: r, from, to, factor } = incident
                && *c == carrier.code
                && r == destination.code
                && pickup >= micros(from)
                && pickup < micros(to)
            {
                slowdown *= factor;
                self.out.incidents.push(i);
            }
        }
        let planned_transit = (transit_hours * HOUR as f64) as i64;
        let transit = (planned_transit as f64 * slowdown) as i64;
        let eta = pickup + (median * HOUR as f64) as i64;
        let eta_window = (eta - 6 * HOUR, eta + 6 * HOUR);
        self.scan(&scan, pickup, origin, ParcelStatus::InTransit, None, "Picked up", Some(eta_window));

        // Hub scans along the way.
        let hops = (transit / (20 * HOUR)).clamp(0, 6);
        for hop in 1..=hops {
            let at = pickup + transit * hop / (hops + 1);
            let place = if hop * 2 <= hops { origin } else { destination };
            let text = if hop % 2 == 1 { "Arrived at facility" } else { "Departed facility" };
            self.scan(&scan, at, place, ParcelStatus::InTransit, None, text, None);
        }

        let mut attempt = pickup + transit;
        let mut exception = false;
        if self.chance(carrier.exception_rate) {
            exception = true;
            let at = pickup + (transit as f64 * self.rng.random_range(0.2..0.8)) as i64;
            let mut sub = *self.weighted(&[
                (SubStatus::Delayed, 0.35),
                (SubStatus::Weather, 0.15),
                (SubStatus::AddressIssue, 0.15),
                (SubStatus::CustomsHold, 0.1),
                (SubStatus::Damaged, 0.06),
                (SubStatus::Lost, 0.05),
                (SubStatus::Refused, 0.05),
                (SubStatus::HeldByCarrier, 0.06),
                (SubStatus::Other, 0.03),
            ]);
            if sub == SubStatus::CustomsHold && !international {
                sub = SubStatus::Delayed;
            }
            let delay = match sub {
                SubStatus::Delayed | SubStatus::Weather => self.hours_between(24.0, 72.0),
                SubStatus::AddressIssue | SubStatus::HeldByCarrier | SubStatus::Other => self.hours_between(12.0, 36.0),
                SubStatus::CustomsHold => self.hours_between(48.0, 120.0),
                SubStatus::Damaged | SubStatus::Lost | SubStatus::Refused => 0,
            };
            let place = if at - pickup < transit / 2 { origin } else { destination };
            match sub {
                SubStatus::Refused => {
                    self.scan(&scan, attempt, destination, ParcelStatus::Exception, Some(sub), "Delivery refused by recipient", None);
                    let back = attempt + self.hours_between(24.0, 96.0);
                    self.scan(&scan, back, origin, ParcelStatus::ReturnedToSender, None, "Returned to sender", None);
                    return Parcel { delivered: None, planned_delivery: None, exception };
                }
                SubStatus::Lost => {
                    self.scan(&scan, at, place, ParcelStatus::Exception, Some(sub), "Shipment cannot be located", None);
                    return Parcel { delivered: None, planned_delivery: None, exception };
                }
                _ => {
                    attempt += delay;
                    let eta = (eta_window.0 + delay, eta_window.1 + delay);
                    self.scan(&scan, at, place, ParcelStatus::Exception, Some(sub), exception_text(sub), Some(eta));
                }
            }
        }

        let out_for_delivery = attempt - self.hours_between(2.0, 5.0);
        self.scan(&scan, out_for_delivery, destination, ParcelStatus::OutForDelivery, None, "Out for delivery", None);
        let delivered = if self.chance(carrier.failed_attempt_rate) {
            self.scan(&scan, attempt, destination, ParcelStatus::FailedAttempt, None, "Delivery attempted, recipient not home", None);
            if self.chance(behaviour.pickup_after_failure_rate) {
                let ready = attempt + self.hours_between(2.0, 6.0);
                self.scan(&scan, ready, destination, ParcelStatus::AvailableForPickup, None, "Available at pickup point", None);
                ready + self.lognormal_hours(30.0, 0.5)
            } else {
                let again = attempt + DAY;
                self.scan(&scan, again - 3 * HOUR, destination, ParcelStatus::OutForDelivery, None, "Out for delivery", None);
                again
            }
        } else {
            attempt
        };
        self.scan(&scan, delivered, destination, ParcelStatus::Delivered, None, "Delivered", None);
        let incident_delay = transit - planned_transit;
        Parcel { delivered: Some(delivered), planned_delivery: Some(delivered - incident_delay), exception }
    }

    fn maybe_ticket(&mut self, created: i64, promised_to: i64, late: bool, exception: bool, returned: bool, destination: &Region) {
        let scenario = self.spec.scenario;
        let behaviour = &scenario.behaviour;
        let mut probability = behaviour.ticket_rate + if late { behaviour.ticket_rate_when_late } else { 0.0 };
        let opened = if late { promised_to + self.hours_between(2.0, 30.0) } else { created + self.hours_between(1.0, 144.0) };
        for (i, incident) in scenario.incidents.iter().enumerate() {
            if let Incident::TicketSurge { merchant, from, to, factor } = incident
                && *merchant == self.spec.merchant.id
                && opened >= micros(from)
                && opened < micros(to)
            {
                probability *= factor;
                self.out.incidents.push(i);
            }
        }
        if !self.chance(probability.min(1.0)) {
            return;
        }
        let category = if late {
            *self.weighted(&[("where_is_my_order", 0.6), ("delay", 0.4)])
        } else if exception {
            *self.weighted(&[("damaged", 0.5), ("where_is_my_order", 0.5)])
        } else if returned {
            "return"
        } else {
            *self.weighted(&[("where_is_my_order", 0.35), ("wrong_item", 0.15), ("address_change", 0.15), ("other", 0.35)])
        };
        let channel = *self.weighted(&[("chat", 0.35), ("email", 0.3), ("phone", 0.1), ("self_service", 0.1), ("bot", 0.15)]);
        let priority = if late && self.chance(0.4) { "high" } else { "normal" };
        let ticket_id = format!("tk_{:012x}", xxh3_64(format!("{}/{}", scenario.seed, self.order_id).as_bytes()) & 0xffff_ffff_ffff);
        let base = json!({"ticket_id": ticket_id, "merchant_id": self.spec.merchant.id});
        let mut opened_fields = base.clone();
        opened_fields["order_id"] = json!(self.order_id);
        opened_fields["category"] = json!(category);
        opened_fields["channel"] = json!(channel);
        opened_fields["priority"] = json!(priority);
        self.event(opened, destination, "ticket.opened", opened_fields);
        if self.chance(0.12) {
            let mut fields = base.clone();
            fields["department"] = json!(if category == "return" { "returns" } else { "logistics" });
            fields["priority"] = json!("high");
            let at = opened + self.hours_between(1.0, 24.0);
            self.event(at, destination, "ticket.escalated", fields);
        }
        if self.chance(0.95) {
            let resolution = match channel {
                "self_service" | "bot" => "self_service",
                _ if category == "where_is_my_order" && self.chance(0.4) => "auto_reply",
                _ => "agent",
            };
            let mut fields = base;
            fields["resolution"] = json!(resolution);
            if self.chance(0.6) {
                let weights: [(u8, f64); 5] =
                    if late { [(1, 0.3), (2, 0.3), (3, 0.2), (4, 0.1), (5, 0.1)] } else { [(1, 0.03), (2, 0.05), (3, 0.12), (4, 0.35), (5, 0.45)] };
                fields["csat"] = json!(*self.weighted(&weights));
            }
            let at = opened + self.lognormal_hours(8.0, 1.0);
            self.event(at, destination, "ticket.resolved", fields);
        }
    }

    fn order_event(&mut self, at: i64, place: &Region, event_type: &str, mut fields: Value) {
        fields["order_id"] = json!(self.order_id);
        fields["merchant_id"] = json!(self.spec.merchant.id);
        self.event(at, place, event_type, fields);
    }

    #[allow(clippy::too_many_arguments)]
    fn scan(&mut self, ctx: &ScanContext, at: i64, place: &Region, status: ParcelStatus, sub: Option<SubStatus>, text: &str, eta: Option<(i64, i64)>) {
        let mut fields = json!({
            "carrier": ctx.carrier,
            "tracking_number": ctx.tracking,
            "status": status.as_str(),
            "raw_status": raw_status(&ctx.carrier, status),
            "description": text,
            "location": {"city": place.city, "region": place.region, "country": place.country, "postal_code": place.postal_code, "lat": place.lat, "lon": place.lon},
        });
        if let Some(sub) = sub {
            fields["sub_status"] = json!(sub.as_str());
        }
        if let Some((from, to)) = eta {
            fields["estimated_delivery"] = json!({"from": ts(from, place), "to": ts(to, place)});
        }
        if self.chance(self.spec.scenario.behaviour.scan_has_order_id_rate) {
            fields["order_id"] = json!(self.order_id);
        }
        self.event(at, place, "carrier.scan", fields);
    }

    /// Adds the common fields and records the event.
    fn event(&mut self, at: i64, place: &Region, event_type: &str, mut fields: Value) {
        let at = at - at.rem_euclid(SECOND);
        let n = self.out.events.len();
        let id = xxh3_64(format!("{}/{}/{}", self.spec.scenario.seed, self.order_id, n).as_bytes());
        fields["event_id"] = json!(format!("ev_{id:016x}"));
        fields["type"] = json!(event_type);
        fields["occurred_at"] = json!(ts(at, place));
        self.out.events.push(SimEvent { at, line: fields.to_string() });
    }

    // Random helpers. Durations are in microseconds.

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn hours_between(&mut self, low: f64, high: f64) -> i64 {
        (self.rng.random_range(low..high) * HOUR as f64) as i64
    }

    fn minutes_between(&mut self, low: f64, high: f64) -> i64 {
        (self.rng.random_range(low..high) * MINUTE as f64) as i64
    }

    fn exp_minutes(&mut self, mean: f64) -> i64 {
        let minutes: f64 = Exp::new(1.0 / mean).map(|d| d.sample(&mut self.rng)).unwrap_or(mean);
        (minutes.min(mean * 50.0) * MINUTE as f64) as i64 + MINUTE
    }

    /// A log-normal draw with the given median and shape.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let z: f64 = StandardNormal.sample(&mut self.rng);
        median * (sigma * z).exp()
    }

    /// A log-normal duration with the given median in hours; returns microseconds.
    fn lognormal_hours(&mut self, median: f64, sigma: f64) -> i64 {
        (self.lognormal(median, sigma) * HOUR as f64) as i64
    }

    fn pick<'m>(&mut self, weights: &'m std::collections::BTreeMap<String, f64>) -> &'m str {
        let total: f64 = weights.values().sum();
        let mut x = self.rng.random_range(0.0..total.max(f64::MIN_POSITIVE));
        for (key, weight) in weights {
            if x < *weight {
                return key;
            }
            x -= weight;
        }
        weights.keys().next_back().map(String::as_str).unwrap_or_default()
    }

    fn weighted<'t, T>(&mut self, options: &'t [(T, f64)]) -> &'t T {
        let total: f64 = options.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.random_range(0.0..total);
        for (option, weight) in options {
            if x < *weight {
                return option;
            }
            x -= weight;
        }
        &options[options.len() - 1].0
    }

    fn choose<'t, T>(&mut self, options: &'t [T]) -> &'t T {
        &options[self.rng.random_range(0..options.len())]
    }

    fn pick_service<'c>(&mut self, carrier: &'c Carrier, international: bool) -> &'c Service {
        let candidates: Vec<&Service> = carrier.services.iter().filter(|s| s.international == international).collect();
        let candidates = if candidates.is_empty() { carrier.services.iter().collect() } else { candidates };
        let total: f64 = candidates.iter().map(|s| s.share.max(1e-9)).sum();
        let mut x = self.rng.random_range(0.0..total);
        for service in &candidates {
            if x < service.share.max(1e-9) {
                return service;
            }
            x -= service.share.max(1e-9);
        }
        candidates[candidates.len() - 1]
    }
}

struct ScanContext {
    carrier: String,
    tracking: String,
}

/// Microseconds since the epoch of a scenario instant.
pub fn micros(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// RFC 3339 in the place's local offset.
fn ts(at: i64, place: &Region) -> String {
    Timestamp { micros: at, offset_minutes: place.utc_offset_minutes }.to_rfc3339()
}

/// Moves a warehouse time that falls on a weekend to Monday morning (local time).
fn next_working_time(at: i64, place: &Region) -> i64 {
    let local = Timestamp { micros: at, offset_minutes: place.utc_offset_minutes }.to_datetime();
    let days_to_monday = match local.weekday() {
        Weekday::Sat => 2,
        Weekday::Sun => 1,
        _ => return at,
    };
    let seconds_into_day = i64::from(local.num_seconds_from_midnight());
    at + days_to_monday * DAY - seconds_into_day * SECOND + 9 * HOUR + (seconds_into_day % 3600) * SECOND
}

/// A tracking number in the carrier's usual shape.
fn tracking_number(carrier: &str, order_id: &str, parcel: usize) -> String {
    let h = xxh3_64(format!("{carrier}/{order_id}/{parcel}").as_bytes());
    let digits = |n: usize| format!("{:020}", h).chars().rev().take(n).collect::<String>();
    match carrier {
        "ups" => format!("1Z{:06X}{}", h & 0xff_ffff, digits(10)),
        "fedex" => digits(12),
        "usps" => format!("9400{}", digits(18)),
        "dhl" => format!("JD{}", digits(16)),
        "sf_express" => format!("SF{}", digits(12)),
        "cainiao" => format!("LP{}", digits(14)),
        _ => format!("{}{}", carrier.to_uppercase(), digits(12)),
    }
}

/// The carrier's own code for a canonical status, as a real feed would carry it.
fn raw_status(carrier: &str, status: ParcelStatus) -> &'static str {
    use ParcelStatus::*;
    match (carrier, status) {
        ("ups", InfoReceived) => "M",
        ("ups", InTransit) => "I",
        ("ups", OutForDelivery) => "O",
        ("ups", Delivered) => "D",
        ("ups", Exception | FailedAttempt) => "X",
        ("fedex", InfoReceived) => "OC",
        ("fedex", InTransit) => "IT",
        ("fedex", OutForDelivery) => "OD",
        ("fedex", Delivered) => "DL",
        ("fedex", FailedAttempt) => "DE",
        ("dhl", InfoReceived) => "pre-transit",
        ("dhl", Delivered) => "delivered",
        ("dhl", FailedAttempt | Exception) => "failure",
        ("dhl", _) => "transit",
        (_, InfoReceived) => "10",
        (_, InTransit) => "20",
        (_, OutForDelivery) => "30",
        (_, FailedAttempt) => "35",
        (_, AvailableForPickup) => "40",
        (_, Delivered) => "50",
        (_, Exception) => "60",
        (_, ReturnedToSender) => "70",
        (_, Unknown) => "99",
    }
}

fn exception_text(sub: SubStatus) -> &'static str {
    match sub {
        SubStatus::Delayed => "Shipment delayed",
        SubStatus::Weather => "Delayed by weather",
        SubStatus::AddressIssue => "Address incomplete, contacting recipient",
        SubStatus::Damaged => "Package damaged in transit",
        SubStatus::Lost => "Shipment cannot be located",
        SubStatus::CustomsHold => "Held in customs",
        SubStatus::Refused => "Delivery refused",
        SubStatus::HeldByCarrier => "Held at carrier facility",
        SubStatus::Other => "Exception",
    }
}
