-- parcel_etas: one row per delivered parcel that got at least one ETA window
-- (`estimated_delivery` on a scan) at or before its first `delivered` scan, with the first
-- and the last such window. Scans are ordered by event time; ties between scans at the
-- same instant are broken by event id, so the result does not depend on arrival order.
--
-- It reads the scans that carry an ETA (a small share of all scans) against each parcel's
-- first delivery, straight from `carrier_events`, not through `parcels`: KPIs join it to
-- the parcels they count. One window orders each parcel's ETA scans: the first is number
-- 1, the last the one whose number is the count. The count repeats the row number's
-- ordering so that both share one sort (a second window ordered the other way would sort
-- the scans twice).
CREATE VIEW parcel_etas AS
WITH delivery_times AS (
    SELECT carrier, tracking_number, min(occurred_at) AS delivered_at
    FROM carrier_events
    WHERE status = 'delivered'
    GROUP BY carrier, tracking_number
),
ranked AS (
    SELECT
        e.carrier,
        e.tracking_number,
        e.eta_from,
        e.eta_to,
        row_number() OVER (PARTITION BY e.carrier, e.tracking_number ORDER BY e.occurred_at, e.event_id) AS nth_first,
        count(*) OVER (PARTITION BY e.carrier, e.tracking_number ORDER BY e.occurred_at, e.event_id
                       ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS etas
    FROM (
        SELECT carrier, tracking_number, occurred_at, event_id, eta_from, eta_to
        FROM carrier_events
        WHERE eta_from IS NOT NULL AND eta_to IS NOT NULL
    ) e
    JOIN delivery_times t ON t.carrier = e.carrier AND t.tracking_number = e.tracking_number
    WHERE e.occurred_at <= t.delivered_at
)
SELECT
    carrier,
    tracking_number,
    max(CASE WHEN nth_first = 1 THEN eta_from END) AS first_eta_from,
    max(CASE WHEN nth_first = 1 THEN eta_to END) AS first_eta_to,
    max(CASE WHEN nth_first = etas THEN eta_from END) AS last_eta_from,
    max(CASE WHEN nth_first = etas THEN eta_to END) AS last_eta_to
FROM ranked
WHERE nth_first = 1 OR nth_first = etas
GROUP BY carrier, tracking_number
