//! `GET /v1/orders/{order_id}` (the order's state and full timeline) and
//! `GET /v1/orders/{order_id}/status-text` (the plain-language answer to "where is my
//! order?"). Both read the stream processor's state in memory, never the lake: a
//! look-up is a hash-map read. A merchant's key finds only that merchant's orders (any
//! other order is "not found", so order ids of other merchants cannot be probed); an
//! order whose events name two merchants is shown to neither.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::kpi::Scope;
use crate::model::{Timestamp, Window};
use crate::notify::status_text::StatusTexts;
use crate::stream::order::{Flag, OrderState, OrderView, ParcelState};
use crate::stream::processor::{Phase, ProcessorStatus, SharedState};

/// What the order endpoints read: the live state, where its processor stands, and the
/// status templates.
#[derive(Clone)]
pub struct OrderLookup {
    pub state: SharedState,
    pub processor: ProcessorStatus,
    pub texts: Arc<StatusTexts>,
}

fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

#[derive(Serialize)]
struct WindowJson {
    from: String,
    to: String,
}

fn window(w: Window) -> WindowJson {
    WindowJson { from: time(w.from), to: time(w.to) }
}

#[derive(Serialize)]
struct Milestone {
    milestone: &'static str,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize)]
struct Location<'a> {
    city: Option<&'a str>,
    region: Option<&'a str>,
    country: Option<&'a str>,
}

#[derive(Serialize)]
struct ScanJson<'a> {
    at: String,
    status: &'static str,
    sub_status: Option<&'static str>,
    raw_status: Option<&'a str>,
    description: Option<&'a str>,
    location: Location<'a>,
    estimated_delivery: Option<WindowJson>,
}

#[derive(Serialize)]
struct ParcelJson<'a> {
    carrier: &'a str,
    tracking_number: &'a str,
    service_level: Option<&'a str>,
    shipped_at: Option<String>,
    status: Option<&'static str>,
    scans: Vec<ScanJson<'a>>,
}

#[derive(Serialize)]
struct Timeline<'a> {
    order_id: &'a str,
    merchant_id: Option<&'a str>,
    status: &'static str,
    flags: Vec<Flag>,
    channel: Option<&'a str>,
    ship_by: Option<String>,
    promised_delivery: Option<WindowJson>,
    /// The window to expect now: the carrier's latest ETA, else the promise.
    eta: Option<WindowJson>,
    milestones: Vec<Milestone>,
    parcels: Vec<ParcelJson<'a>>,
    /// Event time up to which the state is complete.
    watermark: Option<String>,
}

fn timeline<'a>(view: &OrderView<'a>, watermark: Option<i64>, grace: i64) -> Timeline<'a> {
    let order = view.order;
    let mut milestones: Vec<Milestone> = Vec::new();
    if let Some(c) = &order.checkout {
        milestones.push(Milestone { milestone: "order_created", at: time(c.at), detail: None });
    }
    for (event, mark) in order.milestones.by_event() {
        if let Some(mark) = mark {
            // `order.paid` is the milestone `paid`.
            let name = event.as_str().trim_start_matches("order.");
            milestones.push(Milestone { milestone: name, at: time(mark.at), detail: mark.detail.as_ref().map(ToString::to_string) });
        }
    }
    for parcel in view.parcels {
        if let Some(shipped) = &parcel.shipped {
            milestones.push(Milestone { milestone: "shipped", at: time(shipped.at), detail: Some(parcel.tracking_number.to_string()) });
        }
    }
    milestones.sort_by(|a, b| a.at.cmp(&b.at));
    let parcels = view.parcels.iter().map(|p| parcel_json(p)).collect();
    Timeline {
        order_id: &order.order_id,
        merchant_id: order.merchant_id.as_deref(),
        status: view.status().as_str(),
        flags: view.flags(watermark, grace),
        channel: order.checkout.as_ref().and_then(|c| c.channel.as_deref()),
        ship_by: order.checkout.as_ref().and_then(|c| c.ship_by).map(time),
        promised_delivery: order.checkout.as_ref().and_then(|c| c.promised_delivery).map(window),
        eta: view.current_eta().map(window),
        milestones,
        parcels,
        watermark: watermark.map(|w| time(Timestamp::from_micros_utc(w))),
    }
}

fn parcel_json(parcel: &ParcelState) -> ParcelJson<'_> {
    ParcelJson {
        carrier: &parcel.carrier,
        tracking_number: &parcel.tracking_number,
        service_level: parcel.service_level(),
        shipped_at: parcel.shipped.as_ref().map(|m| time(m.at)),
        status: parcel.status().map(|s| s.as_str()),
        scans: parcel
            .scans
            .iter()
            .map(|s| ScanJson {
                at: time(s.at),
                status: s.status.as_str(),
                sub_status: s.sub_status.map(|x| x.as_str()),
                raw_status: s.texts.raw_status.as_deref(),
                description: s.texts.description.as_deref(),
                location: Location { city: s.texts.city.as_deref(), region: s.texts.region.as_deref(), country: s.texts.country.as_deref() },
                estimated_delivery: s.estimated_delivery.map(window),
            })
            .collect(),
    }
}

impl AppState {
    fn order_lookup(&self) -> Result<&OrderLookup, ApiError> {
        self.orders.as_ref().ok_or(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_not_running",
            "order look-ups need the stream processor, which this process does not run (use `orderpulse run`)",
        ))
    }
}

/// An order the state does not hold (or the caller may not see): "not found" once the
/// processor has read the whole lake; before, "ask again" (it may be there); after the
/// processor stopped, "unavailable" (the state is stale).
fn not_found(order_id: &str, processor: &ProcessorStatus) -> ApiError {
    match processor.phase() {
        Phase::CaughtUp => ApiError::new(StatusCode::NOT_FOUND, "order_not_found", format!("no order {order_id:?} is known (yet)")),
        Phase::CatchingUp => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_catching_up",
            format!("the stream processor is still reading the lake after a start and has not seen order {order_id:?} yet; ask again shortly"),
        )
        .retry_later(),
        Phase::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stream_stopped",
            format!("the stream processor of this server stopped (see its log), and the state it reached has no order {order_id:?}"),
        ),
    }
}

/// The order, if the caller may see it. An order whose events name two merchants is
/// no merchant's: one it names gets a 409 (its order's state holds the other merchant's
/// events too), any other merchant "not found"; admins and analysts see it, flagged.
fn visible<'a>(order: Option<&'a OrderState>, scope: &Scope, order_id: &str, processor: &ProcessorStatus) -> Result<&'a OrderState, ApiError> {
    match (order, scope) {
        (Some(order), Scope::All) => Ok(order),
        (Some(order), Scope::Merchant(merchant)) if order.sole_merchant() == Some(merchant.as_str()) => Ok(order),
        (Some(order), Scope::Merchant(merchant))
            if [&order.merchant_id, &order.conflicting_merchant_id].iter().any(|m| m.as_deref() == Some(merchant.as_str())) =>
        {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "order_id_conflict",
                format!(
                    "the events of order {order_id:?} name more than one merchant, so its state mixes two orders and is not shown; \
                     order ids must be unique across the merchants of a deployment (see the README)"
                ),
            ))
        }
        _ => Err(not_found(order_id, processor)),
    }
}

pub(super) fn poisoned() -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "state_unavailable", "the stream state is unavailable")
}

/// `GET /v1/orders/{order_id}`.
pub async fn order(State(app): State<AppState>, headers: HeaderMap, Path(order_id): Path<String>) -> Result<Response, ApiError> {
    let scope = app.principal(&headers)?.scope();
    let lookup = app.order_lookup()?;
    let state = lookup.state.read().map_err(|_| poisoned())?;
    let order = visible(state.order(&order_id), &scope, &order_id, &lookup.processor)?;
    let parcels = state.parcels_of(order);
    let view = OrderView { order, parcels: &parcels };
    let body = timeline(&view, state.watermark(), state.settings().missing_created_grace);
    Ok(Json(body).into_response())
}

/// `GET /v1/orders/{order_id}/status-text`: JSON `{order_id, language, status, text}`, or
/// the text alone for `Accept: text/plain`. The language follows `Accept-Language`.
pub async fn status_text(State(app): State<AppState>, headers: HeaderMap, Path(order_id): Path<String>) -> Result<Response, ApiError> {
    let scope = app.principal(&headers)?.scope();
    let lookup = app.order_lookup()?;
    let accept_language = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let language = lookup.texts.negotiate(accept_language).to_owned();
    let (status, text) = {
        let state = lookup.state.read().map_err(|_| poisoned())?;
        let order = visible(state.order(&order_id), &scope, &order_id, &lookup.processor)?;
        let parcels = state.parcels_of(order);
        let view = OrderView { order, parcels: &parcels };
        let text = lookup
            .texts
            .render(&language, &view, chrono::Utc::now())
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "template_failed", e.to_string()))?;
        (view.status().as_str(), text)
    };
    let wants_text = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"));
    let content_language = [(header::CONTENT_LANGUAGE, language.clone())];
    if wants_text {
        return Ok((content_language, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response());
    }
    Ok((content_language, Json(json!({"order_id": order_id, "language": language, "status": status, "text": text}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_order_is_not_found_only_once_the_state_has_caught_up() {
        let cases = [
            (Phase::CatchingUp, 503, "stream_catching_up", Some("1")),
            (Phase::CaughtUp, 404, "order_not_found", None),
            (Phase::Stopped, 503, "stream_stopped", None),
        ];
        for (phase, status, code, retry_after) in cases {
            let processor = ProcessorStatus::default();
            processor.set(phase);
            let response = visible(None, &Scope::All, "o-404", &processor).expect_err("no order").into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap()), retry_after, "{code}");
        }
    }
}
