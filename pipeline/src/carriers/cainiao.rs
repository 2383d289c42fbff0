//! Cainiao global tracking (`logisticsDetailList` per `mailNo`): local `timeStr` with its
//! `timeZone` ("GMT+8"), `desc`, and the `actionCode` of the logistics step
//! (`GWMS_ACCEPT`, `SC_OUTBOUND_SUCCESS`, `CC_IM_START`, `GTMS_DO_DEPART`,
//! `GTMS_SIGNED`, ...).

use serde::Deserialize;

use super::{canonical, present, tracking_number, unparsable, Adapter, AdapterError, CodeMap, Place, Scan, ScanParts};
use crate::model::{ParcelStatus as S, SubStatus as X};

pub struct Cainiao;

const CODES: CodeMap = &[
    ("GWMS_ACCEPT", S::InfoReceived, None),
    ("GWMS_OUTBOUND", S::InTransit, None),
    ("SC_INBOUND_SUCCESS", S::InTransit, None),
    ("SC_OUTBOUND_SUCCESS", S::InTransit, None),
    ("LH_HO_IN_SUCCESS", S::InTransit, None),
    ("LH_HO_AIRLINE", S::InTransit, None),
    ("LH_ARRIVE", S::InTransit, None),
    ("CC_EX_START", S::InTransit, None),
    ("CC_EX_SUCCESS", S::InTransit, None),
    ("CC_IM_START", S::InTransit, None),
    ("CC_IM_SUCCESS", S::InTransit, None),
    ("CC_HO_OUT_SUCCESS", S::InTransit, None),
    ("GTMS_ACCEPT", S::InTransit, None),
    ("GTMS_DO_DEPART", S::OutForDelivery, None),
    ("GTMS_SIGNED", S::Delivered, None),
    ("GTMS_STA_SIGN", S::AvailableForPickup, None),
    ("GTMS_DELIVERY_FAILED", S::FailedAttempt, None),
    ("CC_IM_EXCEPTION", S::Exception, Some(X::CustomsHold)),
    ("LH_DELAY", S::Exception, Some(X::Delayed)),
    ("GTMS_WRONG_ADDRESS", S::Exception, Some(X::AddressIssue)),
    ("GTMS_REJECTED", S::Exception, Some(X::Refused)),
    ("GTMS_LOST", S::Exception, Some(X::Lost)),
    ("RETURN_TO_SENDER", S::ReturnedToSender, None),
];

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    data: Vec<Parcel>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Parcel {
    mail_no: Option<String>,
    #[serde(default)]
    logistics_detail_list: Vec<Detail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    time_str: String,
    time_zone: String,
    desc: Option<String>,
    action_code: Option<String>,
    country: Option<String>,
    city: Option<String>,
}

impl Adapter for Cainiao {
    fn carrier(&self) -> &str {
        "cainiao"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let payload: Payload = serde_json::from_slice(payload).map_err(|e| unparsable("cainiao", e))?;
        let mut scans = Vec::new();
        for parcel in &payload.data {
            let number = tracking_number("cainiao", parcel.mail_no.as_deref())?;
            for detail in &parcel.logistics_detail_list {
                let code = detail.action_code.clone().unwrap_or_default();
                let parts = ScanParts {
                    tracking_number: number.clone(),
                    at: super::local_time("cainiao", &detail.time_str, "%Y-%m-%d %H:%M:%S", &detail.time_zone)?,
                    description: present(detail.desc.as_deref()),
                    place: Place { city: present(detail.city.as_deref()), country: present(detail.country.as_deref()), ..Place::default() },
                    eta: None,
                    code: code.clone(),
                };
                scans.push(parts.into_scan("cainiao", canonical(CODES, &code)));
            }
        }
        Ok(scans)
    }
}
