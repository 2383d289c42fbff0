//! The lake's tables and their Arrow schemas, and builders that turn events into batches.
//!
//! Every event table has the same frame: identity and time first (`event_id`, `type`,
//! `occurred_at`, `occurred_at_offset_minutes`, `event_date`, `merchant_id`), then the
//! type-specific columns (null where a type does not carry them), then `extra` (unknown
//! fields as JSON text) and the lineage (`source`, `source_position`, `ingested_at`) that
//! says where each row came from. `event_date` (the UTC date of `occurred_at`) is the
//! partition column.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, Date32Builder, Decimal128Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder,
    ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use super::*;

/// The tables orderpulse writes into the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LakeTable {
    OrderEvents,
    CarrierEvents,
    TicketEvents,
    /// Lines that failed validation, with the reason and the raw bytes.
    Quarantine,
}

impl LakeTable {
    pub const ALL: [LakeTable; 4] = [LakeTable::OrderEvents, LakeTable::CarrierEvents, LakeTable::TicketEvents, LakeTable::Quarantine];

    /// The tables that hold valid events.
    pub const EVENTS: [LakeTable; 3] = [LakeTable::OrderEvents, LakeTable::CarrierEvents, LakeTable::TicketEvents];

    /// The table name, also its folder under the lake root and its SQL name.
    pub const fn name(self) -> &'static str {
        match self {
            LakeTable::OrderEvents => "order_events",
            LakeTable::CarrierEvents => "carrier_events",
            LakeTable::TicketEvents => "ticket_events",
            LakeTable::Quarantine => "quarantine",
        }
    }

    pub fn for_stream(stream: Stream) -> Self {
        match stream {
            Stream::Orders => LakeTable::OrderEvents,
            Stream::Carrier => LakeTable::CarrierEvents,
            Stream::Tickets => LakeTable::TicketEvents,
        }
    }

    /// Partition columns: every table is partitioned by the UTC date of its event time
    /// (for quarantine, the date the line was received).
    pub fn partition_columns(self) -> &'static [&'static str] {
        &["event_date"]
    }

    pub fn schema(self) -> SchemaRef {
        let middle: Vec<Field> = match self {
            LakeTable::OrderEvents => vec![
                utf8("order_id", false),
                utf8("channel", true),
                utf8("customer_id", true),
                utf8("customer_country", true),
                utf8("customer_region", true),
                utf8("customer_postal_code", true),
                utf8("customer_email", true),
                utf8("customer_phone", true),
                Field::new("customer_notify", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
                Field::new("items", DataType::Int32, true),
                Field::new("total_amount", DataType::Decimal128(MONEY_PRECISION, Money::SCALE as i8), true),
                utf8("total_currency", true),
                timestamp("ship_by", true),
                timestamp("promised_from", true),
                timestamp("promised_to", true),
                utf8("warehouse", true),
                utf8("carrier", true),
                utf8("tracking_number", true),
                utf8("service_level", true),
                utf8("reason", true),
            ],
            LakeTable::CarrierEvents => vec![
                utf8("carrier", false),
                utf8("tracking_number", false),
                utf8("order_id", true),
                utf8("status", false),
                utf8("sub_status", true),
                utf8("raw_status", true),
                utf8("description", true),
                utf8("location_city", true),
                utf8("location_region", true),
                utf8("location_country", true),
                utf8("location_postal_code", true),
                Field::new("location_lat", DataType::Float64, true),
                Field::new("location_lon", DataType::Float64, true),
                timestamp("eta_from", true),
                timestamp("eta_to", true),
            ],
            LakeTable::TicketEvents => vec![
                utf8("ticket_id", false),
                utf8("order_id", true),
                utf8("category", true),
                utf8("channel", true),
                utf8("priority", true),
                utf8("department", true),
                utf8("resolution", true),
                Field::new("csat", DataType::Int8, true),
            ],
            LakeTable::Quarantine => {
                return Arc::new(Schema::new(vec![
                    timestamp("received_at", false),
                    Field::new("event_date", DataType::Date32, false),
                    utf8("source", false),
                    Field::new("source_position", DataType::Int64, false),
                    utf8("reason", false),
                    utf8("field", true),
                    utf8("detail", false),
                    Field::new("raw", DataType::Binary, false),
                ]));
            }
        };
        let mut fields = vec![
            utf8("event_id", false),
            utf8("type", false),
            timestamp("occurred_at", false),
            Field::new("occurred_at_offset_minutes", DataType::Int16, false),
            Field::new("event_date", DataType::Date32, false),
            utf8("merchant_id", !matches!(self, LakeTable::OrderEvents | LakeTable::TicketEvents)),
        ];
        fields.extend(middle);
        fields.extend([utf8("extra", true), utf8("source", false), Field::new("source_position", DataType::Int64, false), timestamp("ingested_at", false)]);
        Arc::new(Schema::new(fields))
    }
}

impl std::fmt::Display for LakeTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Money amounts: 18 digits at [`Money::SCALE`] places fits any `i64` minor amount.
const MONEY_PRECISION: u8 = 18;

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), nullable)
}

/// Where a row came from: the source, its position there, and when it was ingested.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    pub source: &'a str,
    pub position: i64,
    pub ingested_at_micros: i64,
}

/// Columns shared by every event table.
#[derive(Default)]
struct FrameColumns {
    event_id: StringBuilder,
    event_type: StringBuilder,
    occurred_at: TimestampMicrosecondBuilder,
    offset_minutes: Int16Builder,
    event_date: Date32Builder,
    merchant_id: StringBuilder,
    extra: StringBuilder,
    source: StringBuilder,
    position: Int64Builder,
    ingested_at: TimestampMicrosecondBuilder,
}

impl FrameColumns {
    fn append(&mut self, event: &Event, lineage: &Lineage<'_>) {
        self.event_id.append_value(&event.event_id);
        self.event_type.append_value(event.event_type().as_str());
        self.occurred_at.append_value(event.occurred_at.micros);
        self.offset_minutes.append_value(event.occurred_at.offset_minutes);
        self.event_date.append_value(event.occurred_at.utc_date_days());
        self.merchant_id.append_option(event.merchant_id.as_deref());
        self.extra.append_option(event.extra.as_deref());
        self.source.append_value(lineage.source);
        self.position.append_value(lineage.position);
        self.ingested_at.append_value(lineage.ingested_at_micros);
    }

    /// Assembles the batch: the frame's head, the table's own columns, the frame's tail.
    fn finish(mut self, schema: SchemaRef, middle: Vec<ArrayRef>) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.occurred_at.finish().with_timezone("UTC")),
            Arc::new(self.offset_minutes.finish()),
            Arc::new(self.event_date.finish()),
            Arc::new(self.merchant_id.finish()),
        ];
        columns.extend(middle);
        columns.extend([
            Arc::new(self.extra.finish()) as ArrayRef,
            Arc::new(self.source.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.ingested_at.finish().with_timezone("UTC")),
        ]);
        RecordBatch::try_new(schema, columns)
    }
}

fn finish_timestamps(mut b: TimestampMicrosecondBuilder) -> ArrayRef {
    Arc::new(b.finish().with_timezone("UTC"))
}

/// Accumulates `order_events` rows.
#[derive(Default)]
pub struct OrderRows {
    frame: FrameColumns,
    order_id: StringBuilder,
    channel: StringBuilder,
    customer_id: StringBuilder,
    customer_country: StringBuilder,
    customer_region: StringBuilder,
    customer_postal_code: StringBuilder,
    customer_email: StringBuilder,
    customer_phone: StringBuilder,
    customer_notify: ListBuilder<StringBuilder>,
    items: Int32Builder,
    total_amount: Decimal128Builder,
    total_currency: StringBuilder,
    ship_by: TimestampMicrosecondBuilder,
    promised_from: TimestampMicrosecondBuilder,
    promised_to: TimestampMicrosecondBuilder,
    warehouse: StringBuilder,
    carrier: StringBuilder,
    tracking_number: StringBuilder,
    service_level: StringBuilder,
    reason: StringBuilder,
}

impl OrderRows {
    pub fn append(&mut self, event: &Event, order: &OrderEvent, lineage: &Lineage<'_>) {
        self.frame.append(event, lineage);
        self.order_id.append_value(&order.order_id);
        let created = match &order.detail {
            OrderDetail::Created(created) => Some(created.as_ref()),
            _ => None,
        };
        let customer = created.map(|c| &c.customer);
        self.channel.append_option(created.and_then(|c| c.channel.as_deref()));
        self.customer_id.append_option(customer.and_then(|c| c.id.as_deref()));
        self.customer_country.append_option(customer.and_then(|c| c.country.as_deref()));
        self.customer_region.append_option(customer.and_then(|c| c.region.as_deref()));
        self.customer_postal_code.append_option(customer.and_then(|c| c.postal_code.as_deref()));
        self.customer_email.append_option(customer.and_then(|c| c.email.as_deref()));
        self.customer_phone.append_option(customer.and_then(|c| c.phone.as_deref()));
        match customer {
            Some(c) if !c.notify.is_empty() => {
                for channel in &c.notify {
                    self.customer_notify.values().append_value(channel.as_str());
                }
                self.customer_notify.append(true);
            }
            _ => self.customer_notify.append(false),
        }
        self.items.append_option(created.and_then(|c| c.items));
        let total = created.and_then(|c| c.total);
        self.total_amount.append_option(total.map(|m| i128::from(m.minor)));
        self.total_currency.append_option(total.as_ref().map(Money::currency_str));
        self.ship_by.append_option(created.and_then(|c| c.ship_by).map(|t| t.micros));
        let promised = created.and_then(|c| c.promised_delivery);
        self.promised_from.append_option(promised.map(|w| w.from.micros));
        self.promised_to.append_option(promised.map(|w| w.to.micros));
        let (warehouse, shipment, reason) = match &order.detail {
            OrderDetail::FulfillmentStarted { warehouse } => (warehouse.as_deref(), None, None),
            OrderDetail::Shipped(shipment) => (None, Some(shipment), None),
            OrderDetail::Cancelled { reason } | OrderDetail::ReturnRequested { reason } => (None, None, reason.as_deref()),
            _ => (None, None, None),
        };
        self.warehouse.append_option(warehouse);
        self.carrier.append_option(shipment.map(|s| s.carrier.as_str()));
        self.tracking_number.append_option(shipment.map(|s| s.tracking_number.as_str()));
        self.service_level.append_option(shipment.and_then(|s| s.service_level.as_deref()));
        self.reason.append_option(reason);
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.frame.event_id.len()
    }

    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let amounts = self.total_amount.finish().with_precision_and_scale(MONEY_PRECISION, Money::SCALE as i8)?;
        let middle: Vec<ArrayRef> = vec![
            Arc::new(self.order_id.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.customer_country.finish()),
            Arc::new(self.customer_region.finish()),
            Arc::new(self.customer_postal_code.finish()),
            Arc::new(self.customer_email.finish()),
            Arc::new(self.customer_phone.finish()),
            Arc::new(self.customer_notify.finish()),
            Arc::new(self.items.finish()),
            Arc::new(amounts),
            Arc::new(self.total_currency.finish()),
            finish_timestamps(self.ship_by),
            finish_timestamps(self.promised_from),
            finish_timestamps(self.promised_to),
            Arc::new(self.warehouse.finish()),
            Arc::new(self.carrier.finish()),
            Arc::new(self.tracking_number.finish()),
            Arc::new(self.service_level.finish()),
            Arc::new(self.reason.finish()),
        ];
        self.frame.finish(LakeTable::OrderEvents.schema(), middle)
    }
}

/// Accumulates `carrier_events` rows.
#[derive(Default)]
pub struct CarrierRows {
    frame: FrameColumns,
    carrier: StringBuilder,
    tracking_number: StringBuilder,
    order_id: StringBuilder,
    status: StringBuilder,
    sub_status: StringBuilder,
    raw_status: StringBuilder,
    description: StringBuilder,
    city: StringBuilder,
    region: StringBuilder,
    country: StringBuilder,
    postal_code: StringBuilder,
    lat: Float64Builder,
    lon: Float64Builder,
    eta_from: TimestampMicrosecondBuilder,
    eta_to: TimestampMicrosecondBuilder,
}

impl CarrierRows {
    pub fn append(&mut self, event: &Event, scan: &CarrierScan, lineage: &Lineage<'_>) {
        self.frame.append(event, lineage);
        self.carrier.append_value(&scan.carrier);
        self.tracking_number.append_value(&scan.tracking_number);
        self.order_id.append_option(scan.order_id.as_deref());
        self.status.append_value(scan.status.as_str());
        self.sub_status.append_option(scan.sub_status.map(SubStatus::as_str));
        self.raw_status.append_option(scan.raw_status.as_deref());
        self.description.append_option(scan.description.as_deref());
        self.city.append_option(scan.location.city.as_deref());
        self.region.append_option(scan.location.region.as_deref());
        self.country.append_option(scan.location.country.as_deref());
        self.postal_code.append_option(scan.location.postal_code.as_deref());
        self.lat.append_option(scan.location.lat);
        self.lon.append_option(scan.location.lon);
        self.eta_from.append_option(scan.estimated_delivery.map(|w| w.from.micros));
        self.eta_to.append_option(scan.estimated_delivery.map(|w| w.to.micros));
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.frame.event_id.len()
    }

    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let middle: Vec<ArrayRef> = vec![
            Arc::new(self.carrier.finish()),
            Arc::new(self.tracking_number.finish()),
            Arc::new(self.order_id.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.sub_status.finish()),
            Arc::new(self.raw_status.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.postal_code.finish()),
            Arc::new(self.lat.finish()),
            Arc::new(self.lon.finish()),
            finish_timestamps(self.eta_from),
            finish_timestamps(self.eta_to),
        ];
        self.frame.finish(LakeTable::CarrierEvents.schema(), middle)
    }
}

/// Accumulates `ticket_events` rows.
#[derive(Default)]
pub struct TicketRows {
    frame: FrameColumns,
    ticket_id: StringBuilder,
    order_id: StringBuilder,
    category: StringBuilder,
    channel: StringBuilder,
    priority: StringBuilder,
    department: StringBuilder,
    resolution: StringBuilder,
    csat: Int8Builder,
}

impl TicketRows {
    pub fn append(&mut self, event: &Event, ticket: &TicketEvent, lineage: &Lineage<'_>) {
        self.frame.append(event, lineage);
        self.ticket_id.append_value(&ticket.ticket_id);
        let (mut order_id, mut category, mut channel, mut priority) = (None, None, None, None);
        let (mut department, mut resolution, mut csat) = (None, None, None);
        match &ticket.detail {
            TicketDetail::Opened { order_id: o, category: c, channel: ch, priority: p } => {
                (order_id, category, channel, priority) = (o.as_deref(), *c, *ch, *p);
            }
            TicketDetail::Escalated { department: d, priority: p } => {
                (department, priority) = (d.as_deref(), *p);
            }
            TicketDetail::Resolved { resolution: r, csat: c } => {
                (resolution, csat) = (*r, *c);
            }
        }
        self.order_id.append_option(order_id);
        self.category.append_option(category.map(TicketCategory::as_str));
        self.channel.append_option(channel.map(TicketChannel::as_str));
        self.priority.append_option(priority.map(Priority::as_str));
        self.department.append_option(department);
        self.resolution.append_option(resolution.map(Resolution::as_str));
        self.csat.append_option(csat.map(|c| c as i8));
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.frame.event_id.len()
    }

    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let middle: Vec<ArrayRef> = vec![
            Arc::new(self.ticket_id.finish()),
            Arc::new(self.order_id.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.channel.finish()),
            Arc::new(self.priority.finish()),
            Arc::new(self.department.finish()),
            Arc::new(self.resolution.finish()),
            Arc::new(self.csat.finish()),
        ];
        self.frame.finish(LakeTable::TicketEvents.schema(), middle)
    }
}

/// Accumulates `quarantine` rows.
#[derive(Default)]
pub struct QuarantineRows {
    received_at: TimestampMicrosecondBuilder,
    event_date: Date32Builder,
    source: StringBuilder,
    position: Int64Builder,
    reason: StringBuilder,
    field: StringBuilder,
    detail: StringBuilder,
    raw: BinaryBuilder,
}

impl QuarantineRows {
    pub fn append(&mut self, raw: &[u8], rejection: &Rejection, lineage: &Lineage<'_>) {
        let received = Timestamp::from_micros_utc(lineage.ingested_at_micros);
        self.received_at.append_value(received.micros);
        self.event_date.append_value(received.utc_date_days());
        self.source.append_value(lineage.source);
        self.position.append_value(lineage.position);
        self.reason.append_value(rejection.reason.as_str());
        self.field.append_option(rejection.field.as_deref());
        self.detail.append_value(&rejection.detail);
        self.raw.append_value(raw);
    }

    /// Rows appended so far.
    pub fn rows(&self) -> usize {
        self.source.len()
    }

    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(
            LakeTable::Quarantine.schema(),
            vec![
                finish_timestamps(self.received_at),
                Arc::new(self.event_date.finish()),
                Arc::new(self.source.finish()),
                Arc::new(self.position.finish()),
                Arc::new(self.reason.finish()),
                Arc::new(self.field.finish()),
                Arc::new(self.detail.finish()),
                Arc::new(self.raw.finish()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_produce_batches_matching_their_table_schema() {
        let limits = DecodeLimits::default();
        let lineage = Lineage { source: "test", position: 7, ingested_at_micros: 1 };
        let created = decode_line(br#"{"event_id":"e1","type":"order.created","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o1","customer":{"notify":["email"]},"total":{"amount":"9.99","currency":"USD"}}"#, &limits).unwrap();
        let shipped = decode_line(br#"{"event_id":"e2","type":"order.shipped","occurred_at":"2026-11-21T10:00:00Z","merchant_id":"m1","order_id":"o1","carrier":"ups","tracking_number":"1Z9"}"#, &limits).unwrap();
        let mut orders = OrderRows::default();
        for event in [&created, &shipped] {
            let EventBody::Order(order) = &event.body else { unreachable!() };
            orders.append(event, order, &lineage);
        }
        let batch = orders.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), LakeTable::OrderEvents.schema());

        let mut quarantine = QuarantineRows::default();
        quarantine.append(b"nope", &Rejection::new(RejectReason::NotJson, "x"), &lineage);
        let batch = quarantine.finish().unwrap();
        assert_eq!(batch.schema(), LakeTable::Quarantine.schema());
        assert_eq!(TicketRows::default().finish().unwrap().schema(), LakeTable::TicketEvents.schema());
        assert_eq!(CarrierRows::default().finish().unwrap().schema(), LakeTable::CarrierEvents.schema());
    }

    /// The `orders` view reads the checkout's columns with a plain `max()` over all of an
    /// order's events: only `order.created` may fill them.
    #[test]
    fn only_order_created_fills_the_checkout_columns() {
        let limits = DecodeLimits::default();
        let lineage = Lineage { source: "test", position: 1, ingested_at_micros: 1 };
        let common = r#""occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o1""#;
        let created = format!(
            r#"{{"event_id":"c","type":"order.created",{common},"channel":"web","items":2,"ship_by":"2026-11-21T10:00:00Z","customer":{{"country":"DE","region":"BE"}},"promised_delivery":{{"from":"2026-11-22T00:00:00Z","to":"2026-11-23T00:00:00Z"}}}}"#
        );
        // Checkout fields on other events are not theirs to set: they stay empty.
        let stray = r#""channel":"app","items":9,"customer":{"country":"FR","region":"PA"}"#;
        let others = [
            r#""type":"order.paid""#,
            r#""type":"order.fulfillment_started","warehouse":"w1""#,
            r#""type":"order.shipped","carrier":"ups","tracking_number":"1Z9""#,
            r#""type":"order.completed""#,
            r#""type":"order.cancelled","reason":"customer""#,
            r#""type":"order.return_requested","reason":"size""#,
        ];
        let lines: Vec<String> = std::iter::once(created)
            .chain(others.iter().enumerate().map(|(i, fields)| format!(r#"{{"event_id":"e{i}",{fields},{common},{stray}}}"#)))
            .collect();
        let mut orders = OrderRows::default();
        for line in &lines {
            let event = decode_line(line.as_bytes(), &limits).unwrap();
            let EventBody::Order(order) = &event.body else { unreachable!() };
            orders.append(&event, order, &lineage);
        }
        let batch = orders.finish().unwrap();
        for column in ["channel", "items", "ship_by", "customer_country", "customer_region", "promised_from", "promised_to"] {
            let values = batch.column_by_name(column).unwrap();
            let filled: Vec<bool> = (0..batch.num_rows()).map(|row| values.is_valid(row)).collect();
            assert_eq!(filled, [true, false, false, false, false, false, false], "{column}");
        }
    }
}
