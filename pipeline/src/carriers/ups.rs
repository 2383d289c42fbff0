//! UPS Tracking API (`/api/track/v1/details`): `trackResponse.shipment[].package[]`,
//! each with its `activity[]` (newest first, as UPS sends them). Times are read from
//! `gmtDate`/`gmtTime` with `gmtOffset` (the local `date`/`time` carry no offset).
//! Codes: `status.type` (`M`, `P`, `I`, `O`, `X`, `D`, `RS`, ...) refined by
//! `status.code` where UPS distinguishes cases within a type.

use serde::Deserialize;

use super::{canonical, present, tracking_number, unparsable, Adapter, AdapterError, CodeMap, Place, Scan, ScanParts};
use crate::model::{ParcelStatus as S, SubStatus as X};

pub struct Ups;

/// `type` or `type/code`; the longer key wins.
const CODES: CodeMap = &[
    ("M", S::InfoReceived, None),
    ("MV", S::InfoReceived, None),
    ("P", S::InTransit, None),
    ("I", S::InTransit, None),
    ("I/OT", S::OutForDelivery, None),
    ("O", S::OutForDelivery, None),
    ("D", S::Delivered, None),
    ("RS", S::ReturnedToSender, None),
    ("X", S::Exception, Some(X::Other)),
    ("X/48", S::FailedAttempt, None),
    ("X/2Q", S::AvailableForPickup, None),
    ("X/UA", S::Exception, Some(X::AddressIssue)),
    ("X/WX", S::Exception, Some(X::Weather)),
    ("X/DL", S::Exception, Some(X::Delayed)),
    ("X/CH", S::Exception, Some(X::CustomsHold)),
    ("X/DM", S::Exception, Some(X::Damaged)),
    ("X/RF", S::Exception, Some(X::Refused)),
    ("X/LS", S::Exception, Some(X::Lost)),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    track_response: TrackResponse,
}

#[derive(Deserialize)]
struct TrackResponse {
    #[serde(default)]
    shipment: Vec<Shipment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shipment {
    #[serde(default)]
    package: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    tracking_number: Option<String>,
    #[serde(default)]
    activity: Vec<Activity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity {
    location: Option<Location>,
    status: Status,
    gmt_date: String,
    gmt_time: String,
    gmt_offset: String,
}

#[derive(Deserialize)]
struct Location {
    address: Option<Address>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address {
    city: Option<String>,
    state_province: Option<String>,
    postal_code: Option<String>,
    country_code: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(rename = "type")]
    kind: String,
    code: Option<String>,
    description: Option<String>,
}

impl Adapter for Ups {
    fn carrier(&self) -> &str {
        "ups"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let payload: Payload = serde_json::from_slice(payload).map_err(|e| unparsable("ups", e))?;
        let mut scans = Vec::new();
        for package in payload.track_response.shipment.iter().flat_map(|s| &s.package) {
            let number = tracking_number("ups", package.tracking_number.as_deref())?;
            for activity in &package.activity {
                // The GMT date and time, then moved to the local offset UPS reports.
                let utc = super::local_time("ups", &format!("{} {}", activity.gmt_date, activity.gmt_time), "%Y%m%d %H:%M:%S", "+00:00")?;
                let offset = super::parse_offset(&activity.gmt_offset).ok_or_else(|| super::bad_time("ups", &activity.gmt_offset))?;
                let code = match activity.status.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                    Some(code) => format!("{}/{code}", activity.status.kind),
                    None => activity.status.kind.clone(),
                };
                let status = match canonical(CODES, &code) {
                    (S::Unknown, _) => canonical(CODES, &activity.status.kind),
                    known => known,
                };
                let address = activity.location.as_ref().and_then(|l| l.address.as_ref());
                let place = Place {
                    city: present(address.and_then(|a| a.city.as_deref())),
                    region: present(address.and_then(|a| a.state_province.as_deref())),
                    country: present(address.and_then(|a| a.country_code.as_deref())),
                    postal_code: present(address.and_then(|a| a.postal_code.as_deref())),
                };
                let parts = ScanParts {
                    tracking_number: number.clone(),
                    code,
                    at: utc.with_timezone(&offset),
                    description: present(activity.status.description.as_deref()),
                    place,
                    eta: None,
                };
                scans.push(parts.into_scan("ups", status));
            }
        }
        Ok(scans)
    }
}
