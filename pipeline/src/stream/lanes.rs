//! Lane statistics: per carrier × service level × origin region × destination region,
//! running counts and the distribution of transit times, for the detectors and the ETA
//! model.
//!
//! Definitions match the `parcels` view in `queries/views/parcels.sql`: the origin is the
//! region of the pickup (first `in_transit`) scan (the smallest of several at that same
//! instant), the destination the customer's region,
//! transit time is pickup to first `delivered` scan, on time means delivered by the end of
//! the promised window. A parcel is counted once, when the watermark passes its delivery,
//! so late scans within the allowed lateness are already in.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use super::order::Key;

/// The lane a parcel travelled.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LaneKey {
    pub carrier: Key,
    pub service_level: Key,
    /// `country-region` of the pickup scan.
    pub origin: Key,
    /// `country-region` of the customer.
    pub destination: Key,
}

impl std::fmt::Display for LaneKey {
    /// The `lane` column of the `parcels` view: `dhl/express DE-NW > DE-BE`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {} > {}", self.carrier, self.service_level, self.origin, self.destination)
    }
}

/// Relative accuracy of the transit-time quantiles.
const SKETCH_ACCURACY: f64 = 0.01;
/// Enough bins for 1 % accuracy from seconds to years without collapsing any.
const SKETCH_BINS: u32 = 4096;
/// Smallest transit time told apart from zero, in hours (about 4 seconds).
const SKETCH_MIN_HOURS: f64 = 1e-3;

/// Running statistics of one lane.
#[derive(Clone, Serialize, Deserialize)]
pub struct LaneStats {
    pub delivered: u64,
    pub on_time: u64,
    /// Delivered parcels whose order had a promised window (the denominator of on time).
    pub with_promise: u64,
    /// Pickup to delivery, in hours.
    transit_hours: DDSketch,
}

impl Default for LaneStats {
    fn default() -> Self {
        LaneStats { delivered: 0, on_time: 0, with_promise: 0, transit_hours: DDSketch::new(Config::new(SKETCH_ACCURACY, SKETCH_BINS, SKETCH_MIN_HOURS)) }
    }
}

impl std::fmt::Debug for LaneStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneStats")
            .field("delivered", &self.delivered)
            .field("on_time", &self.on_time)
            .field("with_promise", &self.with_promise)
            .field("p50_hours", &self.transit_quantile(0.5))
            .field("p90_hours", &self.transit_quantile(0.9))
            .finish()
    }
}

/// Two lanes' statistics are equal when their counts and transit distributions are
/// (compared by quantiles, which are bin-exact).
impl PartialEq for LaneStats {
    fn eq(&self, other: &Self) -> bool {
        let quantiles = |s: &LaneStats| [0.0, 0.1, 0.5, 0.9, 0.99, 1.0].map(|q| s.transit_quantile(q));
        (self.delivered, self.on_time, self.with_promise) == (other.delivered, other.on_time, other.with_promise)
            && self.transit_hours.count() == other.transit_hours.count()
            && quantiles(self) == quantiles(other)
    }
}

impl LaneStats {
    /// Counts one delivered parcel.
    pub fn record(&mut self, transit_hours: Option<f64>, on_time: Option<bool>) {
        self.delivered += 1;
        if let Some(on_time) = on_time {
            self.with_promise += 1;
            self.on_time += u64::from(on_time);
        }
        if let Some(hours) = transit_hours.filter(|h| h.is_finite() && *h >= 0.0) {
            self.transit_hours.add(hours);
        }
    }

    /// Parcels with a known transit time.
    pub fn transit_count(&self) -> usize {
        self.transit_hours.count()
    }

    /// A transit-time quantile in hours (`q` in 0..=1); `None` without data.
    pub fn transit_quantile(&self, q: f64) -> Option<f64> {
        self.transit_hours.quantile(q).ok().flatten()
    }

    /// The on-time share of the parcels with a promise.
    pub fn on_time_rate(&self) -> Option<f64> {
        (self.with_promise > 0).then(|| self.on_time as f64 / self.with_promise as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_sketch_accuracy() {
        let mut lane = LaneStats::default();
        for hours in 1..=1000 {
            lane.record(Some(hours as f64 / 10.0), Some(hours <= 900));
        }
        let p50 = lane.transit_quantile(0.5).unwrap();
        assert!((p50 - 50.0).abs() / 50.0 <= 0.02, "p50 {p50}");
        let p90 = lane.transit_quantile(0.9).unwrap();
        assert!((p90 - 90.0).abs() / 90.0 <= 0.02, "p90 {p90}");
        assert_eq!(lane.on_time_rate(), Some(0.9));
        assert_eq!(lane.transit_count(), 1000);
    }

    #[test]
    fn parcels_without_a_pickup_or_promise_still_count_as_delivered() {
        let mut lane = LaneStats::default();
        lane.record(None, None);
        lane.record(Some(f64::NAN), Some(false));
        assert_eq!((lane.delivered, lane.with_promise, lane.on_time, lane.transit_count()), (2, 1, 0, 0));
        assert_eq!(lane.transit_quantile(0.5), None);
    }

    #[test]
    fn the_lane_key_reads_like_the_parcels_view() {
        let key = LaneKey { carrier: "dhl".into(), service_level: "express".into(), origin: "DE-NW".into(), destination: "DE-BE".into() };
        assert_eq!(key.to_string(), "dhl/express DE-NW > DE-BE");
    }
}
