//! What the stream processor writes back into the lake, for SQL:
//!
//! - `order_status`: the latest state of every order, one row per order, upserted (Delta
//!   MERGE on `order_id`) for the orders that changed since the last checkpoint. Orders
//!   that left the hot state keep their last row.
//! - `timer_firings`: every timer that fired, appended with a Delta application
//!   transaction (`orderpulse-stream`, version = checkpoint sequence), so an outbox
//!   written again after a crash is not written twice.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::{col, SessionContext};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::Transaction;
use deltalake::protocol::SaveMode;

use super::order::{Flag, Key, Mark, OrderView};
use super::state::{Changes, StreamState, TimerFiring};
use crate::lake::{Lake, LakeError};
use crate::model::{ParcelStatus, Window};

pub const ORDER_STATUS: &str = "order_status";
pub const TIMER_FIRINGS: &str = "timer_firings";
/// The tables this module writes, for the SQL catalog.
pub const TABLES: [&str; 2] = [ORDER_STATUS, TIMER_FIRINGS];
/// The Delta application id of `timer_firings` commits.
const APP_ID: &str = "orderpulse-stream";

fn ts(name: &str) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true)
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

pub fn order_status_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        text("order_id", false),
        text("merchant_id", true),
        text("status", false),
        ts("created_at"),
        ts("ship_by"),
        ts("promised_from"),
        ts("promised_to"),
        ts("paid_at"),
        ts("fulfillment_started_at"),
        ts("shipped_at"),
        ts("delivered_at"),
        ts("completed_at"),
        ts("cancelled_at"),
        ts("return_requested_at"),
        Field::new("parcels", DataType::Int32, false),
        text("carriers", true),
        text("tracking_numbers", true),
        text("last_scan_status", true),
        ts("last_scan_at"),
        text("last_scan_city", true),
        text("last_scan_country", true),
        ts("eta_from"),
        ts("eta_to"),
        text("flags", true),
        ts("last_event_at"),
        ts("as_of_watermark"),
    ]))
}

/// One order's `order_status` row.
struct StatusRow {
    order_id: String,
    merchant_id: Option<String>,
    status: &'static str,
    /// In schema order, `created_at` to `return_requested_at`.
    milestones: [Option<i64>; 11],
    parcels: i32,
    carriers: Option<String>,
    tracking_numbers: Option<String>,
    last_scan_status: Option<&'static str>,
    last_scan_at: Option<i64>,
    last_scan_city: Option<Key>,
    last_scan_country: Option<Key>,
    eta: Option<Window>,
    flags: Option<String>,
    last_event_at: Option<i64>,
}

impl StatusRow {
    fn of(view: &OrderView<'_>, watermark: Option<i64>, missing_created_grace: i64) -> Self {
        let (order, parcels) = (view.order, view.parcels);
        let checkout = order.checkout.as_ref();
        let m = &order.milestones;
        let mark = |m: &Option<Mark>| m.as_ref().map(|m| m.at.micros);
        let last_scan = parcels.iter().filter_map(|p| p.scans.last()).max_by_key(|s| (s.at.micros, s.id));
        let all_delivered = !parcels.is_empty() && parcels.iter().all(|p| p.status() == Some(ParcelStatus::Delivered));
        let delivered_at = parcels.iter().filter_map(|p| p.first(ParcelStatus::Delivered)).map(|s| s.at.micros).max().filter(|_| all_delivered);
        let mut carriers: Vec<&str> = parcels.iter().map(|p| p.carrier.as_str()).collect();
        carriers.sort_unstable();
        carriers.dedup();
        let tracking: Vec<&str> = parcels.iter().map(|p| p.tracking_number.as_str()).collect();
        let flags: Vec<&str> = view.flags(watermark, missing_created_grace).iter().map(Flag::name).collect();
        let join = |items: &[&str]| (!items.is_empty()).then(|| items.join(","));
        StatusRow {
            order_id: order.order_id.to_string(),
            // Two merchants' orders under one id: the row is no merchant's (analysts see
            // it, flagged `merchant_conflict`).
            merchant_id: order.sole_merchant().map(str::to_owned),
            status: view.status().as_str(),
            milestones: [
                checkout.map(|c| c.at.micros),
                checkout.and_then(|c| c.ship_by).map(|t| t.micros),
                checkout.and_then(|c| c.promised_delivery).map(|w| w.from.micros),
                checkout.and_then(|c| c.promised_delivery).map(|w| w.to.micros),
                mark(&m.paid),
                mark(&m.fulfillment_started),
                view.first_shipped_at(),
                delivered_at,
                mark(&m.completed),
                mark(&m.cancelled),
                mark(&m.return_requested),
            ],
            parcels: parcels.len() as i32,
            carriers: join(&carriers),
            tracking_numbers: join(&tracking),
            last_scan_status: last_scan.map(|s| s.status.as_str()),
            last_scan_at: last_scan.map(|s| s.at.micros),
            last_scan_city: last_scan.and_then(|s| s.texts.city.clone()),
            last_scan_country: last_scan.and_then(|s| s.texts.country.clone()),
            eta: view.current_eta(),
            flags: join(&flags),
            last_event_at: view.last_event_at(),
        }
    }
}

/// One row per changed order: those still in the state and those that left it.
pub fn order_status_batch(state: &StreamState, changes: &Changes) -> Result<RecordBatch, arrow::error::ArrowError> {
    let watermark = state.watermark();
    let grace = state.settings().missing_created_grace;
    let live = changes
        .order_ids
        .iter()
        .filter_map(|id| state.order(id))
        .map(|order| StatusRow::of(&OrderView { order, parcels: &state.parcels_of(order) }, watermark, grace));
    let departed = changes.departed.iter().map(|d| {
        let parcels: Vec<_> = d.parcels.iter().collect();
        StatusRow::of(&OrderView { order: &d.order, parcels: &parcels }, watermark, grace)
    });
    // One row per order: an order can leave the state and come back (a very late event);
    // the one in the state now wins over the departed, the later departed over the earlier.
    let mut by_id: std::collections::BTreeMap<String, StatusRow> = std::collections::BTreeMap::new();
    for row in departed.chain(live) {
        by_id.insert(row.order_id.clone(), row);
    }
    let rows: Vec<StatusRow> = by_id.into_values().collect();
    let text = |f: &dyn Fn(&StatusRow) -> Option<&str>| Arc::new(StringArray::from_iter(rows.iter().map(f))) as ArrayRef;
    let time = |f: &dyn Fn(&StatusRow) -> Option<i64>| Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(f)).with_timezone("UTC")) as ArrayRef;
    let mut columns = vec![text(&|r| Some(r.order_id.as_str())), text(&|r| r.merchant_id.as_deref()), text(&|r| Some(r.status))];
    columns.extend((0..11).map(|i| time(&move |r: &StatusRow| r.milestones[i])));
    columns.extend([
        Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.parcels))) as ArrayRef,
        text(&|r| r.carriers.as_deref()),
        text(&|r| r.tracking_numbers.as_deref()),
        text(&|r| r.last_scan_status),
        time(&|r| r.last_scan_at),
        text(&|r| r.last_scan_city.as_deref()),
        text(&|r| r.last_scan_country.as_deref()),
        time(&|r| r.eta.map(|w| w.from.micros)),
        time(&|r| r.eta.map(|w| w.to.micros)),
        text(&|r| r.flags.as_deref()),
        time(&|r| r.last_event_at),
        time(&|_| watermark),
    ]);
    RecordBatch::try_new(order_status_schema(), columns)
}

pub fn timer_firings_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("due_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
        text("kind", false),
        text("subject", false),
        text("order_id", true),
        text("merchant_id", true),
    ]))
}

pub fn timer_firings_batch(firings: &[TimerFiring]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut due = TimestampMicrosecondBuilder::new();
    let (mut kind, mut subject, mut order, mut merchant) = (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    for f in firings {
        due.append_value(f.due_at);
        kind.append_value(f.kind.as_str());
        subject.append_value(&f.subject);
        order.append_option(f.order_id.as_deref());
        merchant.append_option(f.merchant_id.as_deref());
    }
    RecordBatch::try_new(
        timer_firings_schema(),
        vec![
            Arc::new(due.finish().with_timezone("UTC")),
            Arc::new(kind.finish()),
            Arc::new(subject.finish()),
            Arc::new(order.finish()),
            Arc::new(merchant.finish()),
        ],
    )
}

fn derived(name: &str, error: impl std::fmt::Display) -> LakeError {
    LakeError::Derived { name: name.to_owned(), message: error.to_string() }
}

/// Upserts the rows of `batch` into `order_status` by `order_id`.
pub async fn upsert_order_status(lake: &Lake, batch: RecordBatch) -> Result<(), LakeError> {
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let table = lake.derived(ORDER_STATUS).await?;
    if table.version().is_none() {
        table.write([batch]).with_save_mode(SaveMode::Append).await.map_err(|e| derived(ORDER_STATUS, e))?;
        return Ok(());
    }
    let columns: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    let source = SessionContext::new().read_batch(batch).map_err(|e| derived(ORDER_STATUS, e))?;
    let source_col = |c: &str| col(format!("source.{c}"));
    table
        .merge(source, col("target.order_id").eq(col("source.order_id")))
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_update(|update| columns.iter().fold(update, |u, c| u.update(c.as_str(), source_col(c))))
        .and_then(|merge| merge.when_not_matched_insert(|insert| columns.iter().fold(insert, |i, c| i.set(c.as_str(), source_col(c)))))
        .map_err(|e| derived(ORDER_STATUS, e))?
        .await
        .map_err(|e| derived(ORDER_STATUS, e))?;
    Ok(())
}

/// Appends the firings of checkpoint `seq`, unless that checkpoint's were written already.
pub async fn append_timer_firings(lake: &Lake, seq: u64, firings: &[TimerFiring]) -> Result<(), LakeError> {
    if firings.is_empty() {
        return Ok(());
    }
    let table = lake.derived(TIMER_FIRINGS).await?;
    if let Some(snapshot) = table.version().and_then(|_| table.snapshot().ok()) {
        let written = snapshot.transaction_version(table.log_store().as_ref(), APP_ID).await.map_err(|e| derived(TIMER_FIRINGS, e))?;
        if written.is_some_and(|v| v >= seq as i64) {
            return Ok(());
        }
    }
    let batch = timer_firings_batch(firings).map_err(|e| derived(TIMER_FIRINGS, e))?;
    let properties = CommitProperties::default().with_application_transactions(vec![Transaction::new(APP_ID, seq as i64)]);
    table.write([batch]).with_save_mode(SaveMode::Append).with_commit_properties(properties).await.map_err(|e| derived(TIMER_FIRINGS, e))?;
    Ok(())
}
