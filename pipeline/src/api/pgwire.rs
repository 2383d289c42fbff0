//! The Postgres wire protocol (`datafusion-postgres`), so psql, psycopg and BI tools
//! (DBeaver, Metabase, Grafana) can query the lake. Their catalog queries on connect
//! (`pg_catalog`, `information_schema`) are answered by `datafusion-pg-catalog`.
//!
//! One long-lived session serves every connection: its tables read their latest
//! snapshot at every scan ([`SqlEngine::live_session`]) and it has the KPI library's
//! views. It is read-only: anything but a query (and the `SET`/`SHOW`, transaction and
//! cursor statements clients send on their own) is refused with SQLSTATE 42501.

use std::net::SocketAddr;
use std::sync::Arc;

use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::{QueryHook, ServerOptions};

use crate::kpi::SqlEngine;

/// Serves Postgres clients on `listen` until the task is dropped. Fails at once if the
/// address cannot be bound.
pub async fn serve(engine: &SqlEngine, listen: SocketAddr) -> anyhow::Result<()> {
    let ctx = engine.live_session().await?;
    setup_pg_catalog(&ctx, "datafusion", Arc::new(AuthManager::default()))
        .map_err(|e| anyhow::anyhow!("setting up pg_catalog: {e}"))?;
    let hooks: Vec<Arc<dyn QueryHook>> =
        vec![Arc::new(CursorStatementHook), Arc::new(SetShowHook), Arc::new(TransactionStatementHook), Arc::new(ReadOnly)];
    let options = ServerOptions::new().with_host(listen.ip().to_string()).with_port(listen.port());
    datafusion_postgres::serve_with_hooks(Arc::new(ctx), &options, hooks).await?;
    Ok(())
}

/// Refuses every statement that is not a read. Runs after the built-in hooks, which
/// answer `SET`/`SHOW`, `BEGIN`/`COMMIT` and cursors themselves.
struct ReadOnly;

impl ReadOnly {
    /// The error for a statement that is not a read; `None` lets it run.
    fn refusal(statement: &Statement) -> Option<PgWireError> {
        let allowed = matches!(
            statement,
            Statement::Query(_)
                | Statement::Explain { .. }
                | Statement::ExplainTable { .. }
                | Statement::ShowTables { .. }
                | Statement::ShowColumns { .. }
                | Statement::ShowVariable { .. }
        );
        if allowed {
            return None;
        }
        let verb = statement.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
        let message = format!("statement refused: orderpulse is read-only ({verb} is not allowed; only queries are)");
        Some(PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), "42501".into(), message))))
    }
}

#[async_trait::async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(&self, statement: &Statement, _: &SessionContext, _: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        Self::refusal(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _: &SessionContext,
        _: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        Self::refusal(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        _: &Statement,
        _: &LogicalPlan,
        _: &ParamValues,
        _: &SessionContext,
        _: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}
