//! The Postgres wire protocol (`datafusion-postgres`), so psql, psycopg and BI tools
//! (DBeaver, Metabase, Grafana) can query the lake. Their catalog queries on connect
//! (`pg_catalog`, `information_schema`) are answered by `datafusion-pg-catalog`.
//!
//! Logging in: the user is an API key's name and the password the key (cleartext
//! password authentication, so put TLS in front when it leaves the host). With no keys
//! configured, any user is let in as an admin.
//!
//! Each scope (every merchant's rows, or one merchant's: see `kpi::tenancy`) has one
//! long-lived session, built at its first login and shared by its connections; its
//! tables read their latest snapshot at every scan ([`SqlEngine::live_session`]) and it
//! has the KPI library's views. When the lake gains a table the session lacks (a new
//! lake's first events, the first rollup, the stream processor's first output), the
//! session is built again, within a few seconds. Sessions are read-only: anything but a
//! query (and the `SET`/`SHOW`, transaction and cursor statements clients send on their
//! own) is refused with SQLSTATE 42501. A query the server cannot parse or plan gets the
//! SQLSTATE of its fault (syntax 42601, unknown table 42P01, unknown column 42703; see
//! [`query_fault`]) and the words `/v1/sql` would give, instead of the XX000
//! (internal error) `datafusion-postgres` sends for every error.
//!
//! Limits (`[api]`, as for `/v1/sql`): a query runs for at most `query_timeout`, from its
//! arrival to its last row (past it: SQLSTATE 57014, and the query is stopped), and the
//! queries of one scope hold at most `query_memory_bytes` together (past it: SQLSTATE
//! 53200). Rows stream to the client as it reads them, so the row and byte limits of
//! `/v1/sql`, which bound what the server buffers, do not apply.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::{ParamValues, SchemaError};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, DefaultServerParameterProvider, StartupHandler,
};
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response, SendableRowStream};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type, METADATA_USER,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::{DfSessionService, QueryHook, ServerOptions};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::auth::Keys;
use crate::kpi::{is_refusal, not_found_table, QueryError, QueryLimits, Scope, SqlEngine};

/// Serves Postgres clients on `listen` until the task is dropped. Fails at once if the
/// address cannot be bound.
pub async fn serve(engine: SqlEngine, keys: Keys, limits: QueryLimits, listen: SocketAddr) -> anyhow::Result<()> {
    let sessions = Arc::new(Sessions { engine, memory_limit: limits.max_memory_bytes, services: Mutex::new(HashMap::new()) });
    // The parser's two plan-only methods need no session; an empty one serves them.
    let template = DfSessionService::new(Arc::new(SessionContext::new())).query_parser();
    let handlers = Handlers {
        startup: Arc::new(KeyLogin { keys, ids: RandomPidSecretKeyGenerator::default() }),
        queries: Arc::new(Dispatch { parser: Arc::new(ScopedParser { sessions: sessions.clone(), template }), sessions, limits }),
    };
    let options = ServerOptions::new().with_host(listen.ip().to_string()).with_port(listen.port());
    datafusion_postgres::serve_with_handlers(Arc::new(handlers), &options).await?;
    Ok(())
}

/// Where a logged-in connection's scope is kept (client metadata).
const SCOPE_KEY: &str = "orderpulse.merchant";
/// The metadata value of [`Scope::All`] (a merchant id is never empty).
const ALL_MERCHANTS: &str = "";

struct Handlers {
    startup: Arc<KeyLogin>,
    queries: Arc<Dispatch>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }
}

/// Password login against the API keys; records the caller's scope on the connection.
struct KeyLogin {
    keys: Keys,
    ids: RandomPidSecretKeyGenerator,
}

impl KeyLogin {
    async fn admit<C>(&self, client: &mut C, scope: Scope) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let merchant = match scope {
            Scope::All => ALL_MERCHANTS.to_owned(),
            Scope::Merchant(merchant) => merchant,
        };
        client.metadata_mut().insert(SCOPE_KEY.to_owned(), merchant);
        let (pid, secret) = self.ids.generate(client);
        client.set_pid_and_secret_key(pid, secret);
        finish_authentication(client, &DefaultServerParameterProvider::default()).await
    }
}

#[async_trait::async_trait]
impl StartupHandler for KeyLogin {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if !self.keys.enabled() {
                    return self.admit(client, Scope::All).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                match self.keys.authenticate_user(&user, &password.password) {
                    Ok(principal) => return self.admit(client, principal.scope()).await,
                    Err(_) => return Err(PgWireError::InvalidPassword(user)),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// One session service per scope, built at the scope's first query, and built again when
/// the lake has gained a table the session lacks (looked for at most every
/// [`NEW_TABLES_EVERY`], and in the store only for the tables it lacks). The lock is held
/// only to look up and insert, never while a session is built, so a merchant's first
/// login does not hold up everyone else's queries.
struct Sessions {
    engine: SqlEngine,
    /// The bytes one scope's queries may hold together.
    memory_limit: usize,
    services: Mutex<HashMap<Scope, ScopeSession>>,
}

/// How often a scope's session looks for tables created since it was built: a client
/// sees a new table (the first rollup, `order_status`) within about this long.
const NEW_TABLES_EVERY: Duration = Duration::from_secs(2);

/// A scope's session and when it last looked for new tables.
#[derive(Clone)]
struct ScopeSession {
    service: Arc<DfSessionService>,
    ctx: Arc<SessionContext>,
    looked_for_tables: Instant,
}

impl Sessions {
    async fn for_client<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Arc<DfSessionService>> {
        let scope = match client.metadata().get(SCOPE_KEY).map(String::as_str) {
            None => return Err(user_error(sqlstate::INVALID_AUTHORIZATION_SPECIFICATION, "not logged in".into())),
            Some(ALL_MERCHANTS) => Scope::All,
            Some(merchant) => Scope::Merchant(merchant.to_owned()),
        };
        let stale = {
            let mut services = self.services.lock().await;
            match services.get_mut(&scope) {
                None => None,
                Some(session) if session.looked_for_tables.elapsed() < NEW_TABLES_EVERY => return Ok(session.service.clone()),
                Some(session) => {
                    // Whoever comes next within the interval uses the session as it is.
                    session.looked_for_tables = Instant::now();
                    Some(session.clone())
                }
            }
        };
        if let Some(session) = &stale {
            // A failed look need not fail the query: the session serves as it is.
            let has_new = self.engine.has_new_tables(&session.ctx).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "could not look for new tables; the session stays as it is");
                false
            });
            if !has_new {
                return Ok(session.service.clone());
            }
        }
        let fresh = self.build(&scope).await?;
        // Two queries of one scope may race to build its session: keep whichever got in
        // first, unless what is there is the session this one replaces. Queries running
        // on a replaced session finish on it (with its own memory budget).
        let mut services = self.services.lock().await;
        let kept = match services.get(&scope) {
            Some(current) if !stale.as_ref().is_some_and(|old| Arc::ptr_eq(&old.service, &current.service)) => current.clone(),
            _ => {
                services.insert(scope, fresh.clone());
                fresh
            }
        };
        Ok(kept.service)
    }

    /// A new session of `scope` over the lake's tables as they are now.
    async fn build(&self, scope: &Scope) -> PgWireResult<ScopeSession> {
        let ctx = self.engine.scoped(scope.clone()).live_session(self.memory_limit).await.map_err(|e| user_error(sqlstate::SYSTEM_ERROR, e.to_string()))?;
        setup_pg_catalog(&ctx, "datafusion", Arc::new(AuthManager::default())).map_err(|e| user_error(sqlstate::SYSTEM_ERROR, e.to_string()))?;
        let hooks: Vec<Arc<dyn QueryHook>> = vec![Arc::new(CursorStatementHook), Arc::new(SetShowHook), Arc::new(TransactionStatementHook), Arc::new(ReadOnly)];
        let ctx = Arc::new(ctx);
        let service = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
        Ok(ScopeSession { service, ctx, looked_for_tables: Instant::now() })
    }

    /// A query's error as the client's fault it is ([`query_fault`]), and for a table
    /// orderpulse knows but the lake lacks yet, what creates it. Other errors as they are.
    async fn client_error(&self, error: PgWireError) -> PgWireError {
        match query_fault(&error, self.memory_limit) {
            Some((code, message)) => user_error(code, self.engine.explain_absent_table(message).await),
            None => error,
        }
    }
}

/// The SQLSTATE and words (as `/v1/sql` gives them) of a query's fault: a statement that
/// does not parse (`datafusion-postgres` parses with sqlparser itself) or plan, or a query
/// past the scope's `memory_limit`; `None` for other errors of execution.
fn query_fault(error: &PgWireError, memory_limit: usize) -> Option<(&'static str, String)> {
    use sqlstate::*;
    let PgWireError::ApiError(inner) = error else { return None };
    if let Some(parse) = inner.downcast_ref::<ParserError>() {
        return Some((SYNTAX_ERROR, parse.to_string()));
    }
    let root = inner.downcast_ref::<DataFusionError>()?.find_root();
    let code = match root {
        DataFusionError::ResourcesExhausted(detail) => {
            return Some((OUT_OF_MEMORY, QueryError::OverMemory { limit: memory_limit, detail: detail.clone() }.to_string()));
        }
        DataFusionError::SQL(..) => SYNTAX_ERROR,
        DataFusionError::SchemaError(error, _) if matches!(**error, SchemaError::FieldNotFound { .. }) => UNDEFINED_COLUMN,
        DataFusionError::Plan(message) if is_refusal(message) => INSUFFICIENT_PRIVILEGE,
        DataFusionError::Plan(message) if not_found_table(message).is_some() => UNDEFINED_TABLE,
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION,
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        _ => return None,
    };
    Some((code, root.to_string()))
}

/// The SQLSTATEs this server sends (PostgreSQL's names for them).
mod sqlstate {
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    pub const SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION: &str = "42000";
    pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const QUERY_CANCELED: &str = "57014";
    pub const SYSTEM_ERROR: &str = "58000";
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message)))
}

/// The query handlers: each query goes to the session of its connection's scope, within
/// the limits.
struct Dispatch {
    sessions: Arc<Sessions>,
    parser: Arc<ScopedParser>,
    limits: QueryLimits,
}

impl Dispatch {
    /// Plans and starts a query before `deadline`.
    async fn start<R>(&self, deadline: Instant, query: impl Future<Output = PgWireResult<R>>) -> PgWireResult<R> {
        match tokio::time::timeout_at(deadline, query).await {
            Ok(Ok(started)) => Ok(started),
            Ok(Err(error)) => Err(self.sessions.client_error(error).await),
            Err(_) => Err(over_time(&self.limits)),
        }
    }

    /// The response with its rows ended at `deadline` (by an error).
    fn bounded(&self, response: Response, deadline: Instant) -> Response {
        let Response::Query(mut query) = response else { return response };
        let rows = std::mem::replace(&mut query.data_rows, Box::pin(futures::stream::empty()));
        query.data_rows = Box::pin(rows_until(rows, deadline, self.limits));
        Response::Query(query)
    }
}

/// A query's rows as they come, until `deadline`: then one error, and the query (the
/// stream) is dropped, which stops its execution.
fn rows_until(rows: SendableRowStream, deadline: Instant, limits: QueryLimits) -> impl Stream<Item = PgWireResult<DataRow>> + Send {
    let expiry = Box::pin(tokio::time::sleep_until(deadline));
    futures::stream::unfold(Some((rows, expiry)), move |running| async move {
        let (mut rows, mut expiry) = running?;
        tokio::select! {
            row = rows.next() => match row? {
                Ok(row) => Some((Ok(row), Some((rows, expiry)))),
                Err(error) => {
                    let fault = query_fault(&error, limits.max_memory_bytes);
                    Some((Err(fault.map_or(error, |(code, message)| user_error(code, message))), None))
                }
            },
            () = &mut expiry => Some((Err(over_time(&limits)), None)),
        }
    })
}

/// SQLSTATE 57014 (query canceled), worded as `/v1/sql` words it.
fn over_time(limits: &QueryLimits) -> PgWireError {
    user_error(sqlstate::QUERY_CANCELED, QueryError::Timeout(limits.timeout).to_string())
}

type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

#[async_trait::async_trait]
impl SimpleQueryHandler for Dispatch {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let deadline = Instant::now() + self.limits.timeout;
        let service = self.sessions.for_client(client).await?;
        let responses = self.start(deadline, SimpleQueryHandler::do_query(service.as_ref(), client, query)).await?;
        Ok(responses.into_iter().map(|response| self.bounded(response, deadline)).collect())
    }
}

#[async_trait::async_trait]
impl ExtendedQueryHandler for Dispatch {
    type Statement = DfStatement;
    type QueryParser = ScopedParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<Self::Statement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let deadline = Instant::now() + self.limits.timeout;
        let service = self.sessions.for_client(client).await?;
        let response = self.start(deadline, ExtendedQueryHandler::do_query(service.as_ref(), client, portal, max_rows)).await?;
        Ok(self.bounded(response, deadline))
    }
}

/// Plans prepared statements in the session of the connection's scope.
struct ScopedParser {
    sessions: Arc<Sessions>,
    template: Arc<<DfSessionService as ExtendedQueryHandler>::QueryParser>,
}

#[async_trait::async_trait]
impl QueryParser for ScopedParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let service = self.sessions.for_client(client).await?;
        match service.query_parser().parse_sql(client, sql, types).await {
            Ok(statement) => Ok(statement),
            Err(error) => Err(self.sessions.client_error(error).await),
        }
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.template.get_parameter_types(statement)
    }

    fn get_result_schema(&self, statement: &Self::Statement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        self.template.get_result_schema(statement, format)
    }
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
        Some(user_error(sqlstate::INSUFFICIENT_PRIVILEGE, message))
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

#[cfg(test)]
mod tests {
    use datafusion::common::Column;

    use super::*;

    #[test]
    fn a_query_fault_gets_its_sqlstate() {
        let syntax = || ParserError::ParserError("Expected: an SQL statement, found: SELEC".into());
        let unknown_column = SchemaError::FieldNotFound { field: Box::new(Column::from_name("nope")), valid_fields: Vec::new() };
        let cases: [(Box<dyn std::error::Error + Send + Sync>, Option<&str>); 9] = [
            (Box::new(syntax()), Some("42601")),
            (Box::new(DataFusionError::SQL(Box::new(syntax()), None)), Some("42601")),
            (Box::new(DataFusionError::SchemaError(Box::new(unknown_column), Box::new(None))), Some("42703")),
            (Box::new(DataFusionError::Plan("table 'datafusion.public.order_status' not found".into())), Some("42P01")),
            (Box::new(DataFusionError::Plan("DDL not supported: CreateMemoryTable".into())), Some("42501")),
            (Box::new(DataFusionError::Plan("Invalid function 'nope'".into())), Some("42000")),
            (Box::new(DataFusionError::NotImplemented("Unsupported SQL type".into())), Some("0A000")),
            (Box::new(DataFusionError::ResourcesExhausted("HashJoinInput".into())), Some("53200")),
            (Box::new(DataFusionError::Execution("Parquet error".into())), None),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            assert_eq!(query_fault(&PgWireError::ApiError(error), 1 << 20).map(|(code, _)| code), code, "{shown}");
        }
    }
}
