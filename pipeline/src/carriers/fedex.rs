//! FedEx Track API (`/track/v1/trackingnumbers`):
//! `output.completeTrackResults[].trackResults[]`, each with `scanEvents[]` (ISO times
//! with offsets) and, while in transit, `estimatedDeliveryTimeWindow.window`. Codes:
//! the scan's `derivedStatusCode` (`IN`, `PU`, `IT`, `OD`, `DL`, `DE`, `DY`, `RS`, ...)
//! refined by `eventType` for exceptions (`DE/...`).

use serde::Deserialize;

use super::{canonical, present, rfc3339, tracking_number, unparsable, Adapter, AdapterError, CodeMap, Place, Scan, ScanParts};
use crate::model::{ParcelStatus as S, SubStatus as X};

pub struct FedEx;

const CODES: CodeMap = &[
    ("IN", S::InfoReceived, None),
    ("OC", S::InfoReceived, None),
    ("PU", S::InTransit, None),
    ("IT", S::InTransit, None),
    ("AR", S::InTransit, None),
    ("DP", S::InTransit, None),
    ("OD", S::OutForDelivery, None),
    ("HL", S::AvailableForPickup, None),
    ("DL", S::Delivered, None),
    ("RS", S::ReturnedToSender, None),
    ("RP", S::ReturnedToSender, None),
    ("DY", S::Exception, Some(X::Delayed)),
    ("DE", S::Exception, Some(X::Other)),
    ("DE/DEX03", S::Exception, Some(X::AddressIssue)),
    ("DE/DEX07", S::Exception, Some(X::Refused)),
    ("DE/DEX08", S::FailedAttempt, None),
    ("DE/DEX17", S::Exception, Some(X::CustomsHold)),
    ("DE/DEX11", S::Exception, Some(X::Damaged)),
    ("DE/DEX14", S::Exception, Some(X::Weather)),
    ("DE/DEX10", S::Exception, Some(X::Lost)),
    ("CA", S::Exception, Some(X::Other)),
];

#[derive(Deserialize)]
struct Payload {
    output: Output,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    #[serde(default)]
    complete_track_results: Vec<CompleteTrackResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteTrackResult {
    tracking_number: Option<String>,
    #[serde(default)]
    track_results: Vec<TrackResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackResult {
    #[serde(default)]
    scan_events: Vec<ScanEvent>,
    estimated_delivery_time_window: Option<EtaHolder>,
}

#[derive(Deserialize)]
struct EtaHolder {
    window: Option<Window>,
}

#[derive(Deserialize)]
struct Window {
    begins: Option<String>,
    ends: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanEvent {
    date: String,
    event_type: Option<String>,
    event_description: Option<String>,
    exception_code: Option<String>,
    derived_status_code: Option<String>,
    scan_location: Option<ScanLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanLocation {
    city: Option<String>,
    state_or_province_code: Option<String>,
    postal_code: Option<String>,
    country_code: Option<String>,
}

impl Adapter for FedEx {
    fn carrier(&self) -> &str {
        "fedex"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let payload: Payload = serde_json::from_slice(payload).map_err(|e| unparsable("fedex", e))?;
        let mut scans = Vec::new();
        for result in &payload.output.complete_track_results {
            let number = tracking_number("fedex", result.tracking_number.as_deref())?;
            for track in &result.track_results {
                let eta = match track.estimated_delivery_time_window.as_ref().and_then(|e| e.window.as_ref()) {
                    Some(Window { begins: Some(from), ends: Some(to) }) => Some((rfc3339("fedex", from)?, rfc3339("fedex", to)?)),
                    _ => None,
                };
                let newest = track.scan_events.iter().map(|e| e.date.as_str()).max();
                for event in &track.scan_events {
                    let derived = event.derived_status_code.as_deref().or(event.event_type.as_deref()).unwrap_or_default().to_owned();
                    let code = match event.exception_code.as_deref().filter(|c| !c.is_empty()) {
                        Some(exception) => format!("{derived}/DEX{exception}"),
                        None => derived.clone(),
                    };
                    let status = match canonical(CODES, &code) {
                        (S::Unknown, _) => canonical(CODES, &derived),
                        known => known,
                    };
                    let location = event.scan_location.as_ref();
                    let parts = ScanParts {
                        tracking_number: number.clone(),
                        code,
                        at: rfc3339("fedex", &event.date)?,
                        description: present(event.event_description.as_deref()),
                        place: Place {
                            city: present(location.and_then(|l| l.city.as_deref())),
                            region: present(location.and_then(|l| l.state_or_province_code.as_deref())),
                            country: present(location.and_then(|l| l.country_code.as_deref())),
                            postal_code: present(location.and_then(|l| l.postal_code.as_deref())),
                        },
                        // The current estimate belongs to the newest scan.
                        eta: eta.filter(|_| Some(event.date.as_str()) == newest),
                    };
                    scans.push(parts.into_scan("fedex", status));
                }
            }
        }
        Ok(scans)
    }
}
