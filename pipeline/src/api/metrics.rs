//! `GET /metrics`: the numbers an operator of `orderpulse run` watches, in the Prometheus
//! text format: the stream processor's progress and state size, and whether HTTP ingest
//! takes events. Every value is read in constant time (no walk over the orders), so a
//! scrape never holds up the processor. Aggregates over every merchant: admins and
//! analysts only.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::api::auth::Role;
use crate::ingest::http::Readiness;
use crate::metrics::{Exposition, Kind};
use crate::model::Timestamp;
use crate::stream::processor::Phase;

/// `GET /metrics`.
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.require(&headers, &[Role::Admin, Role::Analyst], "read the metrics of every merchant")?;
    let mut page = Exposition::default();
    if let Some(ready) = app.ingest_readiness() {
        page.single("orderpulse_http_ingest_ready", Kind::Gauge, "1 once HTTP ingest takes events at once.", flag(ready == Readiness::Ready));
    }
    if let Some(lookup) = &app.orders {
        let phase = lookup.processor.phase();
        page.single(
            "orderpulse_stream_caught_up",
            Kind::Gauge,
            "1 once the stream processor has read the whole lake since its start (and until it stops).",
            flag(phase == Phase::CaughtUp),
        );
        page.single("orderpulse_stream_stopped", Kind::Gauge, "1 once the stream processor has stopped (see the log).", flag(phase == Phase::Stopped));
        let state = lookup.state.read().map_err(|_| super::orders::poisoned())?;
        let (counters, watermark) = (state.counters(), state.watermark());
        let gauges = [
            ("orderpulse_stream_orders", "Orders in the stream state.", state.order_count()),
            ("orderpulse_stream_parcels", "Parcels in the stream state.", state.parcel_count()),
            ("orderpulse_stream_pending_timers", "Event-time timers waiting for the watermark.", state.pending_timers()),
        ];
        drop(state);
        for (name, help, value) in gauges {
            page.single(name, Kind::Gauge, help, value as f64);
        }
        let counts = [
            ("orderpulse_stream_events_applied_total", "Events applied to the stream state.", counters.applied),
            ("orderpulse_stream_duplicate_events_total", "Events the state had applied before.", counters.duplicates),
            ("orderpulse_stream_late_events_total", "Events behind the watermark when they arrived (still applied).", counters.late),
            ("orderpulse_stream_evicted_orders_total", "Finished or idle orders let go after the retention.", counters.evicted_orders),
            ("orderpulse_stream_merchant_conflicts_total", "Order ids whose events named two merchants.", counters.merchant_conflicts),
        ];
        for (name, help, value) in counts {
            page.single(name, Kind::Counter, help, value as f64);
        }
        if let Some(watermark) = watermark {
            let seconds = watermark as f64 / Timestamp::MICROS_PER_SECOND as f64;
            page.single("orderpulse_stream_watermark_seconds", Kind::Gauge, "The event-time watermark (Unix time): no event older is expected.", seconds);
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page.finish()).into_response())
}

/// A yes/no gauge's value.
fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}
