//! Why a line was refused: a machine-readable reason, the field it concerns, and a message
//! for people. Rejections are data (they go to the quarantine table), not errors.

use serde::Serialize;

/// The machine-readable reason a line was quarantined. The snake_case name is what the
/// quarantine table's `reason` column and the ingest summary show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// The line is not valid JSON.
    NotJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// The line is longer than the configured limit.
    LineTooLong,
    /// A required field is absent or `null`.
    MissingField,
    /// `type` is not one of the contract's event types.
    UnknownType,
    /// A field has the wrong JSON type (a number where a string is expected, ...).
    WrongType,
    /// A timestamp is a date and time without a `Z` or `±hh:mm` offset.
    TimestampWithoutOffset,
    /// A timestamp is not RFC 3339.
    BadTimestamp,
    /// An identifier is the empty string.
    EmptyIdentifier,
    /// An identifier is longer than 128 bytes.
    IdentifierTooLong,
    /// A money amount is not a decimal string, or its currency is not an ISO 4217 code.
    BadMoney,
    /// `csat` is outside 1..=5.
    CsatOutOfRange,
    /// A value of a closed vocabulary (status, category, ...) is not in it.
    UnknownEnumValue,
    /// A number outside its range (negative item count, latitude over 90, ...).
    OutOfRange,
    /// A window whose `from` is after its `to`.
    InvertedWindow,
    /// A raw carrier payload (`POST /v1/carriers/{carrier}/webhook`) its adapter refused:
    /// the field says why (`unparsable_payload`, `missing_tracking_number`, ...).
    CarrierPayload,
}

impl RejectReason {
    pub const ALL: &'static [RejectReason] = &[
        RejectReason::NotUtf8,
        RejectReason::NotJson,
        RejectReason::NotAnObject,
        RejectReason::LineTooLong,
        RejectReason::MissingField,
        RejectReason::UnknownType,
        RejectReason::WrongType,
        RejectReason::TimestampWithoutOffset,
        RejectReason::BadTimestamp,
        RejectReason::EmptyIdentifier,
        RejectReason::IdentifierTooLong,
        RejectReason::BadMoney,
        RejectReason::CsatOutOfRange,
        RejectReason::UnknownEnumValue,
        RejectReason::OutOfRange,
        RejectReason::InvertedWindow,
        RejectReason::CarrierPayload,
    ];

    /// The snake_case name, as stored in the quarantine table.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotUtf8 => "not_utf8",
            RejectReason::NotJson => "not_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::MissingField => "missing_field",
            RejectReason::UnknownType => "unknown_type",
            RejectReason::WrongType => "wrong_type",
            RejectReason::TimestampWithoutOffset => "timestamp_without_offset",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::EmptyIdentifier => "empty_identifier",
            RejectReason::IdentifierTooLong => "identifier_too_long",
            RejectReason::BadMoney => "bad_money",
            RejectReason::CsatOutOfRange => "csat_out_of_range",
            RejectReason::UnknownEnumValue => "unknown_enum_value",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::InvertedWindow => "inverted_window",
            RejectReason::CarrierPayload => "carrier_payload",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused line: why, where in the line, and in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub reason: RejectReason,
    /// The field concerned, as a dotted path (`total.amount`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for people: what was wrong and, where useful, what was found.
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection { reason, field: None, detail: detail.into() }
    }

    pub fn at(reason: RejectReason, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Rejection { reason, field: Some(field.into()), detail: detail.into() }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{} ({}): {}", self.reason, field, self.detail),
            None => write!(f, "{}: {}", self.reason, self.detail),
        }
    }
}
