//! A merchant's view of the lake. Tenancy is enforced by the catalog, not by the query
//! text: in a merchant's session every table name resolves to a view that holds only
//! that merchant's rows, and the unrestricted tables are not in the catalog at all, so
//! no query (joins, unions, subqueries, `information_schema`) can reach another
//! merchant's rows.
//!
//! | table            | a merchant sees                                                  |
//! |------------------|------------------------------------------------------------------|
//! | `order_events`   | rows with its `merchant_id`                                      |
//! | `ticket_events`  | rows with its `merchant_id`                                      |
//! | `carrier_events` | scans of parcels it shipped (carrier + tracking number of its `order.shipped` events), whatever the scan's own `merchant_id` says |
//! | `quarantine`     | nothing: a line that failed validation has no trustworthy owner   |
//! | `kpi_daily_*`    | rows with its `merchant_id` (the rollups)                        |
//! | `order_status`, `timer_firings` | rows with its `merchant_id` (the stream processor's outputs) |
//!
//! The library's views (`orders`, `parcels`, `tickets`) are then built over these, so
//! they are restricted too.

use std::sync::Arc;

use datafusion::datasource::TableProvider;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::model::schema::LakeTable;

/// The rows a session may see.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every merchant's (admins and analysts).
    All,
    /// One merchant's.
    Merchant(String),
}

/// `table`, as `merchant` may see it, over the unrestricted tables of `raw`.
pub async fn restricted(raw: &SessionContext, table: LakeTable, merchant: &str) -> Result<Arc<dyn TableProvider>> {
    let merchant = sql_string(merchant);
    let sql = match table {
        LakeTable::OrderEvents | LakeTable::TicketEvents => by_merchant_column(table.name(), &merchant),
        LakeTable::CarrierEvents => format!(
            "SELECT scans.* FROM carrier_events scans \
             JOIN (SELECT DISTINCT carrier, tracking_number FROM order_events \
                   WHERE merchant_id = {merchant} AND type = 'order.shipped') shipped \
             ON scans.carrier = shipped.carrier AND scans.tracking_number = shipped.tracking_number"
        ),
        LakeTable::Quarantine => "SELECT * FROM quarantine WHERE false".to_owned(),
    };
    Ok(raw.sql(&sql).await?.into_view())
}

/// A derived table (a rollup, `order_status`, `timer_firings`), as `merchant` may see it.
pub async fn restricted_derived(raw: &SessionContext, name: &str, merchant: &str) -> Result<Arc<dyn TableProvider>> {
    Ok(raw.sql(&by_merchant_column(name, &sql_string(merchant))).await?.into_view())
}

/// The rows of a table with a `merchant_id` column that belong to `merchant` (a literal).
fn by_merchant_column(name: &str, merchant: &str) -> String {
    format!("SELECT * FROM {name} WHERE merchant_id = {merchant}")
}

/// A SQL string literal (quotes doubled; the dialect has no backslash escapes).
fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn string_literals_cannot_be_escaped_from() {
        let cases = [("m_lotus", "'m_lotus'"), ("o'brien", "'o''brien'"), ("x' OR '1'='1", "'x'' OR ''1''=''1'")];
        for (text, literal) in cases {
            assert_eq!(super::sql_string(text), literal);
        }
    }
}
