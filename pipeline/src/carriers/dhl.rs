//! DHL, two APIs:
//! - the unified Shipment Tracking API (`/track/shipments`, every DHL business):
//!   `shipments[].events[]` with RFC 3339 `timestamp`s, a coarse `statusCode`
//!   (`pre-transit`, `transit`, `delivered`, `failure`, `unknown`) refined by
//!   `statusDetailed` where DHL gives it, and `estimatedDeliveryTimeFrame`;
//! - DHL Express (MyDHL API `/tracking`): `shipments[].events[]` with local `date`,
//!   `time` and `GMTOffset`, and Express `typeCode`s (`PU`, `AF`, `WC`, `OK`, `NH`, ...).

use serde::Deserialize;

use super::{canonical, present, rfc3339, tracking_number, unparsable, Adapter, AdapterError, CodeMap, Place, Scan, ScanParts};
use crate::model::{ParcelStatus as S, SubStatus as X};

pub struct DhlUnified;
pub struct DhlExpress;

/// `statusCode` or `statusCode/statusDetailed`; the longer key wins.
const UNIFIED: CodeMap = &[
    ("pre-transit", S::InfoReceived, None),
    ("transit", S::InTransit, None),
    ("transit/out-for-delivery", S::OutForDelivery, None),
    ("transit/ready-for-pickup", S::AvailableForPickup, None),
    ("transit/delayed", S::Exception, Some(X::Delayed)),
    ("transit/customs", S::Exception, Some(X::CustomsHold)),
    ("delivered", S::Delivered, None),
    ("failure", S::Exception, Some(X::Other)),
    ("failure/delivery-attempted", S::FailedAttempt, None),
    ("failure/address-issue", S::Exception, Some(X::AddressIssue)),
    ("failure/refused", S::Exception, Some(X::Refused)),
    ("failure/damaged", S::Exception, Some(X::Damaged)),
    ("failure/lost", S::Exception, Some(X::Lost)),
    ("failure/returned", S::ReturnedToSender, None),
];

const EXPRESS: CodeMap = &[
    ("SA", S::InfoReceived, None),
    ("PU", S::InTransit, None),
    ("PL", S::InTransit, None),
    ("DF", S::InTransit, None),
    ("AF", S::InTransit, None),
    ("AR", S::InTransit, None),
    ("CR", S::InTransit, None),
    ("WC", S::OutForDelivery, None),
    ("OK", S::Delivered, None),
    ("NH", S::FailedAttempt, None),
    ("CA", S::FailedAttempt, None),
    ("HP", S::AvailableForPickup, None),
    ("BA", S::Exception, Some(X::AddressIssue)),
    ("CD", S::Exception, Some(X::CustomsHold)),
    ("TD", S::Exception, Some(X::Delayed)),
    ("MS", S::Exception, Some(X::Delayed)),
    ("WX", S::Exception, Some(X::Weather)),
    ("OH", S::Exception, Some(X::HeldByCarrier)),
    ("RD", S::Exception, Some(X::Refused)),
    ("DM", S::Exception, Some(X::Damaged)),
    ("RT", S::ReturnedToSender, None),
];

#[derive(Deserialize)]
struct UnifiedPayload {
    #[serde(default)]
    shipments: Vec<UnifiedShipment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnifiedShipment {
    id: Option<String>,
    #[serde(default)]
    events: Vec<UnifiedEvent>,
    estimated_delivery_time_frame: Option<TimeFrame>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeFrame {
    estimated_from: Option<String>,
    estimated_through: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnifiedEvent {
    timestamp: String,
    location: Option<UnifiedLocation>,
    status_code: Option<String>,
    status_detailed: Option<String>,
    status: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct UnifiedLocation {
    address: Option<UnifiedAddress>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UnifiedAddress {
    address_locality: Option<String>,
    postal_code: Option<String>,
    country_code: Option<String>,
}

impl Adapter for DhlUnified {
    fn carrier(&self) -> &str {
        "dhl"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let payload: UnifiedPayload = serde_json::from_slice(payload).map_err(|e| unparsable("dhl", e))?;
        let mut scans = Vec::new();
        for shipment in &payload.shipments {
            let number = tracking_number("dhl", shipment.id.as_deref())?;
            let eta = match &shipment.estimated_delivery_time_frame {
                Some(TimeFrame { estimated_from: Some(from), estimated_through: Some(to) }) => Some((rfc3339("dhl", from)?, rfc3339("dhl", to)?)),
                _ => None,
            };
            // Events come newest first; the current estimate belongs to the newest.
            for (index, event) in shipment.events.iter().enumerate() {
                let coarse = event.status_code.clone().unwrap_or_default();
                let code = match present(event.status_detailed.as_deref()) {
                    Some(detail) => format!("{coarse}/{detail}"),
                    None => coarse.clone(),
                };
                let status = match canonical(UNIFIED, &code) {
                    (S::Unknown, _) => canonical(UNIFIED, &coarse),
                    known => known,
                };
                let address = event.location.as_ref().and_then(|l| l.address.as_ref());
                let parts = ScanParts {
                    tracking_number: number.clone(),
                    code,
                    at: rfc3339("dhl", &event.timestamp)?,
                    description: present(event.description.as_deref().or(event.status.as_deref())),
                    place: Place {
                        city: present(address.and_then(|a| a.address_locality.as_deref())),
                        region: None,
                        country: present(address.and_then(|a| a.country_code.as_deref())),
                        postal_code: present(address.and_then(|a| a.postal_code.as_deref())),
                    },
                    eta: eta.filter(|_| index == 0),
                };
                scans.push(parts.into_scan("dhl", status));
            }
        }
        Ok(scans)
    }
}

#[derive(Deserialize)]
struct ExpressPayload {
    #[serde(default)]
    shipments: Vec<ExpressShipment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpressShipment {
    shipment_tracking_number: Option<String>,
    #[serde(default)]
    events: Vec<ExpressEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpressEvent {
    date: String,
    time: String,
    #[serde(rename = "GMTOffset")]
    gmt_offset: String,
    type_code: Option<String>,
    description: Option<String>,
    #[serde(default)]
    service_area: Vec<ServiceArea>,
}

#[derive(Deserialize)]
struct ServiceArea {
    description: Option<String>,
}

impl Adapter for DhlExpress {
    fn carrier(&self) -> &str {
        // The same carrier as the unified API: scans join `order.shipped` by `dhl`.
        "dhl"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let payload: ExpressPayload = serde_json::from_slice(payload).map_err(|e| unparsable("dhl_express", e))?;
        let mut scans = Vec::new();
        for shipment in &payload.shipments {
            let number = tracking_number("dhl_express", shipment.shipment_tracking_number.as_deref())?;
            for event in &shipment.events {
                let at = super::local_time("dhl_express", &format!("{} {}", event.date, event.time), "%Y-%m-%d %H:%M:%S", &event.gmt_offset)?;
                let code = event.type_code.clone().unwrap_or_default();
                // "Leipzig - Germany": the city before the dash.
                let area = event.service_area.first().and_then(|a| a.description.as_deref());
                let city = area.map(|a| a.split(" - ").next().unwrap_or(a));
                let parts = ScanParts {
                    tracking_number: number.clone(),
                    at,
                    description: present(event.description.as_deref()),
                    place: Place { city: present(city), ..Place::default() },
                    eta: None,
                    code: code.clone(),
                };
                scans.push(parts.into_scan("dhl", canonical(EXPRESS, &code)));
            }
        }
        Ok(scans)
    }
}
