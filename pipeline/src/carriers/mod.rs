//! Carrier adapters: each carrier's own tracking payload (its tracking API's answer or
//! its push webhook, JSON or XML) turned into the contract's canonical `carrier.scan`
//! events.
//!
//! An adapter is pure: bytes in, [`Scan`]s out, no I/O. Every carrier code is mapped to a
//! canonical status and sub-status through the adapter's [`CodeMap`]; the carrier's own
//! code is kept as `raw_status`; a code with no mapping becomes `unknown` (never dropped)
//! and is counted per carrier and code by whoever feeds the scans on ([`UnknownCodes`]).
//! A scan's `event_id` is derived from its content, so the same payload delivered twice
//! (webhook retries, a re-polled tracking API) deduplicates downstream.
//!
//! Built in: UPS, FedEx, USPS (XML), DHL (the unified tracking API and DHL Express),
//! SF Express and Cainiao; more carriers without code through [`generic`] (a mapping
//! table in the configuration).

mod cainiao;
mod dhl;
mod fedex;
pub mod generic;
mod sf_express;
mod ups;
mod usps;

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_128;

use crate::model::{ParcelStatus, SubStatus};

/// Why a payload gave no scans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("no adapter for carrier {0:?}; known: {1}")]
    UnknownCarrier(String, String),
    #[error("the payload is not a {carrier} tracking payload: {detail}")]
    Unparsable { carrier: String, detail: String },
    #[error("the {carrier} payload has no tracking number")]
    MissingTrackingNumber { carrier: String },
    #[error("the {carrier} payload has a time that cannot be read: {detail}")]
    BadTime { carrier: String, detail: String },
}

impl AdapterError {
    /// A stable machine-readable code (API answers, quarantine reasons).
    pub fn code(&self) -> &'static str {
        match self {
            AdapterError::UnknownCarrier(..) => "unknown_carrier",
            AdapterError::Unparsable { .. } => "unparsable_payload",
            AdapterError::MissingTrackingNumber { .. } => "missing_tracking_number",
            AdapterError::BadTime { .. } => "bad_timestamp",
        }
    }
}

/// Turns one carrier's payloads into canonical scans.
pub trait Adapter: Send + Sync {
    /// The carrier code the scans carry (`ups`, `dhl`, ...).
    fn carrier(&self) -> &str;
    /// Every scan in `payload`, in the payload's order.
    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError>;
}

/// The built-in adapters' carrier codes.
pub const BUILT_IN: [&str; 7] = ["ups", "fedex", "usps", "dhl", "dhl_express", "sf_express", "cainiao"];

/// The configured generic carriers (`[carriers.generic.<code>]`), by carrier code.
pub type GenericCarriers = BTreeMap<String, generic::Mapping>;

/// The adapter for `carrier`: a built-in one, or one of the configured generic mappings.
pub fn adapter<'a>(carrier: &str, generic: &'a GenericCarriers) -> Result<Box<dyn Adapter + 'a>, AdapterError> {
    Ok(match carrier {
        "ups" => Box::new(ups::Ups),
        "fedex" => Box::new(fedex::FedEx),
        "usps" => Box::new(usps::Usps),
        "dhl" => Box::new(dhl::DhlUnified),
        "dhl_express" => Box::new(dhl::DhlExpress),
        "sf_express" => Box::new(sf_express::SfExpress),
        "cainiao" => Box::new(cainiao::Cainiao),
        other => match generic.get(other) {
            Some(mapping) => Box::new(generic::Generic::new(other, mapping)),
            None => {
                let known: Vec<&str> = BUILT_IN.iter().copied().chain(generic.keys().map(String::as_str)).collect();
                return Err(AdapterError::UnknownCarrier(other.to_owned(), known.join(", ")));
            }
        },
    })
}

/// A canonical scan: serialises as the contract's `carrier.scan` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scan {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    /// RFC 3339 with the offset the carrier reported.
    pub occurred_at: String,
    pub carrier: String,
    pub tracking_number: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<&'static str>,
    pub raw_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Place::is_empty")]
    pub location: Place,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_delivery: Option<EtaWindow>,
}

/// Where a scan happened, as far as the carrier says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Place {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

impl Place {
    fn is_empty(&self) -> bool {
        self.city.is_none() && self.region.is_none() && self.country.is_none() && self.postal_code.is_none()
    }
}

/// The carrier's delivery estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EtaWindow {
    pub from: String,
    pub to: String,
}

/// What one of the carrier's codes means canonically.
pub type CodeMap = &'static [(&'static str, ParcelStatus, Option<SubStatus>)];

/// The canonical meaning of `code` in `map`; `unknown` without a mapping.
pub fn canonical(map: CodeMap, code: &str) -> (ParcelStatus, Option<SubStatus>) {
    map.iter().find(|(c, _, _)| c.eq_ignore_ascii_case(code)).map_or((ParcelStatus::Unknown, None), |(_, s, sub)| (*s, *sub))
}

/// The parts of a scan an adapter reads from its payload.
pub struct ScanParts {
    pub tracking_number: String,
    pub code: String,
    pub at: DateTime<FixedOffset>,
    pub description: Option<String>,
    pub place: Place,
    pub eta: Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)>,
}

impl ScanParts {
    /// The canonical scan, its code mapped through `status`.
    pub fn into_scan(self, carrier: &str, status: (ParcelStatus, Option<SubStatus>)) -> Scan {
        let occurred_at = self.at.to_rfc3339();
        let identity = format!("{carrier}\n{}\n{}\n{occurred_at}\n{}", self.tracking_number, self.code, self.description.as_deref().unwrap_or(""));
        Scan {
            event_id: format!("scan_{carrier}_{:032x}", xxh3_128(identity.as_bytes())),
            event_type: "carrier.scan",
            occurred_at,
            carrier: carrier.to_owned(),
            tracking_number: self.tracking_number,
            status: status.0.as_str(),
            sub_status: status.1.map(SubStatus::as_str),
            raw_status: self.code,
            description: self.description.filter(|d| !d.trim().is_empty()),
            location: self.place,
            estimated_delivery: self.eta.map(|(from, to)| EtaWindow { from: from.to_rfc3339(), to: to.to_rfc3339() }),
        }
    }
}

/// Counts scans whose carrier code has no mapping, per carrier and code.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownCodes(pub BTreeMap<(String, String), u64>);

impl UnknownCodes {
    pub fn count(&mut self, scans: &[Scan]) {
        for scan in scans.iter().filter(|s| s.status == ParcelStatus::Unknown.as_str()) {
            *self.0.entry((scan.carrier.clone(), scan.raw_status.clone())).or_default() += 1;
        }
    }
}

// Shared reading helpers for the adapters.

fn unparsable(carrier: &str, detail: impl std::fmt::Display) -> AdapterError {
    AdapterError::Unparsable { carrier: carrier.to_owned(), detail: detail.to_string() }
}

fn bad_time(carrier: &str, detail: impl std::fmt::Display) -> AdapterError {
    AdapterError::BadTime { carrier: carrier.to_owned(), detail: detail.to_string() }
}

/// `text` without surrounding blanks, or `None` if that leaves nothing.
fn present(text: Option<&str>) -> Option<String> {
    text.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The tracking number, refused when missing or blank.
fn tracking_number(carrier: &str, number: Option<&str>) -> Result<String, AdapterError> {
    present(number).ok_or_else(|| AdapterError::MissingTrackingNumber { carrier: carrier.to_owned() })
}

/// A local date and time in `format` at a fixed UTC offset such as `-05:00`.
fn local_time(carrier: &str, local: &str, format: &str, offset: &str) -> Result<DateTime<FixedOffset>, AdapterError> {
    let naive = NaiveDateTime::parse_from_str(local.trim(), format).map_err(|e| bad_time(carrier, format!("{local:?}: {e}")))?;
    let offset = parse_offset(offset).ok_or_else(|| bad_time(carrier, format!("offset {offset:?}")))?;
    naive.and_local_timezone(offset).single().ok_or_else(|| bad_time(carrier, format!("{local:?} at {offset}")))
}

/// `+08:00`, `-0500`, `GMT+8`, `+8`.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim().trim_start_matches("GMT").trim_start_matches("UTC");
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None if rest.len() == 4 => (rest[..2].parse().ok()?, rest[2..].parse().ok()?),
        None => (rest.parse().ok()?, 0),
    };
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// An RFC 3339 timestamp (with its offset).
fn rfc3339(carrier: &str, text: &str) -> Result<DateTime<FixedOffset>, AdapterError> {
    DateTime::parse_from_rfc3339(text.trim()).map_err(|e| bad_time(carrier, format!("{text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_in_the_forms_carriers_write_them() {
        let cases =
            [("+08:00", Some(8 * 3600)), ("-0500", Some(-5 * 3600)), ("GMT+8", Some(8 * 3600)), ("+05:30", Some(5 * 3600 + 1800)), ("8", None), ("", None)];
        for (text, seconds) in cases {
            assert_eq!(parse_offset(text).map(|o| o.local_minus_utc()), seconds, "{text:?}");
        }
    }

    /// Every payload in `data/carriers/<carrier>/` maps to the scans in the
    /// `.expected.ndjson` beside it (a folder with a `mapping.toml` is a generic carrier);
    /// every scan is a valid contract event; together they cover every canonical status.
    #[test]
    fn every_fixture_maps_to_its_expected_scans() {
        use std::collections::BTreeSet;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/carriers");
        let mut statuses = BTreeSet::new();
        let mut carriers = BTreeSet::new();
        let mut unknown = UnknownCodes::default();
        for folder in std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()) {
            let carrier = folder.file_name().unwrap().to_str().unwrap().to_owned();
            let mut generic = BTreeMap::new();
            if let Ok(text) = std::fs::read_to_string(folder.join("mapping.toml")) {
                let mapping: generic::Mapping = toml::from_str(&text).unwrap();
                mapping.check().unwrap();
                generic.insert(carrier.clone(), mapping);
            }
            let adapter = adapter(&carrier, &generic).unwrap();
            for payload in std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()) {
                let name = payload.file_name().unwrap().to_str().unwrap().to_owned();
                if name.ends_with(".expected.ndjson") || name == "mapping.toml" {
                    continue;
                }
                let scans = adapter.scans(&std::fs::read(&payload).unwrap()).unwrap_or_else(|e| panic!("{carrier}/{name}: {e}"));
                let expected =
                    std::fs::read_to_string(payload.with_extension("expected.ndjson")).unwrap_or_else(|_| panic!("{carrier}/{name}: no .expected.ndjson"));
                let got: Vec<String> = scans.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
                assert_eq!(got, expected.lines().collect::<Vec<_>>(), "{carrier}/{name}");
                for line in &got {
                    let event = crate::model::decode_line(line.as_bytes(), &crate::model::DecodeLimits { max_line_bytes: 1 << 20 })
                        .unwrap_or_else(|r| panic!("{carrier}/{name}: not a contract event: {r:?}\n{line}"));
                    assert_eq!(event.stream(), crate::model::Stream::Carrier);
                }
                statuses.extend(scans.iter().map(|s| s.status));
                unknown.count(&scans);
                carriers.insert(scans[0].carrier.clone());
            }
        }
        let all: BTreeSet<&str> = ParcelStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(statuses, all, "the fixtures do not cover every canonical status");
        for carrier in ["ups", "fedex", "usps", "dhl", "sf_express", "cainiao", "acme"] {
            assert!(carriers.contains(carrier), "no fixture for {carrier}");
        }
        assert!(unknown.0.contains_key(&("cainiao".to_owned(), "GWMS_WEIGH_NEW".to_owned())), "{unknown:?}");
    }

    #[test]
    fn bad_payloads_are_refused_with_the_reason() {
        let none = BTreeMap::new();
        let cases: [(&str, &[u8], &str); 6] = [
            ("ups", b"not json at all", "unparsable_payload"),
            ("fedex", br#"{"output": {"completeTrackResults": [{"trackResults": []}]}}"#, "missing_tracking_number"),
            ("dhl", br#"{"shipments": [{"id": "  ", "events": []}]}"#, "missing_tracking_number"),
            ("dhl", br#"{"shipments": [{"id": "X1", "events": [{"timestamp": "yesterday", "statusCode": "transit"}]}]}"#, "bad_timestamp"),
            ("usps", b"<TrackResponse><TrackInfo ID=\"9400\"><TrackSummary><EventTime>2:05 pm</EventTime><EventDate>November 25, 2026</EventDate><EventCode>01</EventCode></TrackSummary></TrackInfo></TrackResponse>", "bad_timestamp"),
            ("sf_express", br#"{"WaybillRoute": [{"acceptTime": "2026-11-20 10:15:00", "opCode": "50"}]}"#, "missing_tracking_number"),
        ];
        for (carrier, payload, code) in cases {
            let error = adapter(carrier, &none).unwrap().scans(payload).err().unwrap_or_else(|| panic!("{carrier}: {payload:?} accepted"));
            assert_eq!(error.code(), code, "{carrier}: {error}");
        }
    }

    #[test]
    fn unknown_carriers_and_codes_are_named_not_dropped() {
        let err = adapter("pigeon_post", &BTreeMap::new()).err().unwrap();
        assert_eq!(err.code(), "unknown_carrier");
        assert!(err.to_string().contains("pigeon_post") && err.to_string().contains("ups"));
        assert_eq!(canonical(&[("D", ParcelStatus::Delivered, None)], "d"), (ParcelStatus::Delivered, None));
        assert_eq!(canonical(&[], "ZZ"), (ParcelStatus::Unknown, None));
    }
}
