//! USPS Web Tools tracking (`TrackV2`, `TrackFieldRequest` revision 1): XML
//! `TrackResponse/TrackInfo[@ID]` with `TrackSummary` (the newest event) and
//! `TrackDetail`s (the earlier ones, newest first). Times are local (`EventDate`
//! "November 20, 2026", `EventTime` "10:15 am") with `GMTOffset`; an event without one
//! is refused rather than guessed. Codes: `EventCode`.

use serde::Deserialize;

use super::{canonical, present, tracking_number, unparsable, Adapter, AdapterError, CodeMap, Place, Scan, ScanParts};
use crate::model::{ParcelStatus as S, SubStatus as X};

pub struct Usps;

const CODES: CodeMap = &[
    ("GX", S::InfoReceived, None),
    ("MA", S::InfoReceived, None),
    ("03", S::InTransit, None),
    ("80", S::InTransit, None),
    ("81", S::InTransit, None),
    ("82", S::InTransit, None),
    ("10", S::InTransit, None),
    ("07", S::InTransit, None),
    ("A1", S::InTransit, None),
    ("L1", S::InTransit, None),
    ("T1", S::InTransit, None),
    ("PC", S::InTransit, None),
    ("OA", S::InTransit, None),
    ("OF", S::OutForDelivery, None),
    ("01", S::Delivered, None),
    ("17", S::Delivered, None),
    ("02", S::FailedAttempt, None),
    ("52", S::FailedAttempt, None),
    ("55", S::FailedAttempt, None),
    ("57", S::FailedAttempt, None),
    ("16", S::AvailableForPickup, None),
    ("04", S::Exception, Some(X::Refused)),
    ("05", S::Exception, Some(X::AddressIssue)),
    ("21", S::Exception, Some(X::AddressIssue)),
    ("22", S::Exception, Some(X::AddressIssue)),
    ("23", S::Exception, Some(X::AddressIssue)),
    ("53", S::Exception, Some(X::HeldByCarrier)),
    ("59", S::Exception, Some(X::Weather)),
    ("44", S::Exception, Some(X::CustomsHold)),
    ("28", S::ReturnedToSender, None),
    ("29", S::ReturnedToSender, None),
    ("09", S::ReturnedToSender, None),
];

#[derive(Deserialize)]
struct TrackResponse {
    #[serde(rename = "TrackInfo", default)]
    track_info: Vec<TrackInfo>,
}

#[derive(Deserialize)]
struct TrackInfo {
    #[serde(rename = "@ID")]
    id: Option<String>,
    #[serde(rename = "TrackSummary")]
    summary: Option<Event>,
    #[serde(rename = "TrackDetail", default)]
    details: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    event_time: Option<String>,
    event_date: Option<String>,
    event: Option<String>,
    event_city: Option<String>,
    event_state: Option<String>,
    #[serde(rename = "EventZIPCode")]
    event_zip_code: Option<String>,
    event_country: Option<String>,
    event_code: Option<String>,
    #[serde(rename = "GMTOffset")]
    gmt_offset: Option<String>,
}

impl Adapter for Usps {
    fn carrier(&self) -> &str {
        "usps"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let text = std::str::from_utf8(payload).map_err(|e| unparsable("usps", e))?;
        let response: TrackResponse = quick_xml::de::from_str(text).map_err(|e| unparsable("usps", e))?;
        let mut scans = Vec::new();
        for info in &response.track_info {
            let number = tracking_number("usps", info.id.as_deref())?;
            for event in info.summary.iter().chain(&info.details) {
                let (date, time) = (event.event_date.as_deref().unwrap_or_default(), event.event_time.as_deref().unwrap_or_default());
                let offset = event.gmt_offset.as_deref().ok_or_else(|| super::bad_time("usps", format!("{date} {time} has no GMTOffset")))?;
                let at = super::local_time("usps", &format!("{date} {}", time.to_uppercase()), "%B %d, %Y %I:%M %p", offset)?;
                let code = event.event_code.clone().unwrap_or_default();
                let parts = ScanParts {
                    tracking_number: number.clone(),
                    at,
                    description: present(event.event.as_deref()),
                    place: Place {
                        city: present(event.event_city.as_deref()),
                        region: present(event.event_state.as_deref()),
                        // Web Tools leaves the country empty for domestic events.
                        country: present(event.event_country.as_deref()).or_else(|| event.event_state.as_ref().map(|_| "US".to_owned())),
                        postal_code: present(event.event_zip_code.as_deref()),
                    },
                    eta: None,
                    code: code.clone(),
                };
                scans.push(parts.into_scan("usps", canonical(CODES, &code)));
            }
        }
        if scans.is_empty() && response.track_info.is_empty() {
            return Err(unparsable("usps", "no TrackInfo element"));
        }
        Ok(scans)
    }
}
