//! NDJSON line → [`Event`] or [`Rejection`]. Pure: no I/O, no clock.
//!
//! A line is first split into its top-level fields without decoding their values
//! (`&RawValue` borrows the line), then each field the event's type needs is decoded on
//! its own. That gives a precise reason for every refusal (which field, what was wrong)
//! and keeps unknown fields verbatim instead of rejecting them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::reject::{RejectReason as R, Rejection};
use super::timestamp::{Timestamp, TimestampError};
use super::*;

/// Longest identifier the contract allows, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Bounds on what one line may cost to decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Longer lines are refused with `line_too_long` before any parsing.
    pub max_line_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_line_bytes: 1 << 20 }
    }
}

/// Decodes and validates one NDJSON line (without its newline).
///
/// ```
/// use orderpulse::model::{decode_line, DecodeLimits, EventType, RejectReason};
/// let ok = br#"{"event_id":"e1","type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o1"}"#;
/// assert_eq!(decode_line(ok, &DecodeLimits::default()).unwrap().event_type(), EventType::OrderPaid);
/// let bad = br#"{"event_id":"e1","type":"order.paid","occurred_at":"2026-11-20T10:00:00","merchant_id":"m1","order_id":"o1"}"#;
/// assert_eq!(decode_line(bad, &DecodeLimits::default()).unwrap_err().reason, RejectReason::TimestampWithoutOffset);
/// ```
pub fn decode_line(line: &[u8], limits: &DecodeLimits) -> Result<Event, Rejection> {
    if line.len() > limits.max_line_bytes {
        return Err(Rejection::new(R::LineTooLong, format!("line is {} bytes, the limit is {}", line.len(), limits.max_line_bytes)));
    }
    let text = std::str::from_utf8(line).map_err(|e| Rejection::new(R::NotUtf8, format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let mut fields = Fields::parse(text, "")?;
    let event = decode_event(&mut fields)?;
    Ok(Event { extra: fields.into_extra(), ..event })
}

fn decode_event(f: &mut Fields<'_>) -> Result<Event, Rejection> {
    let event_id = f.required_id("event_id")?;
    let type_text = f.required_str("type")?;
    let event_type = EventType::parse(&type_text).ok_or_else(|| Rejection::at(R::UnknownType, "type", format!("unknown event type {type_text:?}")))?;
    let occurred_at = f.required_timestamp("occurred_at")?;
    let merchant_id = match event_type.stream() {
        Stream::Carrier => f.optional_id("merchant_id")?,
        Stream::Orders | Stream::Tickets => Some(f.required_id("merchant_id")?),
    };
    let body = match event_type.stream() {
        Stream::Orders => EventBody::Order(decode_order(event_type, f)?),
        Stream::Carrier => EventBody::Carrier(decode_scan(f)?),
        Stream::Tickets => EventBody::Ticket(decode_ticket(event_type, f)?),
    };
    Ok(Event { event_id, occurred_at, merchant_id, body, extra: None })
}

fn decode_order(event_type: EventType, f: &mut Fields<'_>) -> Result<OrderEvent, Rejection> {
    let order_id = f.required_id("order_id")?;
    let detail = match event_type {
        EventType::OrderCreated => OrderDetail::Created(Box::new(decode_created(f)?)),
        EventType::OrderPaid => OrderDetail::Paid,
        EventType::OrderFulfillmentStarted => OrderDetail::FulfillmentStarted { warehouse: f.optional_str("warehouse")? },
        EventType::OrderShipped => OrderDetail::Shipped(Shipment {
            carrier: f.required_carrier("carrier")?,
            tracking_number: f.required_id("tracking_number")?,
            service_level: f.optional_str("service_level")?,
        }),
        EventType::OrderCompleted => OrderDetail::Completed,
        EventType::OrderCancelled => OrderDetail::Cancelled { reason: f.optional_str("reason")? },
        EventType::OrderReturnRequested => OrderDetail::ReturnRequested { reason: f.optional_str("reason")? },
        other => unreachable!("{other} is not an order event type"),
    };
    Ok(OrderEvent { order_id, detail })
}

fn decode_created(f: &mut Fields<'_>) -> Result<OrderCreated, Rejection> {
    let channel = f.optional_str("channel")?;
    let customer = match f.optional_object("customer")? {
        None => Customer::default(),
        Some(mut c) => {
            let customer = Customer {
                id: c.optional_id("id")?,
                country: c.optional_str("country")?,
                region: c.optional_str("region")?,
                postal_code: c.optional_str("postal_code")?,
                email: c.optional_str("email")?,
                phone: c.optional_str("phone")?,
                notify: c.optional_enum_list("notify", NotifyChannel::parse)?,
            };
            f.absorb(c);
            customer
        }
    };
    let items = match f.optional_i64("items")? {
        Some(n) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            return Err(Rejection::at(R::OutOfRange, "items", format!("item count {n} is negative or too large")));
        }
        other => other.map(|n| n as i32),
    };
    let total = match f.optional_object("total")? {
        None => None,
        Some(mut t) => {
            let money = decode_money(&mut t)?;
            f.absorb(t);
            Some(money)
        }
    };
    let ship_by = f.optional_timestamp("ship_by")?;
    let promised_delivery = f.optional_window("promised_delivery")?;
    Ok(OrderCreated { channel, customer, items, total, ship_by, promised_delivery })
}

fn decode_money(t: &mut Fields<'_>) -> Result<Money, Rejection> {
    let amount_path = t.path("amount");
    let amount = t.take("amount").ok_or_else(|| Rejection::at(R::MissingField, amount_path.clone(), "money needs an amount"))?;
    let amount =
        as_str(amount).ok_or_else(|| Rejection::at(R::BadMoney, amount_path.clone(), format!("amount must be a decimal string, found {}", amount.get())))?;
    let minor = parse_decimal(&amount)
        .ok_or_else(|| Rejection::at(R::BadMoney, amount_path, format!("amount {amount:?} is not a decimal with at most {} places", Money::SCALE)))?;
    let currency_path = t.path("currency");
    let currency = t.required_str("currency")?;
    let currency: [u8; 3] = currency
        .as_bytes()
        .try_into()
        .ok()
        .filter(|c: &[u8; 3]| c.iter().all(u8::is_ascii_uppercase))
        .ok_or_else(|| Rejection::at(R::BadMoney, currency_path, format!("currency {currency:?} is not an ISO 4217 code")))?;
    Ok(Money { minor, currency })
}

/// `"-12.5"` → `-125000` at [`Money::SCALE`] places; `None` for anything else.
fn parse_decimal(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    if fraction.len() > Money::SCALE as usize || (digits.contains('.') && fraction.is_empty()) {
        return None;
    }
    let scale = 10i64.pow(Money::SCALE);
    let whole: i64 = whole.parse().ok()?;
    let fraction_value: i64 = if fraction.is_empty() { 0 } else { fraction.parse().ok()? };
    let fraction_scaled = fraction_value * 10i64.pow(Money::SCALE - fraction.len() as u32);
    let value = whole.checked_mul(scale)?.checked_add(fraction_scaled)?;
    Some(if negative { -value } else { value })
}

fn decode_scan(f: &mut Fields<'_>) -> Result<CarrierScan, Rejection> {
    let carrier = f.required_carrier("carrier")?;
    let tracking_number = f.required_id("tracking_number")?;
    let order_id = f.optional_id("order_id")?;
    let status = f.optional_enum("status", ParcelStatus::parse)?.ok_or_else(|| Rejection::at(R::MissingField, "status", "required field is missing"))?;
    let sub_status = f.optional_enum("sub_status", SubStatus::parse)?;
    let raw_status = f.optional_str("raw_status")?;
    let description = f.optional_str("description")?;
    let location = match f.optional_object("location")? {
        None => Location::default(),
        Some(mut l) => {
            let location = Location {
                city: l.optional_str("city")?,
                region: l.optional_str("region")?,
                country: l.optional_str("country")?,
                postal_code: l.optional_str("postal_code")?,
                lat: l.optional_coordinate("lat", 90.0)?,
                lon: l.optional_coordinate("lon", 180.0)?,
            };
            f.absorb(l);
            location
        }
    };
    let estimated_delivery = f.optional_window("estimated_delivery")?;
    Ok(CarrierScan { carrier, tracking_number, order_id, status, sub_status, raw_status, description, location, estimated_delivery })
}

fn decode_ticket(event_type: EventType, f: &mut Fields<'_>) -> Result<TicketEvent, Rejection> {
    let ticket_id = f.required_id("ticket_id")?;
    let detail = match event_type {
        EventType::TicketOpened => TicketDetail::Opened {
            order_id: f.optional_id("order_id")?,
            category: f.optional_enum("category", TicketCategory::parse)?,
            channel: f.optional_enum("channel", TicketChannel::parse)?,
            priority: f.optional_enum("priority", Priority::parse)?,
        },
        EventType::TicketEscalated => {
            TicketDetail::Escalated { department: f.optional_str("department")?, priority: f.optional_enum("priority", Priority::parse)? }
        }
        EventType::TicketResolved => TicketDetail::Resolved {
            resolution: f.optional_enum("resolution", Resolution::parse)?,
            csat: match f.optional_i64("csat")? {
                None => None,
                Some(n @ 1..=5) => Some(n as u8),
                Some(n) => {
                    return Err(Rejection::at(R::CsatOutOfRange, "csat", format!("csat {n} is outside 1..5")));
                }
            },
        },
        other => unreachable!("{other} is not a ticket event type"),
    };
    Ok(TicketEvent { ticket_id, detail })
}

/// The top-level (or one nested) object of a line, split into undecoded fields.
struct Fields<'a> {
    /// Dotted path of this object inside the event (`""` at the top, `"customer."` below).
    prefix: String,
    /// In line order; a field is marked taken once the decoder has used it.
    entries: Vec<(Cow<'a, str>, &'a RawValue, bool)>,
    /// Unknown fields of nested objects, already rendered as `"path":value` pairs.
    nested_extra: Vec<String>,
}

impl<'a> Fields<'a> {
    fn parse(text: &'a str, prefix: &str) -> Result<Self, Rejection> {
        let mut de = serde_json::Deserializer::from_str(text);
        let entries = de.deserialize_map(EntriesVisitor).and_then(|e| de.end().map(|()| e));
        match entries {
            Ok(entries) => Ok(Fields { prefix: prefix.to_owned(), entries, nested_extra: Vec::new() }),
            Err(e) if e.is_data() && prefix.is_empty() => Err(Rejection::new(R::NotAnObject, "the line is JSON but not an object")),
            Err(e) if e.is_data() => Err(Rejection::at(R::WrongType, prefix.trim_end_matches('.'), "expected an object")),
            Err(e) => Err(Rejection::new(R::NotJson, format!("not JSON: {e}"))),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Takes a field's raw value; `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<&'a RawValue> {
        let entry = self.entries.iter_mut().find(|(key, _, taken)| !taken && key == name)?;
        entry.2 = true;
        (entry.1.get() != "null").then_some(entry.1)
    }

    fn wrong_type(&self, name: &str, expected: &str, raw: &RawValue) -> Rejection {
        Rejection::at(R::WrongType, self.path(name), format!("expected {expected}, found {}", json_kind(raw)))
    }

    fn missing(&self, name: &str) -> Rejection {
        Rejection::at(R::MissingField, self.path(name), "required field is missing")
    }

    fn optional_str(&mut self, name: &str) -> Result<Option<String>, Rejection> {
        match self.take(name) {
            None => Ok(None),
            Some(raw) => as_str(raw).map(|s| Some(s.into_owned())).ok_or_else(|| self.wrong_type(name, "a string", raw)),
        }
    }

    fn required_str(&mut self, name: &str) -> Result<String, Rejection> {
        self.optional_str(name)?.ok_or_else(|| self.missing(name))
    }

    fn optional_id(&mut self, name: &str) -> Result<Option<String>, Rejection> {
        let Some(id) = self.optional_str(name)? else { return Ok(None) };
        if id.is_empty() {
            return Err(Rejection::at(R::EmptyIdentifier, self.path(name), "identifier is empty"));
        }
        if id.len() > MAX_ID_BYTES {
            return Err(Rejection::at(R::IdentifierTooLong, self.path(name), format!("identifier is {} bytes, the limit is {MAX_ID_BYTES}", id.len())));
        }
        Ok(Some(id))
    }

    fn required_id(&mut self, name: &str) -> Result<String, Rejection> {
        self.optional_id(name)?.ok_or_else(|| self.missing(name))
    }

    /// A carrier code: an identifier in lower case (`ups`, `sf_express`).
    fn required_carrier(&mut self, name: &str) -> Result<String, Rejection> {
        let code = self.required_id(name)?;
        let well_formed = code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !well_formed {
            return Err(Rejection::at(R::UnknownEnumValue, self.path(name), format!("carrier code {code:?} must be lower-case letters, digits, '_' or '-'")));
        }
        Ok(code)
    }

    fn optional_timestamp(&mut self, name: &str) -> Result<Option<Timestamp>, Rejection> {
        let Some(text) = self.optional_str(name)? else { return Ok(None) };
        match Timestamp::parse(&text) {
            Ok(t) => Ok(Some(t)),
            Err(TimestampError::MissingOffset) => {
                Err(Rejection::at(R::TimestampWithoutOffset, self.path(name), format!("{text:?} has no UTC offset (add Z or ±hh:mm)")))
            }
            Err(TimestampError::Malformed) => Err(Rejection::at(R::BadTimestamp, self.path(name), format!("{text:?} is not an RFC 3339 timestamp"))),
        }
    }

    fn required_timestamp(&mut self, name: &str) -> Result<Timestamp, Rejection> {
        self.optional_timestamp(name)?.ok_or_else(|| self.missing(name))
    }

    fn optional_window(&mut self, name: &str) -> Result<Option<Window>, Rejection> {
        let Some(mut w) = self.optional_object(name)? else { return Ok(None) };
        let from = w.required_timestamp("from")?;
        let to = w.required_timestamp("to")?;
        if from > to {
            return Err(Rejection::at(R::InvertedWindow, self.path(name), "window ends before it starts"));
        }
        self.absorb(w);
        Ok(Some(Window { from, to }))
    }

    fn optional_i64(&mut self, name: &str) -> Result<Option<i64>, Rejection> {
        match self.take(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<i64>(raw.get()).map(Some).map_err(|_| self.wrong_type(name, "an integer", raw)),
        }
    }

    fn optional_coordinate(&mut self, name: &str, limit: f64) -> Result<Option<f64>, Rejection> {
        match self.take(name) {
            None => Ok(None),
            Some(raw) => match serde_json::from_str::<f64>(raw.get()) {
                Ok(v) if v.abs() <= limit => Ok(Some(v)),
                Ok(v) => Err(Rejection::at(R::OutOfRange, self.path(name), format!("{v} is outside ±{limit}"))),
                Err(_) => Err(self.wrong_type(name, "a number", raw)),
            },
        }
    }

    fn optional_enum<T>(&mut self, name: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>, Rejection> {
        let Some(text) = self.optional_str(name)? else { return Ok(None) };
        parse(&text).map(Some).ok_or_else(|| Rejection::at(R::UnknownEnumValue, self.path(name), format!("{text:?} is not a known value")))
    }

    fn optional_enum_list<T>(&mut self, name: &str, parse: fn(&str) -> Option<T>) -> Result<Vec<T>, Rejection> {
        let Some(raw) = self.take(name) else { return Ok(Vec::new()) };
        let texts: Vec<String> = serde_json::from_str(raw.get()).map_err(|_| self.wrong_type(name, "a list of strings", raw))?;
        texts
            .iter()
            .map(|text| parse(text).ok_or_else(|| Rejection::at(R::UnknownEnumValue, self.path(name), format!("{text:?} is not a known value"))))
            .collect()
    }

    fn optional_object(&mut self, name: &str) -> Result<Option<Fields<'a>>, Rejection> {
        match self.take(name) {
            None => Ok(None),
            Some(raw) if raw.get().starts_with('{') => Fields::parse(raw.get(), &format!("{}.", self.path(name))).map(Some),
            Some(raw) => Err(self.wrong_type(name, "an object", raw)),
        }
    }

    /// Keeps a decoded nested object's unknown fields with this object's extras.
    fn absorb(&mut self, nested: Fields<'a>) {
        self.nested_extra.extend(nested.unknown_pairs());
    }

    fn unknown_pairs(self) -> Vec<String> {
        let mut pairs = self.nested_extra;
        for (key, raw, taken) in self.entries {
            if !taken {
                let path = format!("{}{}", self.prefix, key);
                pairs.push(format!("{}:{}", serde_json::Value::String(path), raw.get()));
            }
        }
        pairs
    }

    /// The fields nobody took, as a JSON object text, or `None` when there are none.
    fn into_extra(self) -> Option<String> {
        let pairs = self.unknown_pairs();
        (!pairs.is_empty()).then(|| format!("{{{}}}", pairs.join(",")))
    }
}

/// A string value without allocating when it has no escapes.
fn as_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "a list",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// Collects an object's entries as (key, raw value) without decoding values.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(Cow<'de, str>, &'de RawValue, bool)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(12));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            entries.push((key.0, value, false));
        }
        Ok(entries)
    }
}

/// A field name, borrowed from the line unless it contains escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits { max_line_bytes: 4096 };

    fn decode(line: &str) -> Result<Event, Rejection> {
        decode_line(line.as_bytes(), &LIMITS)
    }

    const CREATED: &str = r#"{"event_id":"e1","type":"order.created","occurred_at":"2026-11-20T10:00:00+01:00","merchant_id":"m1","order_id":"o1","channel":"web","customer":{"id":"c1","country":"DE","region":"BE","notify":["email","sms"],"tier":"gold"},"items":3,"total":{"amount":"129.90","currency":"EUR"},"ship_by":"2026-11-21T18:00:00+01:00","promised_delivery":{"from":"2026-11-23T08:00:00+01:00","to":"2026-11-25T20:00:00+01:00"},"coupon":"BF26"}"#;

    #[test]
    fn decodes_a_full_order_created_and_keeps_unknown_fields() {
        let event = decode(CREATED).unwrap();
        assert_eq!(event.event_id, "e1");
        assert_eq!(event.merchant_id.as_deref(), Some("m1"));
        let EventBody::Order(order) = &event.body else { panic!("not an order: {event:?}") };
        let OrderDetail::Created(created) = &order.detail else { panic!("not created") };
        assert_eq!(created.total, Some(Money { minor: 1_299_000, currency: *b"EUR" }));
        assert_eq!(created.customer.notify, vec![NotifyChannel::Email, NotifyChannel::Sms]);
        assert_eq!(created.items, Some(3));
        let extra: serde_json::Value = serde_json::from_str(event.extra.as_deref().unwrap()).unwrap();
        assert_eq!(extra, serde_json::json!({"customer.tier": "gold", "coupon": "BF26"}));
    }

    #[test]
    fn decodes_a_scan_with_location_and_eta() {
        let line = r#"{"event_id":"s1","type":"carrier.scan","occurred_at":"2026-11-21T06:10:00Z","carrier":"dhl","tracking_number":"JD0001","status":"exception","sub_status":"weather","location":{"city":"Leipzig","country":"DE","lat":51.3,"lon":12.4},"estimated_delivery":{"from":"2026-11-26T10:00:00+01:00","to":"2026-11-26T14:00:00+01:00"}}"#;
        let event = decode(line).unwrap();
        let EventBody::Carrier(scan) = event.body else { panic!() };
        assert_eq!(scan.status, ParcelStatus::Exception);
        assert_eq!(scan.sub_status, Some(SubStatus::Weather));
        assert_eq!(scan.location.city.as_deref(), Some("Leipzig"));
        assert!(scan.estimated_delivery.is_some());
        assert_eq!(event.merchant_id, None);
        assert_eq!(event.extra, None);
    }

    /// One case per rejection reason: (line, reason, field).
    #[test]
    fn every_reason_has_a_case() {
        let base = r#""event_id":"e1","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1""#;
        let long_id = "x".repeat(129);
        let cases: Vec<(String, R, Option<&str>)> = vec![
            ("not json at all".into(), R::NotJson, None),
            (r#"{"event_id":"e1""#.into(), R::NotJson, None),
            (r#"{"a":1} trailing"#.into(), R::NotJson, None),
            ("[1,2,3]".into(), R::NotAnObject, None),
            (r#"{"type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o1"}"#.to_owned(), R::MissingField, Some("event_id")),
            (format!(r#"{{{base},"type":"order.paid"}}"#), R::MissingField, Some("order_id")),
            (format!(r#"{{{base},"type":"order.paid","order_id":null}}"#), R::MissingField, Some("order_id")),
            (format!(r#"{{{base},"type":"order.teleported","order_id":"o1"}}"#), R::UnknownType, Some("type")),
            (format!(r#"{{{base},"type":"order.paid","order_id":17}}"#), R::WrongType, Some("order_id")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","customer":"c1"}}"#), R::WrongType, Some("customer")),
            (r#"{"event_id":"e1","type":"order.paid","occurred_at":"2026-11-20T10:00:00","merchant_id":"m1","order_id":"o1"}"#.into(), R::TimestampWithoutOffset, Some("occurred_at")),
            (r#"{"event_id":"e1","type":"order.paid","occurred_at":"last tuesday","merchant_id":"m1","order_id":"o1"}"#.into(), R::BadTimestamp, Some("occurred_at")),
            (format!(r#"{{{base},"type":"order.paid","order_id":""}}"#), R::EmptyIdentifier, Some("order_id")),
            (format!(r#"{{{base},"type":"order.paid","order_id":"{long_id}"}}"#), R::IdentifierTooLong, Some("order_id")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","total":{{"amount":"12.345678","currency":"EUR"}}}}"#), R::BadMoney, Some("total.amount")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","total":{{"amount":12.5,"currency":"EUR"}}}}"#), R::BadMoney, Some("total.amount")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","total":{{"amount":"12.50","currency":"euro"}}}}"#), R::BadMoney, Some("total.currency")),
            (format!(r#"{{{base},"type":"ticket.resolved","ticket_id":"t1","csat":9}}"#), R::CsatOutOfRange, Some("csat")),
            (format!(r#"{{{base},"type":"ticket.opened","ticket_id":"t1","category":"angry"}}"#), R::UnknownEnumValue, Some("category")),
            (r#"{"event_id":"e1","type":"carrier.scan","occurred_at":"2026-11-20T10:00:00Z","carrier":"ups","tracking_number":"1Z","status":"teleported"}"#.into(), R::UnknownEnumValue, Some("status")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","customer":{{"notify":["email","pigeon"]}}}}"#), R::UnknownEnumValue, Some("customer.notify")),
            (format!(r#"{{{base},"type":"order.shipped","order_id":"o1","carrier":"UPS","tracking_number":"1Z"}}"#), R::UnknownEnumValue, Some("carrier")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","items":-2}}"#), R::OutOfRange, Some("items")),
            (r#"{"event_id":"e1","type":"carrier.scan","occurred_at":"2026-11-20T10:00:00Z","carrier":"ups","tracking_number":"1Z","status":"in_transit","location":{"lat":91.0}}"#.into(), R::OutOfRange, Some("location.lat")),
            (format!(r#"{{{base},"type":"order.created","order_id":"o1","promised_delivery":{{"from":"2026-11-25T00:00:00Z","to":"2026-11-23T00:00:00Z"}}}}"#), R::InvertedWindow, Some("promised_delivery")),
            (r#"{"event_id":"e1","type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","order_id":"o1"}"#.to_owned(), R::MissingField, Some("merchant_id")),
        ];
        let mut covered = std::collections::BTreeSet::new();
        for (line, reason, field) in &cases {
            let rejection = decode(line).expect_err(line);
            assert_eq!(rejection.reason, *reason, "{line} → {rejection}");
            assert_eq!(rejection.field.as_deref(), *field, "{line} → {rejection}");
            covered.insert(*reason);
        }
        let not_utf8 = decode_line(b"{\"event_id\":\"\xff\"}", &LIMITS).unwrap_err();
        assert_eq!(not_utf8.reason, R::NotUtf8);
        covered.insert(R::NotUtf8);
        let too_long = decode_line(&vec![b' '; 5000], &LIMITS).unwrap_err();
        assert_eq!(too_long.reason, R::LineTooLong);
        covered.insert(R::LineTooLong);
        // Not a decoding outcome: carrier adapters refuse payloads (tested in `carriers`).
        covered.insert(R::CarrierPayload);
        let missing: Vec<_> = R::ALL.iter().filter(|r| !covered.contains(r)).collect();
        assert!(missing.is_empty(), "reasons without a case: {missing:?}");
    }

    #[test]
    fn decimal_amounts_are_exact() {
        let cases =
            [("0", Some(0)), ("12.5", Some(125_000)), ("-3.0001", Some(-30_001)), ("1.", None), (".5", None), ("1e3", None), ("", None), ("1.23456", None)];
        for (text, expected) in cases {
            assert_eq!(parse_decimal(text), expected, "{text}");
        }
    }

    #[test]
    fn escaped_strings_and_keys_decode() {
        let line = r#"{"event_id":"e\u0031","type":"order.cancelled","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o1","reas\u006fn":"changed \"mind\""}"#;
        let event = decode(line).unwrap();
        assert_eq!(event.event_id, "e1");
        let EventBody::Order(OrderEvent { detail: OrderDetail::Cancelled { reason }, .. }) = event.body else { panic!() };
        assert_eq!(reason.as_deref(), Some("changed \"mind\""));
    }
}
