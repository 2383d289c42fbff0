//! The event contract (`shared/spec/events.md`) as Rust types.
//!
//! Every input line becomes either an [`Event`] or a [`Rejection`](reject::Rejection);
//! nothing in between. Statuses, categories and other closed vocabularies are enums whose
//! serde names are exactly the contract's strings, so the rest of the pipeline never
//! compares strings.

pub mod decode;
pub mod reject;
pub mod rows;
pub mod schema;
pub mod timestamp;
mod vocab;

pub use decode::{decode_line, DecodeLimits};
pub use reject::{RejectReason, Rejection};
pub use timestamp::Timestamp;
pub use vocab::*;

/// One validated input event, whichever stream it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Globally unique; the deduplication key.
    pub event_id: String,
    /// When it happened in the world (event time), with the offset it was reported in.
    pub occurred_at: Timestamp,
    /// Required on order and ticket events; carrier scans may omit it (inherited from the order).
    pub merchant_id: Option<String>,
    /// The type-specific part.
    pub body: EventBody,
    /// Fields the contract does not name, kept as a JSON object text (nested unknown fields
    /// under a dotted key such as `customer.loyalty_tier`). `None` when there were none.
    pub extra: Option<String>,
}

impl Event {
    /// The contract's `type` of this event.
    pub fn event_type(&self) -> EventType {
        match &self.body {
            EventBody::Order(order) => order.detail.event_type(),
            EventBody::Carrier(_) => EventType::CarrierScan,
            EventBody::Ticket(ticket) => ticket.detail.event_type(),
        }
    }

    /// The stream (and so the lake table) this event belongs to.
    pub fn stream(&self) -> Stream {
        self.event_type().stream()
    }
}

/// The type-specific part of an event, one variant per stream.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Order(OrderEvent),
    Carrier(CarrierScan),
    Ticket(TicketEvent),
}

/// An event of the `orders` stream.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    pub order_id: String,
    pub detail: OrderDetail,
}

/// What an order event says beyond its order id.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderDetail {
    Created(Box<OrderCreated>),
    Paid,
    FulfillmentStarted { warehouse: Option<String> },
    Shipped(Shipment),
    Completed,
    Cancelled { reason: Option<String> },
    ReturnRequested { reason: Option<String> },
}

impl OrderDetail {
    pub fn event_type(&self) -> EventType {
        match self {
            OrderDetail::Created(_) => EventType::OrderCreated,
            OrderDetail::Paid => EventType::OrderPaid,
            OrderDetail::FulfillmentStarted { .. } => EventType::OrderFulfillmentStarted,
            OrderDetail::Shipped(_) => EventType::OrderShipped,
            OrderDetail::Completed => EventType::OrderCompleted,
            OrderDetail::Cancelled { .. } => EventType::OrderCancelled,
            OrderDetail::ReturnRequested { .. } => EventType::OrderReturnRequested,
        }
    }
}

/// `order.created`: everything known at checkout.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrderCreated {
    pub channel: Option<String>,
    pub customer: Customer,
    pub items: Option<i32>,
    pub total: Option<Money>,
    /// The merchant's own shipping SLA.
    pub ship_by: Option<Timestamp>,
    /// The delivery window shown to the customer at checkout.
    pub promised_delivery: Option<Window>,
}

/// The customer of an order, as far as the checkout told us.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Customer {
    pub id: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub notify: Vec<NotifyChannel>,
}

/// `order.shipped`: one parcel handed to a carrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
    pub service_level: Option<String>,
}

/// A decimal amount of money, held exactly as an integer number of ten-thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// The amount times 10^[`Money::SCALE`].
    pub minor: i64,
    /// ISO 4217 code, three upper-case letters.
    pub currency: [u8; 3],
}

impl Money {
    /// Decimal places kept; more are refused as bad money rather than rounded.
    pub const SCALE: u32 = 4;

    pub fn currency_str(&self) -> &str {
        // Validated as three ASCII upper-case letters on construction.
        std::str::from_utf8(&self.currency).unwrap_or("???")
    }
}

/// A time window such as a promised delivery window or a carrier ETA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// A normalised carrier tracking scan (`carrier.scan`).
#[derive(Debug, Clone, PartialEq)]
pub struct CarrierScan {
    pub carrier: String,
    pub tracking_number: String,
    pub order_id: Option<String>,
    pub status: ParcelStatus,
    pub sub_status: Option<SubStatus>,
    pub raw_status: Option<String>,
    pub description: Option<String>,
    pub location: Location,
    pub estimated_delivery: Option<Window>,
}

/// Where a scan happened; every part optional.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Location {
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// An event of the `tickets` stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketEvent {
    pub ticket_id: String,
    pub detail: TicketDetail,
}

/// What a ticket event says beyond its ticket id.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketDetail {
    Opened {
        order_id: Option<String>,
        category: Option<TicketCategory>,
        channel: Option<TicketChannel>,
        priority: Option<Priority>,
    },
    Escalated {
        department: Option<String>,
        priority: Option<Priority>,
    },
    Resolved {
        resolution: Option<Resolution>,
        /// Customer satisfaction, 1 to 5.
        csat: Option<u8>,
    },
}

impl TicketDetail {
    pub fn event_type(&self) -> EventType {
        match self {
            TicketDetail::Opened { .. } => EventType::TicketOpened,
            TicketDetail::Escalated { .. } => EventType::TicketEscalated,
            TicketDetail::Resolved { .. } => EventType::TicketResolved,
        }
    }
}
