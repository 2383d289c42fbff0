//! The HTTP API (axum). Every error is JSON: `{"error": {"code": ..., "message": ...}}`
//! with a 4xx for the caller's mistakes and a 5xx for ours.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::kpi::format::{json_rows, render, OutputFormat};
use crate::kpi::{QueryError, QueryLimits, SqlEngine};

/// What every handler can reach. Cloned per request (an `Arc` inside).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: SqlEngine,
    limits: QueryLimits,
}

impl AppState {
    pub fn new(engine: SqlEngine, limits: QueryLimits) -> Self {
        AppState { inner: Arc::new(Inner { engine, limits }) }
    }
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/sql", post(sql))
        .layer(DefaultBodyLimit::max(1 << 20))
        .with_state(state)
}

/// A failed request: status, a stable machine-readable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        let (status, code) = match &e {
            QueryError::Sql(_) => (StatusCode::BAD_REQUEST, "invalid_sql"),
            QueryError::Refused(_) => (StatusCode::FORBIDDEN, "statement_refused"),
            QueryError::TooManyRows { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "too_many_rows"),
            QueryError::Timeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_timeout"),
            QueryError::Lake(_) => (StatusCode::SERVICE_UNAVAILABLE, "lake_unavailable"),
            QueryError::Execution(_) => (StatusCode::INTERNAL_SERVER_ERROR, "execution_failed"),
        };
        ApiError { status, code, message: e.to_string() }
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

/// `POST /v1/sql`: the body is `{"sql": "..."}` (or the SQL itself as `text/plain`).
/// Answers JSON `{"columns", "rows", "row_count", "elapsed_ms"}`, or CSV when the
/// `Accept` header asks for `text/csv`.
async fn sql(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let started = Instant::now();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    let sql = if is_json {
        let request: SqlRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", format!("expected {{\"sql\": \"...\"}}: {e}")))?;
        request.sql
    } else {
        String::from_utf8(body.to_vec()).map_err(|_| ApiError::bad_request("invalid_body", "the SQL is not UTF-8"))?
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_sql", "the query is empty"));
    }
    let result = state.inner.engine.query(&sql, state.inner.limits).await?;
    let internal = |e: arrow::error::ArrowError| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "encoding_failed",
        message: e.to_string(),
    };
    let wants_csv = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv"));
    if wants_csv {
        let csv = render(&result.batches, OutputFormat::Csv).map_err(internal)?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response());
    }
    let rows: Value = serde_json::from_slice(&json_rows(&result.batches).map_err(internal)?).unwrap_or(Value::Array(Vec::new()));
    let columns: Vec<Value> =
        result.schema.fields().iter().map(|f| json!({"name": f.name(), "type": f.data_type().to_string()})).collect();
    let row_count = rows.as_array().map_or(0, Vec::len);
    Ok(Json(json!({
        "columns": columns,
        "rows": rows,
        "row_count": row_count,
        "elapsed_ms": started.elapsed().as_millis() as u64,
    }))
    .into_response())
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
