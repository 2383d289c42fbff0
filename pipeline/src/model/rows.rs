//! Rows of the event tables back into [`Event`]s: how the stream processor reads the lake.
//!
//! The inverse of the builders in [`super::schema`] for `order_events` and
//! `carrier_events`. Timestamps other than `occurred_at` are stored as UTC instants, so
//! they come back in UTC; everything else comes back as it went in.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int16Type, Int32Type, TimeUnit, TimestampMicrosecondType};

use super::schema::LakeTable;
use super::*;

/// A row that cannot be read back: a column missing or of the wrong type, or a value
/// outside the contract. Names the table, column and row.
#[derive(Debug, thiserror::Error)]
#[error("{table}: row {row}, column {column}: {problem}")]
pub struct RowError {
    pub table: LakeTable,
    pub column: &'static str,
    pub row: usize,
    pub problem: String,
}

/// Typed access to one batch's columns by name.
struct Columns<'a> {
    table: LakeTable,
    batch: &'a RecordBatch,
}

/// A row's frame: event id, occurred at, merchant id, extra (JSON text).
type Frame = (String, Timestamp, Option<String>, Option<String>);

impl<'a> Columns<'a> {
    fn error(&self, column: &'static str, row: usize, problem: impl Into<String>) -> RowError {
        RowError { table: self.table, column, row, problem: problem.into() }
    }

    fn column(&self, name: &'static str, expected: &DataType) -> Result<&'a dyn Array, RowError> {
        let array = self.batch.column_by_name(name).ok_or_else(|| self.error(name, 0, "no such column"))?;
        let same = match (array.data_type(), expected) {
            (DataType::Timestamp(a, _), DataType::Timestamp(b, _)) => a == b,
            // Parquet names a list's items `element`, Arrow `item`: only the type matters.
            (DataType::List(a), DataType::List(b)) => a.data_type() == b.data_type(),
            (a, b) => a == b,
        };
        if !same {
            return Err(self.error(name, 0, format!("is {}, expected {expected}", array.data_type())));
        }
        Ok(array.as_ref())
    }

    fn strings(&self, name: &'static str) -> Result<impl Fn(usize) -> Option<String> + 'a, RowError> {
        let array = self.column(name, &DataType::Utf8)?.as_string::<i32>();
        Ok(move |row| array.is_valid(row).then(|| array.value(row).to_owned()))
    }

    fn times(&self, name: &'static str) -> Result<impl Fn(usize) -> Option<Timestamp> + 'a, RowError> {
        let array = self.column(name, &DataType::Timestamp(TimeUnit::Microsecond, None))?.as_primitive::<TimestampMicrosecondType>();
        Ok(move |row| array.is_valid(row).then(|| Timestamp::from_micros_utc(array.value(row))))
    }

    fn required(&self, name: &'static str, row: usize, value: Option<String>) -> Result<String, RowError> {
        value.ok_or_else(|| self.error(name, row, "null in a required column"))
    }

    /// The frame every event table shares: id, time with its offset, merchant, extra.
    fn frame(&self) -> Result<impl Fn(usize) -> Result<Frame, RowError> + '_, RowError> {
        let event_id = self.strings("event_id")?;
        let occurred_at = self.times("occurred_at")?;
        let offsets = self.column("occurred_at_offset_minutes", &DataType::Int16)?.as_primitive::<Int16Type>();
        let merchant = self.strings("merchant_id")?;
        let extra = self.strings("extra")?;
        Ok(move |row| {
            let mut at = occurred_at(row).ok_or_else(|| self.error("occurred_at", row, "null in a required column"))?;
            at.offset_minutes = offsets.value(row);
            Ok((self.required("event_id", row, event_id(row))?, at, merchant(row), extra(row)))
        })
    }
}

fn window(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<Window> {
    Some(Window { from: from?, to: to? })
}

/// Reads the events of one `order_events` or `carrier_events` batch; other tables have no
/// reader (the stream processor does not need them).
pub fn events_from_batch(table: LakeTable, batch: &RecordBatch) -> Result<Vec<Event>, RowError> {
    let c = Columns { table, batch };
    match table {
        LakeTable::OrderEvents => order_events(&c),
        LakeTable::CarrierEvents => carrier_events(&c),
        _ => Err(c.error("type", 0, "the stream processor reads order_events and carrier_events only")),
    }
}

fn order_events(c: &Columns<'_>) -> Result<Vec<Event>, RowError> {
    let frame = c.frame()?;
    let event_type = c.strings("type")?;
    let order_id = c.strings("order_id")?;
    let channel = c.strings("channel")?;
    let customer_id = c.strings("customer_id")?;
    let country = c.strings("customer_country")?;
    let region = c.strings("customer_region")?;
    let postal_code = c.strings("customer_postal_code")?;
    let email = c.strings("customer_email")?;
    let phone = c.strings("customer_phone")?;
    let notify_type = DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new("item", DataType::Utf8, true)));
    let notify = c.column("customer_notify", &notify_type)?.as_list::<i32>();
    let items = c.column("items", &DataType::Int32)?.as_primitive::<Int32Type>();
    let amount = c.batch.column_by_name("total_amount").ok_or_else(|| c.error("total_amount", 0, "no such column"))?;
    let amount = amount.as_primitive_opt::<Decimal128Type>().ok_or_else(|| c.error("total_amount", 0, "not a decimal"))?;
    let currency = c.strings("total_currency")?;
    let ship_by = c.times("ship_by")?;
    let promised_from = c.times("promised_from")?;
    let promised_to = c.times("promised_to")?;
    let warehouse = c.strings("warehouse")?;
    let carrier = c.strings("carrier")?;
    let tracking = c.strings("tracking_number")?;
    let service_level = c.strings("service_level")?;
    let reason = c.strings("reason")?;

    (0..c.batch.num_rows())
        .map(|row| {
            let (event_id, occurred_at, merchant_id, extra) = frame(row)?;
            let type_text = c.required("type", row, event_type(row))?;
            let kind = EventType::parse(&type_text).ok_or_else(|| c.error("type", row, format!("unknown type {type_text:?}")))?;
            let detail = match kind {
                EventType::OrderCreated => {
                    let notify = if notify.is_valid(row) {
                        let values = notify.value(row);
                        let values = values.as_string::<i32>();
                        values.iter().flatten().filter_map(NotifyChannel::parse).collect()
                    } else {
                        Vec::new()
                    };
                    let total = match (amount.is_valid(row), currency(row)) {
                        (true, Some(code)) => {
                            let minor = i64::try_from(amount.value(row)).map_err(|_| c.error("total_amount", row, "out of range"))?;
                            let bytes: [u8; 3] = code.as_bytes().try_into().map_err(|_| c.error("total_currency", row, "not three letters"))?;
                            Some(Money { minor, currency: bytes })
                        }
                        _ => None,
                    };
                    OrderDetail::Created(Box::new(OrderCreated {
                        channel: channel(row),
                        customer: Customer {
                            id: customer_id(row),
                            country: country(row),
                            region: region(row),
                            postal_code: postal_code(row),
                            email: email(row),
                            phone: phone(row),
                            notify,
                        },
                        items: items.is_valid(row).then(|| items.value(row)),
                        total,
                        ship_by: ship_by(row),
                        promised_delivery: window(promised_from(row), promised_to(row)),
                    }))
                }
                EventType::OrderPaid => OrderDetail::Paid,
                EventType::OrderFulfillmentStarted => OrderDetail::FulfillmentStarted { warehouse: warehouse(row) },
                EventType::OrderShipped => OrderDetail::Shipped(Shipment {
                    carrier: c.required("carrier", row, carrier(row))?,
                    tracking_number: c.required("tracking_number", row, tracking(row))?,
                    service_level: service_level(row),
                }),
                EventType::OrderCompleted => OrderDetail::Completed,
                EventType::OrderCancelled => OrderDetail::Cancelled { reason: reason(row) },
                EventType::OrderReturnRequested => OrderDetail::ReturnRequested { reason: reason(row) },
                other => return Err(c.error("type", row, format!("{other} is not an order event"))),
            };
            let order_id = c.required("order_id", row, order_id(row))?;
            Ok(Event { event_id, occurred_at, merchant_id, body: EventBody::Order(OrderEvent { order_id, detail }), extra })
        })
        .collect()
}

fn carrier_events(c: &Columns<'_>) -> Result<Vec<Event>, RowError> {
    let frame = c.frame()?;
    let carrier = c.strings("carrier")?;
    let tracking = c.strings("tracking_number")?;
    let order_id = c.strings("order_id")?;
    let status = c.strings("status")?;
    let sub_status = c.strings("sub_status")?;
    let raw_status = c.strings("raw_status")?;
    let description = c.strings("description")?;
    let city = c.strings("location_city")?;
    let region = c.strings("location_region")?;
    let country = c.strings("location_country")?;
    let postal_code = c.strings("location_postal_code")?;
    let lat = c.column("location_lat", &DataType::Float64)?.as_primitive::<Float64Type>();
    let lon = c.column("location_lon", &DataType::Float64)?.as_primitive::<Float64Type>();
    let eta_from = c.times("eta_from")?;
    let eta_to = c.times("eta_to")?;

    (0..c.batch.num_rows())
        .map(|row| {
            let (event_id, occurred_at, merchant_id, extra) = frame(row)?;
            let status_text = c.required("status", row, status(row))?;
            let status = ParcelStatus::parse(&status_text).ok_or_else(|| c.error("status", row, format!("unknown status {status_text:?}")))?;
            let sub_status = match sub_status(row) {
                Some(text) => Some(SubStatus::parse(&text).ok_or_else(|| c.error("sub_status", row, format!("unknown sub-status {text:?}")))?),
                None => None,
            };
            let scan = CarrierScan {
                carrier: c.required("carrier", row, carrier(row))?,
                tracking_number: c.required("tracking_number", row, tracking(row))?,
                order_id: order_id(row),
                status,
                sub_status,
                raw_status: raw_status(row),
                description: description(row),
                location: Location {
                    city: city(row),
                    region: region(row),
                    country: country(row),
                    postal_code: postal_code(row),
                    lat: lat.is_valid(row).then(|| lat.value(row)),
                    lon: lon.is_valid(row).then(|| lon.value(row)),
                },
                estimated_delivery: window(eta_from(row), eta_to(row)),
            };
            Ok(Event { event_id, occurred_at, merchant_id, body: EventBody::Carrier(scan), extra })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{CarrierRows, Lineage, OrderRows};
    use crate::source::simulator::{Scenario, Simulator};

    /// Simulated events written into batches and read back write the same batches again.
    #[test]
    fn simulated_events_survive_the_round_trip_through_arrow() {
        let scenario = Scenario { days: 2, orders_per_day: 200.0, ..Scenario::default() };
        let events: Vec<Event> = Simulator::new(scenario).unwrap().events().collect();
        let lineage = Lineage { source: "test", position: 1, ingested_at_micros: 0 };
        let write = |events: &[Event]| {
            let (mut orders, mut scans) = (OrderRows::default(), CarrierRows::default());
            for e in events {
                match &e.body {
                    EventBody::Order(o) => orders.append(e, o, &lineage),
                    EventBody::Carrier(s) => scans.append(e, s, &lineage),
                    EventBody::Ticket(_) => {}
                }
            }
            (orders.finish().unwrap(), scans.finish().unwrap())
        };
        let (orders, scans) = write(&events);
        assert!(orders.num_rows() > 1000 && scans.num_rows() > 1000);
        let mut back = events_from_batch(LakeTable::OrderEvents, &orders).unwrap();
        back.extend(events_from_batch(LakeTable::CarrierEvents, &scans).unwrap());
        let (orders_again, scans_again) = write(&back);
        assert_eq!(orders, orders_again);
        assert_eq!(scans, scans_again);
    }

    #[test]
    fn a_row_that_cannot_be_read_names_its_table_column_and_row() {
        let batch = OrderRows::default().finish().unwrap();
        let narrowed = batch.project(&[0, 1, 2]).unwrap();
        let error = events_from_batch(LakeTable::OrderEvents, &narrowed).unwrap_err().to_string();
        assert!(error.contains("order_events") && error.contains("occurred_at_offset_minutes"), "{error}");
    }
}
