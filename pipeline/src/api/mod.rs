//! The HTTP API (axum): `/healthz`, `/readyz`, `/metrics`, `POST /v1/sql`, `GET /v1/kpis[/{name}]`,
//! `POST /v1/events`, `POST /v1/carriers/{carrier}/webhook`, `GET /v1/orders/{id}[/status-text]`. Every error is JSON: `{"error": {"code": ..., "message": ...}}`
//! with a 4xx for the caller's mistakes and a 5xx for ours.

pub mod auth;
mod carriers;
mod metrics;
pub mod orders;
pub mod pgwire;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::auth::{AuthError, Keys, Principal, Role};
use crate::carriers::GenericCarriers;
use crate::ingest::http::{HttpIngest, Readiness, SubmitError};
use crate::ingest::LineOutcome;
use crate::kpi::format::{arrow_stream, json_rows, render, OutputFormat};
use crate::kpi::library::{KpiError, KpiParams};
use crate::kpi::{QueryError, QueryLimits, QueryResult, SqlEngine};
use crate::stream::processor::Phase;

/// What every handler can reach. Cloned per request (an `Arc` inside).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    /// The stream state behind `/v1/orders`; `None` where the processor is not run.
    orders: Option<orders::OrderLookup>,
}

struct Inner {
    engine: SqlEngine,
    limits: QueryLimits,
    /// The group-commit loop behind `POST /v1/events`; `None` where ingest is not run.
    ingest: Option<HttpIngest>,
    /// Larger request bodies are refused with 413 before they are read to the end.
    max_body_bytes: usize,
    /// The API keys; none: every caller is an admin.
    keys: Keys,
    /// The configured generic carriers, beside the built-in adapters.
    generic_carriers: GenericCarriers,
}

impl AppState {
    pub fn new(
        engine: SqlEngine,
        limits: QueryLimits,
        ingest: Option<HttpIngest>,
        max_body_bytes: usize,
        keys: Keys,
        generic_carriers: GenericCarriers,
    ) -> Self {
        AppState { inner: Arc::new(Inner { engine, limits, ingest, max_body_bytes, keys, generic_carriers }), orders: None }
    }

    /// Serves `/v1/orders` from a stream processor's state.
    pub fn with_orders(self, lookup: orders::OrderLookup) -> Self {
        AppState { orders: Some(lookup), ..self }
    }

    /// Where the stream processor of this process stands; `None` if it runs none.
    fn stream_phase(&self) -> Option<Phase> {
        Some(self.orders.as_ref()?.processor.phase())
    }

    /// Who sent the request, from its `Authorization: Bearer <key>` header.
    fn principal(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let key = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        Ok(self.inner.keys.authenticate(key)?)
    }

    /// The SQL engine showing what the request's caller may see.
    fn engine_for(&self, headers: &HeaderMap) -> Result<SqlEngine, ApiError> {
        Ok(self.inner.engine.scoped(self.principal(headers)?.scope()))
    }

    /// Refuses callers whose role is not one of `roles` (with authentication off,
    /// everyone is an admin).
    fn require(&self, headers: &HeaderMap, roles: &[Role], action: &'static str) -> Result<(), ApiError> {
        let caller = self.principal(headers)?;
        if !roles.contains(&caller.role) {
            return Err(AuthError::Forbidden { role: caller.role, action }.into());
        }
        Ok(())
    }

    /// `None` where ingest is not run (nothing to wait for).
    fn ingest_readiness(&self) -> Option<Readiness> {
        self.inner.ingest.as_ref().map(HttpIngest::readiness)
    }

    fn ingest(&self) -> Result<&HttpIngest, ApiError> {
        self.inner.ingest.as_ref().ok_or(ApiError::from(SubmitError::Stopped))
    }

    /// The request body, refused with 413 past `api.max_body_bytes`.
    async fn read_body(&self, body: Body) -> Result<Bytes, ApiError> {
        let limit = self.inner.max_body_bytes;
        axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {limit} bytes; send smaller batches")))
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/sql", post(sql).layer(DefaultBodyLimit::max(1 << 20)))
        .route("/v1/kpis", get(list_kpis))
        .route("/v1/kpis/{name}", get(kpi))
        .route("/v1/events", post(events).layer(DefaultBodyLimit::disable()))
        .route("/v1/carriers/{carrier}/webhook", post(carriers::webhook).layer(DefaultBodyLimit::disable()))
        .route("/v1/carriers/unknown-codes", get(carriers::unknown_codes))
        .route("/v1/orders/{order_id}", get(orders::order))
        .route("/v1/orders/{order_id}/status-text", get(orders::status_text))
        .with_state(state)
}

/// A failed request: status, a stable machine-readable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The same request may succeed in a moment: the answer carries `Retry-After`.
    retry_later: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_later: false }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Tells the caller to ask again shortly (`Retry-After`).
    pub fn retry_later(self) -> Self {
        ApiError { retry_later: true, ..self }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        if self.retry_later {
            return (self.status, [(header::RETRY_AFTER, "1")], body).into_response();
        }
        if self.status == StatusCode::UNAUTHORIZED {
            return (self.status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response();
        }
        (self.status, body).into_response()
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::Overloaded => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", message).retry_later(),
            SubmitError::CommitFailed(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "commit_failed", message),
            SubmitError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ingest_stopped", message),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let (status, code) = match e {
            AuthError::Missing | AuthError::Invalid => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AuthError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let (status, code) = match &e {
            QueryError::Sql(_) => (StatusCode::BAD_REQUEST, "invalid_sql"),
            QueryError::Refused(_) => (StatusCode::FORBIDDEN, "statement_refused"),
            QueryError::TooManyRows { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_rows"),
            QueryError::TooLarge { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "result_too_large"),
            QueryError::OverMemory { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "query_memory_exceeded"),
            QueryError::Timeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_timeout"),
            QueryError::Kpi(KpiError::Unknown { .. }) => (StatusCode::NOT_FOUND, "unknown_kpi"),
            QueryError::Kpi(KpiError::BadParameter { .. }) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            QueryError::Kpi(_) => (StatusCode::INTERNAL_SERVER_ERROR, "kpi_library_broken"),
            QueryError::Lake(_) => (StatusCode::SERVICE_UNAVAILABLE, "lake_unavailable"),
            QueryError::Execution(_) => (StatusCode::INTERNAL_SERVER_ERROR, "execution_failed"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// `GET /healthz`: the process answers (liveness), and where HTTP ingest and the stream
/// processor stand.
async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "ingest": state.ingest_readiness(), "stream": state.stream_phase()}))
}

/// `GET /readyz`: 200 once HTTP ingest takes events at once, 503 while it still rebuilds
/// its dedup window (its requests would wait) or after it stopped. For load balancers and
/// deploy scripts, which should send events only once it is 200. Queries and order
/// look-ups answer from the start, so the stream processor does not hold readiness back:
/// `stream` says whether it has caught up with the lake since the start (until then an
/// order it does not hold yet gets a 503 `stream_catching_up`, not a 404), or stopped.
async fn readyz(State(state): State<AppState>) -> Response {
    let ingest = state.ingest_readiness();
    let ready = ingest.is_none_or(|r| r == Readiness::Ready);
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready, "ingest": ingest, "stream": state.stream_phase()}))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

/// `POST /v1/sql`: the body is `{"sql": "..."}` (or the SQL itself as `text/plain`).
/// Answers in the format the `Accept` header asks for (see [`respond`]).
async fn sql(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let engine = state.engine_for(&headers)?;
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_none_or(|v| v.starts_with("application/json"));
    let sql = if is_json {
        let request: SqlRequest =
            serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_body", format!("expected {{\"sql\": \"...\"}}: {e}")))?;
        request.sql
    } else {
        String::from_utf8(body.to_vec()).map_err(|_| ApiError::bad_request("invalid_body", "the SQL is not UTF-8"))?
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_sql", "the query is empty"));
    }
    let result = engine.query(&sql, state.inner.limits).await?;
    respond(result, &headers, started)
}

/// `GET /v1/kpis`: the KPI library: each KPI's name, title, definition and groupings.
async fn list_kpis(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    state.principal(&headers)?;
    Ok(Json(json!({"kpis": state.inner.engine.library().kpis().collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiQuery {
    merchant: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
}

/// `GET /v1/kpis/{name}?merchant=&from=&to=&group_by=`: runs one KPI file with its
/// parameters (see `kpi::library` for their forms and defaults); answers like `/v1/sql`.
async fn kpi(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<KpiQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let engine = state.engine_for(&headers)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_parameter", e.body_text()))?;
    let params =
        KpiParams::parse(q.merchant.as_deref(), q.from.as_deref(), q.to.as_deref(), q.group_by.as_deref(), chrono::Utc::now()).map_err(QueryError::from)?;
    let result = engine.kpi(&name, &params, state.inner.limits).await?;
    respond(result, &headers, started)
}

/// A query's rows in the format the `Accept` header asks for: CSV (`text/csv`), an Arrow
/// IPC stream (`application/vnd.apache.arrow.stream`), or else JSON
/// `{"columns", "rows", "row_count", "elapsed_ms"}`.
fn respond(result: QueryResult, headers: &HeaderMap, started: Instant) -> Result<Response, ApiError> {
    let internal = |e: arrow::error::ArrowError| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding_failed", e.to_string());
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if accept.contains("text/csv") {
        let csv = render(&result, OutputFormat::Csv).map_err(internal)?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response());
    }
    if accept.contains(ARROW_STREAM) {
        let ipc = arrow_stream(&result.schema, &result.batches).map_err(internal)?;
        return Ok(([(header::CONTENT_TYPE, ARROW_STREAM)], ipc).into_response());
    }
    let rows: Value = serde_json::from_slice(&json_rows(&result.batches).map_err(internal)?).unwrap_or(Value::Array(Vec::new()));
    let columns: Vec<Value> = result.schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect();
    let row_count = rows.as_array().map_or(0, Vec::len);
    Ok(Json(json!({
        "columns": columns,
        "rows": rows,
        "row_count": row_count,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

/// The media type of an Arrow IPC stream.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// One line's answer: its 1-based number in the body and what became of it.
#[derive(Serialize)]
struct LineAnswer {
    line: usize,
    #[serde(flatten)]
    outcome: LineOutcome,
}

/// `POST /v1/events`: NDJSON (`application/x-ndjson`, one event a line) or a single
/// event (`application/json`). Answers after the accepted lines are committed to the
/// lake, with the outcome of every line; 413 for a body over `api.max_body_bytes`, 429
/// with `Retry-After` when ingest is behind.
async fn events(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    state.require(&headers, &[Role::Admin], "send events")?;
    let ingest = state.ingest()?;
    let body = state.read_body(body).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("empty_body", "the body has no events"));
    }
    let single = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let outcomes = ingest.submit(body.to_vec(), single).await?;
    Ok(Json(answer_lines(outcomes)).into_response())
}

/// The answer to submitted lines: counts, and each line's outcome by its number.
fn answer_lines(outcomes: Vec<LineOutcome>) -> Value {
    let count = |wanted: fn(&LineOutcome) -> bool| outcomes.iter().filter(|o| wanted(o)).count();
    let accepted = count(|o| matches!(o, LineOutcome::Accepted));
    let duplicates = count(|o| matches!(o, LineOutcome::Duplicate | LineOutcome::AlreadyInLake));
    let rejected = count(|o| matches!(o, LineOutcome::Rejected(_)));
    let lines: Vec<LineAnswer> = outcomes.into_iter().enumerate().map(|(i, outcome)| LineAnswer { line: i + 1, outcome }).collect();
    json!({"accepted": accepted, "duplicates": duplicates, "rejected": rejected, "lines": lines})
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
