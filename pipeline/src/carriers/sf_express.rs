//! SF Express route push (`WaybillRoute`): one entry per route step with `mailno`, the
//! local `acceptTime` ("2026-11-20 10:15:00", Beijing time, UTC+8, as SF documents),
//! `acceptAddress`, the Chinese `remark` and the operation code `opCode`.

use serde::Deserialize;

use super::{canonical, present, tracking_number, unparsable, Adapter, AdapterError, CodeMap, Place, Scan, ScanParts};
use crate::model::{ParcelStatus as S, SubStatus as X};

pub struct SfExpress;

const CODES: CodeMap = &[
    ("54", S::InfoReceived, None),
    ("50", S::InTransit, None),
    ("51", S::InTransit, None),
    ("30", S::InTransit, None),
    ("31", S::InTransit, None),
    ("36", S::InTransit, None),
    ("105", S::InTransit, None),
    ("44", S::OutForDelivery, None),
    ("204", S::OutForDelivery, None),
    ("80", S::Delivered, None),
    ("8000", S::Delivered, None),
    ("70", S::FailedAttempt, None),
    ("125", S::AvailableForPickup, None),
    ("130", S::AvailableForPickup, None),
    ("33", S::Exception, Some(X::Delayed)),
    ("34", S::Exception, Some(X::Weather)),
    ("35", S::Exception, Some(X::AddressIssue)),
    ("607", S::Exception, Some(X::CustomsHold)),
    ("99", S::ReturnedToSender, None),
    ("648", S::ReturnedToSender, None),
];

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "WaybillRoute", default)]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Route {
    mailno: Option<String>,
    accept_time: String,
    accept_address: Option<String>,
    remark: Option<String>,
    op_code: Option<String>,
}

impl Adapter for SfExpress {
    fn carrier(&self) -> &str {
        "sf_express"
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let payload: Payload = serde_json::from_slice(payload).map_err(|e| unparsable("sf_express", e))?;
        let mut scans = Vec::new();
        for route in &payload.routes {
            let code = route.op_code.clone().unwrap_or_default();
            let parts = ScanParts {
                tracking_number: tracking_number("sf_express", route.mailno.as_deref())?,
                at: super::local_time("sf_express", &route.accept_time, "%Y-%m-%d %H:%M:%S", "+08:00")?,
                description: present(route.remark.as_deref()),
                place: Place { city: present(route.accept_address.as_deref()), country: Some("CN".into()), ..Place::default() },
                eta: None,
                code: code.clone(),
            };
            scans.push(parts.into_scan("sf_express", canonical(CODES, &code)));
        }
        Ok(scans)
    }
}
