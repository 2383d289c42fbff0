//! The events a trailing rollup needs, and no others.
//!
//! A rollup row is dated by an event of the thing it counts: an order by its
//! `order.created`, a parcel by its shipment or delivery scan, a ticket by its
//! `ticket.opened`. So every row of a day at or after `from` is about an order, parcel or
//! ticket with at least one event at or after `from`, and its values come from all of
//! that thing's events (of any age) and those of the things it joins: a parcel's order,
//! an order's parcels. A trailing rollup's session therefore shows, under the event
//! tables' names, every event of
//! - the *active orders*: those with an order event at or after `from`, or that shipped a
//!   parcel scanned at or after `from`;
//! - their parcels (the tracking numbers of their `order.shipped` events);
//! - the tickets with an event at or after `from`;
//!
//! and the views (`orders`, `parcels`, `tickets`) are built over those. The rows of the
//! window's days are the same as over the whole lake, but the views group a window's
//! worth of orders instead of the lake's whole history: on a lake of a year, a 35-day
//! window is a tenth of the grouping. The keys are found once per run, with two scans of
//! the events, and held in memory (one id per active order, parcel and ticket).

use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::error::Result as DataFusionResult;
use datafusion::prelude::SessionContext;

use super::library::utc_parameter;
use super::snapshots::TableRef;
use super::{Joins, QueryError, QueryLimits, SqlEngine};
use crate::model::schema::LakeTable;

/// Orders with an own event in the window, or whose parcel was scanned in it.
const ACTIVE_ORDERS: &str = "\
    SELECT order_id FROM order_events WHERE occurred_at >= $from \
    UNION \
    SELECT shipped.order_id FROM order_events shipped \
    JOIN (SELECT DISTINCT carrier, tracking_number FROM carrier_events WHERE occurred_at >= $from) scanned \
      ON scanned.carrier = shipped.carrier AND scanned.tracking_number = shipped.tracking_number \
    WHERE shipped.type = 'order.shipped'";

/// The tracking numbers of the parcels the active orders shipped. The carrier is left
/// out: the scans of another carrier's parcel with the same number come along, all of
/// them, so that parcel's rows are right too (and dated before the window), and the
/// scans are matched on one column instead of two.
const ACTIVE_PARCELS: &str = "\
    SELECT DISTINCT tracking_number FROM order_events \
    WHERE type = 'order.shipped' AND order_id IN (SELECT order_id FROM active_orders)";

/// Tickets with an event in the window.
const ACTIVE_TICKETS: &str = "SELECT DISTINCT ticket_id FROM ticket_events WHERE occurred_at >= $from";

/// The keys of the orders, parcels and tickets active since a time.
pub struct ActiveKeys {
    orders: Arc<MemTable>,
    parcels: Arc<MemTable>,
    tickets: Arc<MemTable>,
    /// How many of each, for logs.
    counts: [usize; 3],
}

impl std::fmt::Debug for ActiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [orders, parcels, tickets] = self.counts;
        f.debug_struct("ActiveKeys").field("orders", &orders).field("parcels", &parcels).field("tickets", &tickets).finish()
    }
}

impl ActiveKeys {
    /// Finds the keys active since `from` in the whole lake, within `limits` (time and
    /// memory).
    pub async fn since(engine: &SqlEngine, from: DateTime<Utc>, limits: QueryLimits) -> Result<Self, QueryError> {
        let find = async {
            let memory_limit = (limits.max_memory_bytes < usize::MAX).then_some(limits.max_memory_bytes);
            let ctx = engine.build_session(false, memory_limit, Joins::Hash).await?;
            let params = || ParamValues::from(vec![("from", utc_parameter(from))]);
            let (orders, order_count) = collect(&ctx, ACTIVE_ORDERS, Some(params())).await?;
            ctx.register_table("active_orders", orders.clone()).map_err(QueryError::from_datafusion)?;
            let (parcels, parcel_count) = collect(&ctx, ACTIVE_PARCELS, None).await?;
            let (tickets, ticket_count) = collect(&ctx, ACTIVE_TICKETS, Some(params())).await?;
            Ok(ActiveKeys { orders, parcels, tickets, counts: [order_count, parcel_count, ticket_count] })
        };
        tokio::time::timeout(limits.timeout, find).await.map_err(|_| QueryError::Timeout(limits.timeout))?
    }

    /// A session like `raw` (its settings and runtime) in which each event table holds
    /// only the active things' events, under its own name; the other tables are as in
    /// `raw`.
    pub(super) async fn restrict(&self, raw: &SessionContext, present: &[TableRef<'_>]) -> DataFusionResult<SessionContext> {
        raw.register_table("active_orders", self.orders.clone())?;
        raw.register_table("active_parcels", self.parcels.clone())?;
        raw.register_table("active_tickets", self.tickets.clone())?;
        let ctx = SessionContext::new_with_config_rt(raw.copied_config(), raw.runtime_env());
        for table in present {
            // The keys come first: a hash join builds its table from its first input,
            // and the keys are the small side.
            let restriction = match table {
                TableRef::Event(LakeTable::OrderEvents) => "SELECT e.* FROM active_orders a JOIN order_events e ON e.order_id = a.order_id",
                TableRef::Event(LakeTable::CarrierEvents) => "SELECT e.* FROM active_parcels a JOIN carrier_events e ON e.tracking_number = a.tracking_number",
                TableRef::Event(LakeTable::TicketEvents) => "SELECT e.* FROM active_tickets a JOIN ticket_events e ON e.ticket_id = a.ticket_id",
                TableRef::Event(LakeTable::Quarantine) | TableRef::Derived(_) => {
                    if let Ok(provider) = raw.table_provider(table.name()).await {
                        ctx.register_table(table.name(), provider)?;
                    }
                    continue;
                }
            };
            ctx.register_table(table.name(), raw.sql(restriction).await?.into_view())?;
        }
        Ok(ctx)
    }
}

/// Runs `sql` in `ctx` and keeps its rows as a table; with their number.
async fn collect(ctx: &SessionContext, sql: &str, params: Option<ParamValues>) -> Result<(Arc<MemTable>, usize), QueryError> {
    let mut frame = ctx.sql(sql).await.map_err(QueryError::from_datafusion)?;
    if let Some(params) = params {
        frame = frame.with_param_values(params).map_err(QueryError::from_datafusion)?;
    }
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches: Vec<RecordBatch> = frame.collect().await.map_err(QueryError::from_datafusion)?;
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let schema = batches.first().map_or(schema, RecordBatch::schema);
    let table = MemTable::try_new(schema, vec![batches]).map_err(QueryError::from_datafusion)?;
    Ok((Arc::new(table), rows))
}
