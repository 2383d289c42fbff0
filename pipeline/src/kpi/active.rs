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
//! the events, and held in memory (one id per active order, parcel and ticket, outside
//! the query's memory budget: a few tens of bytes each).
//!
//! Each event table becomes a filter on its own scan (`active_order(order_id)`, a look-up
//! in the keys), not a join with the keys: the scan keeps the table's statistics, so
//! the views' joins still build their hash tables from their smaller sides. (A join
//! with the keys hid them: at 10M orders a view then built a 3.6 GB hash table from the
//! restricted scans, ran out of the 4 GiB budget and fell back to sort-merge joins.)

use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::error::Result as DataFusionResult;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::SessionContext;

use super::library::utc_parameter;
use super::snapshots::TableRef;
use super::{Joins, QueryError, QueryLimits, QueryResult, SqlEngine};
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
/// them, so that parcel's rows are right too (and dated before the window), and a
/// scan is looked up by one column instead of two.
const ACTIVE_PARCELS: &str = "\
    SELECT DISTINCT tracking_number FROM order_events \
    WHERE type = 'order.shipped' AND order_id IN (SELECT order_id FROM active_orders)";

/// Tickets with an event in the window.
const ACTIVE_TICKETS: &str = "SELECT DISTINCT ticket_id FROM ticket_events WHERE occurred_at >= $from";

/// The keys of the orders, parcels and tickets active since a time.
pub struct ActiveKeys {
    orders: Arc<KeySet>,
    parcels: Arc<KeySet>,
    tickets: Arc<KeySet>,
}

impl std::fmt::Debug for ActiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKeys").field("orders", &self.orders.len()).field("parcels", &self.parcels.len()).field("tickets", &self.tickets.len()).finish()
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
            let orders = collect(&ctx, ACTIVE_ORDERS, Some(params())).await?;
            let table = MemTable::try_new(orders.schema.clone(), vec![orders.batches.clone()]).map_err(QueryError::from_datafusion)?;
            ctx.register_table("active_orders", Arc::new(table)).map_err(QueryError::from_datafusion)?;
            let parcels = collect(&ctx, ACTIVE_PARCELS, None).await?;
            let tickets = collect(&ctx, ACTIVE_TICKETS, Some(params())).await?;
            ActiveKeys::of(&orders, &parcels, &tickets).map_err(|e| QueryError::Execution(e.to_string()))
        };
        let found = tokio::time::timeout(limits.timeout, find).await.map_err(|_| QueryError::Timeout(limits.timeout))?;
        found.map_err(|e| e.over(limits))
    }

    /// The key sets of the three queries' results (their first columns).
    fn of(orders: &QueryResult, parcels: &QueryResult, tickets: &QueryResult) -> Result<Self, arrow::error::ArrowError> {
        Ok(ActiveKeys { orders: KeySet::of(orders)?, parcels: KeySet::of(parcels)?, tickets: KeySet::of(tickets)? })
    }

    /// A session like `raw` (its settings and runtime) in which each event table holds
    /// only the active things' events, under its own name; the other tables are as in
    /// `raw`.
    pub(super) async fn restrict(&self, raw: &SessionContext, present: &[TableRef<'_>]) -> DataFusionResult<SessionContext> {
        let filters = [("active_order", &self.orders), ("active_parcel", &self.parcels), ("active_ticket", &self.tickets)];
        for (name, keys) in filters {
            raw.register_udf(ScalarUDF::from(IsActive::new(name, keys.clone())));
        }
        let ctx = SessionContext::new_with_config_rt(raw.copied_config(), raw.runtime_env());
        for table in present {
            let restriction = match table {
                TableRef::Event(LakeTable::OrderEvents) => "SELECT * FROM order_events WHERE active_order(order_id)",
                TableRef::Event(LakeTable::CarrierEvents) => "SELECT * FROM carrier_events WHERE active_parcel(tracking_number)",
                TableRef::Event(LakeTable::TicketEvents) => "SELECT * FROM ticket_events WHERE active_ticket(ticket_id)",
                TableRef::Event(LakeTable::Quarantine) | TableRef::Derived(_) => {
                    ctx.register_table(table.name(), raw.table_provider(table.name()).await?)?;
                    continue;
                }
            };
            ctx.register_table(table.name(), raw.sql(restriction).await?.into_view())?;
        }
        Ok(ctx)
    }
}

/// One kind of key (order ids, tracking numbers, ticket ids).
#[derive(Debug)]
struct KeySet(ahash::AHashSet<Box<str>>);

impl KeySet {
    /// The keys in the first column of `result`.
    fn of(result: &QueryResult) -> Result<Arc<Self>, arrow::error::ArrowError> {
        let mut keys = ahash::AHashSet::with_capacity(result.num_rows());
        for batch in &result.batches {
            let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
            keys.extend(column.as_string::<i32>().iter().flatten().map(Box::from));
        }
        Ok(Arc::new(KeySet(keys)))
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// `name(key)`: whether `key` is one of the active ones (`false` for NULL).
#[derive(Debug)]
struct IsActive {
    name: &'static str,
    keys: Arc<KeySet>,
    signature: Signature,
}

impl IsActive {
    fn new(name: &'static str, keys: Arc<KeySet>) -> Self {
        IsActive { name, keys, signature: Signature::string(1, Volatility::Immutable) }
    }
}

/// Told apart by name and key set (a session has one of each name).
impl PartialEq for IsActive {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.keys, &other.keys)
    }
}

impl Eq for IsActive {}

impl std::hash::Hash for IsActive {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        Arc::as_ptr(&self.keys).hash(state);
    }
}

impl ScalarUDFImpl for IsActive {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DataFusionResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DataFusionResult<ColumnarValue> {
        let [key] = args.args.as_slice() else {
            return datafusion::common::exec_err!("{} takes one key", self.name);
        };
        // The lake's strings are plain `Utf8`; a view or large string is cast to it.
        let keys = arrow::compute::cast(&key.to_array(args.number_rows)?, &DataType::Utf8)?;
        let active: BooleanArray = keys.as_string::<i32>().iter().map(|key| Some(key.is_some_and(|k| self.keys.0.contains(k)))).collect();
        Ok(ColumnarValue::Array(Arc::new(active)))
    }
}

/// Runs `sql` in `ctx` and collects its rows.
async fn collect(ctx: &SessionContext, sql: &str, params: Option<ParamValues>) -> Result<QueryResult, QueryError> {
    let mut frame = ctx.sql(sql).await.map_err(QueryError::from_datafusion)?;
    if let Some(params) = params {
        frame = frame.with_param_values(params).map_err(QueryError::from_datafusion)?;
    }
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches: Vec<RecordBatch> = frame.collect().await.map_err(QueryError::from_datafusion)?;
    let schema = batches.first().map_or(schema, RecordBatch::schema);
    Ok(QueryResult { schema, batches })
}
