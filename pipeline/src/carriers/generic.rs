//! A carrier without code: a mapping table in the configuration that says where a JSON
//! payload keeps its events and their fields (JSON pointers), and what each carrier code
//! means canonically.
//!
//! ```toml
//! [carriers.generic.acme]
//! events = "/events"              # the array of events ("" for a payload that is one event)
//! tracking_number = "/trackingNumber"  # in each event, else at the payload's root
//! code = "/code"
//! time = "/time"                  # RFC 3339 with an offset
//! description = "/text"
//! city = "/place/city"
//! country = "/place/country"
//! [carriers.generic.acme.codes]
//! PU = "in_transit"
//! DL = "delivered"
//! WX = "exception/weather"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{present, rfc3339, tracking_number, unparsable, Adapter, AdapterError, Place, Scan, ScanParts};
use crate::model::{ParcelStatus, SubStatus};

/// Where a carrier's JSON keeps what a scan needs, and what its codes mean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub events: String,
    pub tracking_number: String,
    pub code: String,
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Carrier code → `status` or `status/sub_status` (the contract's vocabulary).
    pub codes: BTreeMap<String, String>,
}

impl Mapping {
    /// Checks every code's meaning against the contract; the error names the code.
    pub fn check(&self) -> Result<(), String> {
        self.codes.iter().try_for_each(|(code, meaning)| {
            meaning_of(meaning).map(drop).ok_or_else(|| format!("code {code:?}: {meaning:?} is not a canonical status[/sub_status]"))
        })
    }
}

/// `in_transit` or `exception/weather`.
fn meaning_of(text: &str) -> Option<(ParcelStatus, Option<SubStatus>)> {
    match text.split_once('/') {
        Some((status, sub)) => Some((ParcelStatus::parse(status)?, Some(SubStatus::parse(sub)?))),
        None => Some((ParcelStatus::parse(text)?, None)),
    }
}

pub struct Generic<'a> {
    carrier: String,
    mapping: &'a Mapping,
}

impl<'a> Generic<'a> {
    pub fn new(carrier: &str, mapping: &'a Mapping) -> Self {
        Generic { carrier: carrier.to_owned(), mapping }
    }

    fn text<'v>(&self, value: &'v Value, pointer: Option<&String>) -> Option<&'v str> {
        pointer.and_then(|p| value.pointer(p)).and_then(Value::as_str)
    }
}

impl Adapter for Generic<'_> {
    fn carrier(&self) -> &str {
        &self.carrier
    }

    fn scans(&self, payload: &[u8]) -> Result<Vec<Scan>, AdapterError> {
        let carrier = self.carrier.as_str();
        let root: Value = serde_json::from_slice(payload).map_err(|e| unparsable(carrier, e))?;
        let events: Vec<&Value> = match root.pointer(&self.mapping.events) {
            Some(Value::Array(events)) => events.iter().collect(),
            Some(event @ Value::Object(_)) => vec![event],
            _ => return Err(unparsable(carrier, format!("no events at {:?}", self.mapping.events))),
        };
        let m = self.mapping;
        let mut scans = Vec::new();
        for event in events {
            let number = self.text(event, Some(&m.tracking_number)).or_else(|| self.text(&root, Some(&m.tracking_number)));
            let time = self.text(event, Some(&m.time)).ok_or_else(|| super::bad_time(carrier, format!("no time at {:?}", m.time)))?;
            let code = self.text(event, Some(&m.code)).unwrap_or_default().to_owned();
            let meaning = m.codes.get(&code).and_then(|text| meaning_of(text)).unwrap_or((ParcelStatus::Unknown, None));
            let parts = ScanParts {
                tracking_number: tracking_number(carrier, number)?,
                at: rfc3339(carrier, time)?,
                description: present(self.text(event, m.description.as_ref())),
                place: Place {
                    city: present(self.text(event, m.city.as_ref())),
                    region: present(self.text(event, m.region.as_ref())),
                    country: present(self.text(event, m.country.as_ref())),
                    postal_code: present(self.text(event, m.postal_code.as_ref())),
                },
                eta: None,
                code,
            };
            scans.push(parts.into_scan(carrier, meaning));
        }
        Ok(scans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meanings_are_the_contract_vocabulary() {
        let cases = [
            ("delivered", Some((ParcelStatus::Delivered, None))),
            ("exception/weather", Some((ParcelStatus::Exception, Some(SubStatus::Weather)))),
            ("teleported", None),
            ("exception/gremlins", None),
        ];
        for (text, expected) in cases {
            assert_eq!(meaning_of(text), expected, "{text}");
        }
    }
}
