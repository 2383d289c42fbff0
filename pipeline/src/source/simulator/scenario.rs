//! A simulation scenario: who sells, who ships, how fast, and what goes wrong. Data, not
//! code: scenarios are TOML files under `data/scenarios/`, and every field has a default,
//! so a file names only what it changes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A whole simulated world over a date range.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Same seed, same scenario → byte-identical output.
    pub seed: u64,
    /// First instant orders are created.
    pub start: DateTime<Utc>,
    /// How many days of orders to create.
    pub days: u32,
    /// Orders per day over all merchants on an ordinary weekday, before peaks.
    pub orders_per_day: f64,
    /// Order volume multiplier on Saturdays and Sundays.
    pub weekend_volume: f64,
    /// Peak periods (Black Friday, ...): volume and transit multipliers in a window.
    pub peaks: Vec<Peak>,
    pub merchants: Vec<Merchant>,
    pub carriers: Vec<Carrier>,
    /// Explicit median transit hours for particular lanes, overriding the computed ones.
    pub lanes: Vec<LaneOverride>,
    pub behaviour: Behaviour,
    pub faults: Faults,
    pub incidents: Vec<Incident>,
}

/// A period of heavy trading.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peak {
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Orders-per-day multiplier while it lasts.
    pub volume: f64,
    /// Transit-time multiplier for parcels picked up while it lasts.
    pub transit: f64,
}

/// An online store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Merchant {
    pub id: String,
    /// Prefix of its order numbers (`NW-100042`).
    pub order_prefix: String,
    /// Share of all orders.
    pub share: f64,
    /// Region code of its warehouse (`US-CA`).
    pub origin: String,
    /// Destination region codes and their weights.
    pub destinations: BTreeMap<String, f64>,
    /// Carrier codes and their weights.
    pub carriers: BTreeMap<String, f64>,
    pub currency: String,
    /// Hours from creation to the merchant's `ship_by`.
    pub ship_sla_hours: f64,
    /// Median hours from payment to the start of fulfilment.
    pub fulfilment_median_hours: f64,
    /// Whether the warehouse works on Saturdays and Sundays.
    pub ships_weekends: bool,
}

/// A carrier and its services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Carrier {
    pub code: String,
    pub services: Vec<Service>,
    /// Share of parcels delivered within the promised window (absent incidents).
    pub on_time_rate: f64,
    /// Share of parcels whose first delivery attempt fails.
    pub failed_attempt_rate: f64,
    /// Share of parcels that hit an exception in transit.
    pub exception_rate: f64,
}

/// A carrier's service level.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// Median pickup-to-first-attempt hours within one country, before distance.
    pub base_hours: f64,
    /// Log-normal shape: larger means a longer tail.
    pub sigma: f64,
    /// Share of this carrier's domestic parcels.
    pub share: f64,
    /// Used for parcels that cross a border.
    #[serde(default)]
    pub international: bool,
}

/// A lane whose median transit time is set explicitly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneOverride {
    pub carrier: String,
    pub service: String,
    pub origin: String,
    pub destination: String,
    pub median_hours: f64,
}

/// Rates of the ordinary things that happen to orders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    pub cancel_rate: f64,
    /// Share of orders that never get paid (left unpaid, then cancelled).
    pub unpaid_rate: f64,
    pub multi_parcel_rate: f64,
    pub return_rate: f64,
    pub completion_rate: f64,
    /// Share of parcels never scanned after the label is printed.
    pub label_not_scanned_rate: f64,
    /// Share of failed attempts after which the parcel goes to a pickup point.
    pub pickup_after_failure_rate: f64,
    /// Base chance an order gets a ticket, and the extra chance when it runs late.
    pub ticket_rate: f64,
    pub ticket_rate_when_late: f64,
    /// Share of carrier scans that carry the `order_id` (the rest are joined by tracking number).
    pub scan_has_order_id_rate: f64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            cancel_rate: 0.02,
            unpaid_rate: 0.01,
            multi_parcel_rate: 0.08,
            return_rate: 0.04,
            completion_rate: 0.5,
            label_not_scanned_rate: 0.005,
            pickup_after_failure_rate: 0.3,
            ticket_rate: 0.04,
            ticket_rate_when_late: 0.3,
            scan_has_order_id_rate: 0.7,
        }
    }
}

/// Imperfections of delivery that a real pipeline must survive. All zero by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Share of events delivered a second time, a little later.
    pub duplicate_rate: f64,
    /// Share of events delivered a few lines after their successors.
    pub out_of_order_rate: f64,
    /// Share of events delivered `late_hours` of event time after they happened.
    pub late_rate: f64,
    pub late_hours: f64,
    /// Malformed lines added per valid event (each a different kind of bad).
    pub malformed_rate: f64,
}

/// Something that goes wrong for a while, for detectors to find.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Incident {
    /// A carrier slows down for parcels to a region.
    CarrierSlowdown { carrier: String, region: String, from: DateTime<Utc>, to: DateTime<Utc>, factor: f64 },
    /// A merchant's warehouse stops shipping; orders wait until it resumes.
    MerchantStopsShipping { merchant: String, from: DateTime<Utc>, to: DateTime<Utc> },
    /// A merchant's customers open many more tickets than usual.
    TicketSurge { merchant: String, from: DateTime<Utc>, to: DateTime<Utc>, factor: f64 },
}

impl Incident {
    pub fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            Incident::CarrierSlowdown { from, to, .. } | Incident::MerchantStopsShipping { from, to, .. } | Incident::TicketSurge { from, to, .. } => {
                (*from, *to)
            }
        }
    }
}

/// A place parcels go to or come from.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub code: &'static str,
    pub country: &'static str,
    pub region: &'static str,
    pub city: &'static str,
    pub postal_code: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Local UTC offset in minutes (standard time), for the timestamps' offsets.
    pub utc_offset_minutes: i16,
}

/// The regions the simulator knows. Scenario region codes must be among these.
pub const REGIONS: &[Region] = &[
    Region { code: "US-CA", country: "US", region: "CA", city: "Los Angeles", postal_code: "90001", lat: 34.05, lon: -118.24, utc_offset_minutes: -480 },
    Region { code: "US-WA", country: "US", region: "WA", city: "Seattle", postal_code: "98101", lat: 47.61, lon: -122.33, utc_offset_minutes: -480 },
    Region { code: "US-TX", country: "US", region: "TX", city: "Dallas", postal_code: "75201", lat: 32.78, lon: -96.80, utc_offset_minutes: -360 },
    Region { code: "US-IL", country: "US", region: "IL", city: "Chicago", postal_code: "60601", lat: 41.88, lon: -87.63, utc_offset_minutes: -360 },
    Region { code: "US-NY", country: "US", region: "NY", city: "New York", postal_code: "10001", lat: 40.71, lon: -74.01, utc_offset_minutes: -300 },
    Region { code: "US-FL", country: "US", region: "FL", city: "Miami", postal_code: "33101", lat: 25.76, lon: -80.19, utc_offset_minutes: -300 },
    Region { code: "DE-NW", country: "DE", region: "NW", city: "Köln", postal_code: "50667", lat: 50.94, lon: 6.96, utc_offset_minutes: 60 },
    Region { code: "DE-BE", country: "DE", region: "BE", city: "Berlin", postal_code: "10115", lat: 52.52, lon: 13.40, utc_offset_minutes: 60 },
    Region { code: "DE-BY", country: "DE", region: "BY", city: "München", postal_code: "80331", lat: 48.14, lon: 11.58, utc_offset_minutes: 60 },
    Region { code: "DE-SN", country: "DE", region: "SN", city: "Leipzig", postal_code: "04109", lat: 51.34, lon: 12.37, utc_offset_minutes: 60 },
    Region { code: "FR-IDF", country: "FR", region: "IDF", city: "Paris", postal_code: "75001", lat: 48.86, lon: 2.35, utc_offset_minutes: 60 },
    Region { code: "GB-ENG", country: "GB", region: "ENG", city: "London", postal_code: "EC1A 1BB", lat: 51.51, lon: -0.13, utc_offset_minutes: 0 },
    Region { code: "CN-GD", country: "CN", region: "GD", city: "Shenzhen", postal_code: "518000", lat: 22.54, lon: 114.06, utc_offset_minutes: 480 },
    Region { code: "CN-ZJ", country: "CN", region: "ZJ", city: "Hangzhou", postal_code: "310000", lat: 30.27, lon: 120.16, utc_offset_minutes: 480 },
    Region { code: "CN-SH", country: "CN", region: "SH", city: "Shanghai", postal_code: "200000", lat: 31.23, lon: 121.47, utc_offset_minutes: 480 },
    Region { code: "CN-BJ", country: "CN", region: "BJ", city: "Beijing", postal_code: "100000", lat: 39.90, lon: 116.41, utc_offset_minutes: 480 },
];

pub fn region(code: &str) -> Option<&'static Region> {
    REGIONS.iter().find(|r| r.code == code)
}

/// Transit distance multiplier between two regions.
pub fn distance_factor(origin: &Region, destination: &Region) -> f64 {
    if origin.code == destination.code {
        0.5
    } else if origin.country == destination.country {
        1.0
    } else {
        2.0
    }
}

impl Scenario {
    /// The median pickup-to-first-attempt hours of a lane, before incidents and peaks.
    pub fn lane_median_hours(&self, carrier: &str, service: &str, origin: &str, destination: &str) -> Option<f64> {
        if let Some(lane) = self.lanes.iter().find(|l| l.carrier == carrier && l.service == service && l.origin == origin && l.destination == destination) {
            return Some(lane.median_hours);
        }
        let service = self.carrier(carrier)?.services.iter().find(|s| s.name == service)?;
        Some(service.base_hours * distance_factor(region(origin)?, region(destination)?))
    }

    pub fn carrier(&self, code: &str) -> Option<&Carrier> {
        self.carriers.iter().find(|c| c.code == code)
    }

    /// Checks that every reference resolves and every rate is a probability.
    pub fn validate(&self) -> Result<(), String> {
        let probability = |name: &str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(format!("{name} = {value} is not between 0 and 1"))
            }
        };
        if self.days == 0 || self.orders_per_day.is_nan() || self.orders_per_day <= 0.0 {
            return Err("days and orders_per_day must be positive".into());
        }
        if self.merchants.is_empty() {
            return Err("a scenario needs at least one merchant".into());
        }
        for m in &self.merchants {
            region(&m.origin).ok_or_else(|| format!("merchant {}: unknown origin region {:?}", m.id, m.origin))?;
            if m.destinations.is_empty() || m.carriers.is_empty() {
                return Err(format!("merchant {}: needs destinations and carriers", m.id));
            }
            for d in m.destinations.keys() {
                region(d).ok_or_else(|| format!("merchant {}: unknown destination region {d:?}", m.id))?;
            }
            for c in m.carriers.keys() {
                self.carrier(c).ok_or_else(|| format!("merchant {}: unknown carrier {c:?}", m.id))?;
            }
        }
        for c in &self.carriers {
            probability(&format!("carriers.{}.on_time_rate", c.code), c.on_time_rate)?;
            probability(&format!("carriers.{}.failed_attempt_rate", c.code), c.failed_attempt_rate)?;
            probability(&format!("carriers.{}.exception_rate", c.code), c.exception_rate)?;
            if c.services.is_empty() {
                return Err(format!("carrier {}: needs at least one service", c.code));
            }
        }
        let b = &self.behaviour;
        for (name, value) in [
            ("behaviour.cancel_rate", b.cancel_rate),
            ("behaviour.unpaid_rate", b.unpaid_rate),
            ("behaviour.multi_parcel_rate", b.multi_parcel_rate),
            ("behaviour.return_rate", b.return_rate),
            ("behaviour.completion_rate", b.completion_rate),
            ("behaviour.label_not_scanned_rate", b.label_not_scanned_rate),
            ("behaviour.ticket_rate", b.ticket_rate),
            ("faults.duplicate_rate", self.faults.duplicate_rate),
            ("faults.out_of_order_rate", self.faults.out_of_order_rate),
            ("faults.late_rate", self.faults.late_rate),
            ("faults.malformed_rate", self.faults.malformed_rate),
        ] {
            probability(name, value)?;
        }
        Ok(())
    }
}

fn weights(entries: &[(&str, f64)]) -> BTreeMap<String, f64> {
    entries.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn service(name: &str, base_hours: f64, sigma: f64, share: f64, international: bool) -> Service {
    Service { name: name.into(), base_hours, sigma, share, international }
}

fn carrier(code: &str, on_time_rate: f64, failed: f64, exception: f64, services: Vec<Service>) -> Carrier {
    Carrier { code: code.into(), services, on_time_rate, failed_attempt_rate: failed, exception_rate: exception }
}

impl Default for Scenario {
    /// Three merchants (US, Germany, China), six carriers, two weeks, a realistic level of
    /// trouble and no injected faults or incidents.
    fn default() -> Self {
        Scenario {
            seed: 42,
            start: DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z").map(|d| d.to_utc()).unwrap_or_default(),
            days: 14,
            orders_per_day: 3000.0,
            weekend_volume: 0.8,
            peaks: Vec::new(),
            merchants: vec![
                Merchant {
                    id: "m_northwind".into(),
                    order_prefix: "NW".into(),
                    share: 0.45,
                    origin: "US-CA".into(),
                    destinations: weights(&[("US-CA", 0.25), ("US-WA", 0.1), ("US-TX", 0.15), ("US-IL", 0.15), ("US-NY", 0.25), ("US-FL", 0.1)]),
                    carriers: weights(&[("ups", 0.45), ("fedex", 0.25), ("usps", 0.3)]),
                    currency: "USD".into(),
                    ship_sla_hours: 48.0,
                    fulfilment_median_hours: 10.0,
                    ships_weekends: false,
                },
                Merchant {
                    id: "m_rheinmode".into(),
                    order_prefix: "RM".into(),
                    share: 0.35,
                    origin: "DE-NW".into(),
                    destinations: weights(&[("DE-NW", 0.3), ("DE-BE", 0.25), ("DE-BY", 0.2), ("DE-SN", 0.1), ("FR-IDF", 0.1), ("GB-ENG", 0.05)]),
                    carriers: weights(&[("dhl", 0.8), ("ups", 0.2)]),
                    currency: "EUR".into(),
                    ship_sla_hours: 24.0,
                    fulfilment_median_hours: 6.0,
                    ships_weekends: false,
                },
                Merchant {
                    id: "m_lotus".into(),
                    order_prefix: "LT".into(),
                    share: 0.2,
                    origin: "CN-GD".into(),
                    destinations: weights(&[("CN-GD", 0.3), ("CN-ZJ", 0.25), ("CN-SH", 0.25), ("CN-BJ", 0.15), ("US-CA", 0.05)]),
                    carriers: weights(&[("sf_express", 0.6), ("cainiao", 0.4)]),
                    currency: "CNY".into(),
                    ship_sla_hours: 36.0,
                    fulfilment_median_hours: 4.0,
                    ships_weekends: true,
                },
            ],
            carriers: vec![
                carrier(
                    "ups",
                    0.92,
                    0.05,
                    0.03,
                    vec![service("ground", 60.0, 0.35, 0.7, false), service("2day", 40.0, 0.2, 0.3, false), service("worldwide_saver", 60.0, 0.3, 0.0, true)],
                ),
                carrier("fedex", 0.94, 0.04, 0.025, vec![service("ground", 56.0, 0.3, 0.6, false), service("express", 22.0, 0.2, 0.4, false)]),
                carrier("usps", 0.88, 0.06, 0.04, vec![service("priority", 50.0, 0.4, 0.5, false), service("ground_advantage", 80.0, 0.45, 0.5, false)]),
                carrier(
                    "dhl",
                    0.93,
                    0.05,
                    0.03,
                    vec![
                        service("paket", 30.0, 0.35, 0.8, false),
                        service("express", 20.0, 0.2, 0.2, false),
                        service("express_worldwide", 36.0, 0.25, 0.0, true),
                    ],
                ),
                carrier("sf_express", 0.95, 0.03, 0.02, vec![service("standard", 30.0, 0.3, 1.0, false), service("international", 120.0, 0.35, 0.0, true)]),
                carrier("cainiao", 0.85, 0.04, 0.05, vec![service("standard", 60.0, 0.5, 1.0, false), service("international", 200.0, 0.45, 0.0, true)]),
            ],
            lanes: Vec::new(),
            behaviour: Behaviour::default(),
            faults: Faults::default(),
            incidents: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_is_valid_and_lanes_resolve() {
        let s = Scenario::default();
        s.validate().unwrap();
        assert_eq!(s.lane_median_hours("ups", "ground", "US-CA", "US-CA"), Some(30.0));
        assert_eq!(s.lane_median_hours("ups", "ground", "US-CA", "US-NY"), Some(60.0));
        assert_eq!(s.lane_median_hours("ups", "teleport", "US-CA", "US-NY"), None);
    }

    #[test]
    fn every_scenario_file_in_the_repository_is_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/scenarios");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let scenario: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            scenario.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 2, "expected scenario files in {dir}");
    }
}
