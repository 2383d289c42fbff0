-- parcel_etas: one row per delivered parcel that got at least one ETA window
-- (`estimated_delivery` on a scan) at or before its first `delivered` scan, with the first
-- and the last such window. Scans are ordered by event time; ties between scans at the
-- same instant are broken by event id, so the result does not depend on arrival order.
--
-- It reads the scans that carry an ETA (a small share of all scans) against each parcel's
-- first delivery, straight from `carrier_events`, not through `parcels`: KPIs join it to
-- the parcels they count. The first and the last window are ordered aggregates
-- (`first_value(x ORDER BY ...)`, `last_value(x ORDER BY ...)`; DuckDB's `first` and
-- `last`, see queries/README.md) over each parcel's ETA scans, not a window function
-- numbering them: one pass, no sort.
CREATE VIEW parcel_etas AS
WITH delivery_times AS (
    SELECT carrier, tracking_number, min(occurred_at) AS delivered_at
    FROM carrier_events
    WHERE status = 'delivered'
    GROUP BY carrier, tracking_number
)
SELECT
    e.carrier,
    e.tracking_number,
    first_value(e.eta_from ORDER BY e.occurred_at, e.event_id) AS first_eta_from,
    first_value(e.eta_to ORDER BY e.occurred_at, e.event_id) AS first_eta_to,
    last_value(e.eta_from ORDER BY e.occurred_at, e.event_id) AS last_eta_from,
    last_value(e.eta_to ORDER BY e.occurred_at, e.event_id) AS last_eta_to
FROM (
    SELECT carrier, tracking_number, occurred_at, event_id, eta_from, eta_to
    FROM carrier_events
    WHERE eta_from IS NOT NULL AND eta_to IS NOT NULL
) e
JOIN delivery_times t ON t.carrier = e.carrier AND t.tracking_number = e.tracking_number
WHERE e.occurred_at <= t.delivered_at
GROUP BY e.carrier, e.tracking_number
