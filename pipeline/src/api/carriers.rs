//! Raw carrier payloads: `POST /v1/carriers/{carrier}/webhook` runs the carrier's adapter
//! and feeds the canonical scans in like `POST /v1/events` (same group commit, same
//! per-line answers, acknowledged once durable). A payload the adapter refuses, or one
//! for a carrier without an adapter, is quarantined whole with the reason, then answered
//! with a 4xx naming the problem. `GET /v1/carriers/unknown-codes` counts the scans whose
//! carrier code has no mapping, per carrier and code, from the lake.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{answer_lines, ApiError, AppState};
use crate::api::auth::Role;
use crate::carriers::{adapter, AdapterError, UnknownCodes};
use crate::model::{RejectReason, Rejection};

pub(super) async fn webhook(State(state): State<AppState>, Path(carrier): Path<String>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    state.require(&headers, &[Role::Admin], "send carrier payloads")?;
    let ingest = state.ingest()?;
    let body = state.read_body(body).await?;
    let scans = adapter(&carrier, &state.inner.generic_carriers).and_then(|adapter| adapter.scans(&body));
    let scans = match scans {
        Ok(scans) => scans,
        Err(error) => {
            let rejection = Rejection { reason: RejectReason::CarrierPayload, field: Some(error.code().to_owned()), detail: error.to_string() };
            ingest.submit_refused(body.to_vec(), rejection).await?;
            let status = if matches!(error, AdapterError::UnknownCarrier(..)) { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
            return Err(ApiError::new(status, error.code(), format!("{error} (the payload is quarantined)")));
        }
    };
    let mut unknown = UnknownCodes::default();
    unknown.count(&scans);
    // Carriers report parcels with no events yet (a label without a scan): nothing to add.
    let outcomes = if scans.is_empty() {
        Vec::new()
    } else {
        let lines: Vec<String> = scans.iter().map(|scan| serde_json::to_string(scan).unwrap_or_default()).collect();
        ingest.submit(lines.join("\n").into_bytes(), false).await?
    };
    let mut answer = answer_lines(outcomes);
    answer["scans"] = json!(scans.len());
    answer["unknown_codes"] = json!(unknown.0.iter().map(|((_, code), n)| json!({"code": code, "scans": n})).collect::<Vec<_>>());
    Ok(Json(answer).into_response())
}

pub(super) async fn unknown_codes(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let engine = state.engine_for(&headers)?;
    let sql = "SELECT carrier, raw_status AS code, count(*) AS scans, max(occurred_at) AS last_seen \
               FROM carrier_events WHERE status = 'unknown' GROUP BY carrier, raw_status ORDER BY scans DESC, carrier, code";
    let result = engine.query(sql, state.inner.limits).await?;
    super::respond(result, &headers, started)
}
