//! KPI rollups: the daily, additive tables of `queries/rollups/` (`kpi_daily_*`),
//! materialised into the lake so dashboards read small tables.
//!
//! Each rollup query gives rows per day (and merchant, carrier, lane, ...) for
//! `$from <= day < $to`, with counts and sums only, so any period's rate is a ratio of
//! sums. A run recomputes a trailing window of days from the events and replaces exactly
//! those days in the table, in one Delta commit (`replaceWhere day >= from`): a late
//! event corrects its day on the next run as long as the day is inside the window
//! (`kpi.rollup_days`); `--full` recomputes every day. Readers see the old days or the
//! new ones, never a mix. A trailing run reads only the events of the orders, parcels
//! and tickets active in its window ([`super::active`]), which give those days' rows.

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::ParamValues;
use deltalake::protocol::SaveMode;
use std::sync::Arc;

use super::active::ActiveKeys;
use super::library::utc_parameter;
use super::snapshots::TableRef;
use super::{Joins, QueryError, QueryLimits, QueryResult, Scope, SqlEngine};
use crate::lake::Lake;

/// Which days a run recomputes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every day there is.
    Full,
    /// This day and every later one.
    Since(NaiveDate),
}

impl Window {
    /// The last `days` days up to and including `today`.
    pub fn trailing(days: u32, today: NaiveDate) -> Self {
        Window::Since(today - chrono::Duration::days(i64::from(days.max(1)) - 1))
    }
}

/// What one rollup table got.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rolled {
    pub table: String,
    pub rows: usize,
}

/// Recomputes `window` of every rollup table from the lake's events (all merchants),
/// planning joins as `joins` says (see [`within_budget`]).
pub async fn run(engine: &SqlEngine, lake: &Lake, window: Window, limits: QueryLimits, joins: Joins) -> Result<Vec<Rolled>, QueryError> {
    let engine = engine.scoped(Scope::All);
    let (engine, from, replace) = match window {
        Window::Full => (engine, DateTime::<Utc>::UNIX_EPOCH, None),
        Window::Since(day) => {
            let from = day.and_time(chrono::NaiveTime::MIN).and_utc();
            let started = std::time::Instant::now();
            let active = ActiveKeys::since(&engine, from, limits).await.map_err(|e| over_budget_names_its_key("active keys", e))?;
            tracing::debug!(since = %from, ?active, elapsed = ?started.elapsed(), "found what was active in the rollup window");
            (engine.only_active(active), from, Some(format!("day >= '{day}'")))
        }
    };
    // Far enough ahead for events stamped in the future by a wrong clock.
    let to = DateTime::<Utc>::MAX_UTC;
    let mut rolled = Vec::new();
    for (name, sql) in engine.library().rollups() {
        let started = std::time::Instant::now();
        let params = ParamValues::from(vec![("from", utc_parameter(from)), ("to", utc_parameter(to))]);
        let result = within_budget(&engine, name, sql, params, limits, joins).await.map_err(|e| over_budget_names_its_key(name, e))?;
        let rows = result.num_rows();
        let table = lake.derived(name).await?;
        let first_run = table.version().is_none();
        if rows == 0 && !first_run {
            // Nothing in the window: clear it.
            table.delete().with_predicate(replace.clone().unwrap_or_else(|| "true".into())).await.map_err(|e| derived(name, e))?;
        } else {
            // A table's first run creates it, with no rows if it has none (a store that
            // sends no tickets), so that readers find it and `orderpulse run` does not take
            // it for a rollup that never ran.
            let batches = if rows == 0 { vec![RecordBatch::new_empty(result.schema)] } else { result.batches };
            let mut write = table.write(plain_strings(batches).map_err(|e| derived(name, e))?).with_save_mode(SaveMode::Overwrite);
            if let Some(predicate) = &replace {
                write = write.with_replace_where(predicate.as_str());
            }
            write.await.map_err(|e| derived(name, e))?;
        }
        tracing::debug!(rollup = name, rows, elapsed = ?started.elapsed(), "rollup table replaced");
        rolled.push(Rolled { table: name.clone(), rows });
    }
    Ok(rolled)
}

/// Runs a rollup query with hash joins and, if their build sides do not fit in the
/// budget, once more with sort-merge joins, whose sorts spill to disk: slower, but a
/// `--full` run over a large lake (10 million orders against the default 4 GiB) then
/// finishes instead of failing. The first try costs the time until the budget ran out,
/// which `joins = sort_merge` skips where the budget is known to be too small.
async fn within_budget(engine: &SqlEngine, name: &str, sql: &str, params: ParamValues, limits: QueryLimits, joins: Joins) -> Result<QueryResult, QueryError> {
    if joins == Joins::Hash {
        match engine.execute(sql, Some(params.clone()), limits, Joins::Hash).await {
            Err(QueryError::OverMemory { detail, .. }) => {
                tracing::warn!(rollup = name, budget = limits.max_memory_bytes, %detail, "the rollup ran out of its memory budget with hash joins; running it again with sort-merge joins, which spill to disk");
            }
            done => return done,
        }
    }
    engine.execute(sql, Some(params), limits, Joins::SortMerge).await
}

/// A rollup over its memory budget even with spilling joins says which setting gives it
/// more.
fn over_budget_names_its_key(name: &str, error: QueryError) -> QueryError {
    match error {
        QueryError::OverMemory { limit, detail } => {
            QueryError::OverMemory { limit, detail: format!("rollup {name} (raise kpi.rollup_memory_bytes to give it more): {detail}") }
        }
        other => other,
    }
}

fn derived(name: &str, error: impl std::fmt::Display) -> QueryError {
    QueryError::Lake(TableRef::Derived(name).error(error))
}

/// The batches with string views as plain strings, the type every Delta reader knows.
fn plain_strings(batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    batches
        .into_iter()
        .map(|batch| {
            let fields: Vec<Field> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::Utf8View | DataType::LargeUtf8 => f.as_ref().clone().with_data_type(DataType::Utf8),
                    _ => f.as_ref().clone(),
                })
                .collect();
            let schema = Arc::new(Schema::new(fields));
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema, columns)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollup_over_its_memory_budget_names_the_setting() {
        let over = over_budget_names_its_key("kpi_daily_orders", QueryError::OverMemory { limit: 1 << 30, detail: "HashJoinInput".into() });
        let message = over.to_string();
        assert!(message.contains("kpi.rollup_memory_bytes") && message.contains("kpi_daily_orders") && message.contains("1073741824"), "{message}");
        let other = over_budget_names_its_key("kpi_daily_orders", QueryError::Sql("syntax".into()));
        assert_eq!(other.to_string(), "syntax");
    }

    #[test]
    fn a_trailing_window_counts_today() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        assert_eq!(Window::trailing(1, day(24)), Window::Since(day(24)));
        assert_eq!(Window::trailing(7, day(24)), Window::Since(day(18)));
        assert_eq!(Window::trailing(0, day(24)), Window::Since(day(24)), "at least today");
    }
}
