//! A lake table as a DataFusion table that reads the latest committed snapshot at every
//! scan, for long-lived sessions (the Postgres wire protocol), where a provider pinned
//! at one snapshot would never see new commits.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::snapshots::{Snapshots, TableRef};

#[derive(Debug)]
pub struct LatestSnapshot {
    snapshots: Snapshots,
    /// The table's name (its folder under the lake's root).
    table: String,
    /// The schema as the Delta provider presents it (partition columns last), taken when
    /// the session was built; the tables' schemas are fixed by `model::schema` and the
    /// rollup queries.
    schema: SchemaRef,
    /// The settings of the session the table was registered in, which the scans read with.
    session: Arc<SessionState>,
}

impl LatestSnapshot {
    pub fn new(snapshots: Snapshots, table: &str, schema: SchemaRef, session: Arc<SessionState>) -> Self {
        LatestSnapshot { snapshots, table: table.to_owned(), schema, session }
    }
}

#[async_trait::async_trait]
impl TableProvider for LatestSnapshot {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters help the Delta scan prune files and row groups; DataFusion still applies
    /// them to the rows.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(&self, state: &dyn Session, projection: Option<&Vec<usize>>, filters: &[Expr], limit: Option<usize>) -> Result<Arc<dyn ExecutionPlan>> {
        let failed = |e: &dyn std::fmt::Display| DataFusionError::External(format!("{}: {e}", self.table).into());
        let delta = self.snapshots.latest(TableRef::Derived(&self.table)).await.map_err(|e| failed(&e))?.ok_or_else(|| failed(&"the table does not exist"))?;
        let provider = delta.table_provider().with_session(self.session.clone()).await.map_err(|e| failed(&e))?;
        provider.scan(state, projection, filters, limit).await
    }
}
