-- ETA accuracy
-- group_by: carrier, service_level, lane, merchant, day, week, all
--
-- How well the carriers' delivery estimates (`estimated_delivery` on scans) predicted
-- the delivery.
-- inside_last_window_rate: the share of parcels delivered inside the last ETA window
--   given before delivery (from <= delivered <= to).
-- first_eta_mae_hours / last_eta_mae_hours: mean absolute error, in hours, between the
--   delivery and the middle of the first / the last ETA window given before delivery.
-- Parcels: delivered in the period [from, to), by their first `delivered` scan, that got
-- at least one ETA window at or before that scan. Ties between scans at the same instant
-- are broken by event id, so the result does not depend on arrival order.
WITH delivered AS (
    SELECT
        CASE $group_by
            WHEN 'merchant' THEN merchant_id
            WHEN 'carrier' THEN carrier
            WHEN 'service_level' THEN carrier_service
            WHEN 'lane' THEN lane
            WHEN 'day' THEN CAST(CAST(delivered_at AS DATE) AS VARCHAR)
            WHEN 'week' THEN CAST(CAST(date_trunc('week', delivered_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        carrier,
        tracking_number,
        delivered_at
    FROM parcels
    WHERE delivered_at >= $from AND delivered_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
),
-- Each delivered parcel's ETAs, ranked against its first delivery (the scans that carry
-- an ETA are a small share of all scans; `parcels` is not computed again for them).
delivery_times AS (
    SELECT carrier, tracking_number, min(occurred_at) AS delivered_at
    FROM carrier_events
    WHERE status = 'delivered'
    GROUP BY carrier, tracking_number
),
estimates AS (
    SELECT
        e.carrier,
        e.tracking_number,
        e.eta_from,
        e.eta_to,
        row_number() OVER (PARTITION BY e.carrier, e.tracking_number ORDER BY e.occurred_at, e.event_id) AS nth_first,
        row_number() OVER (PARTITION BY e.carrier, e.tracking_number ORDER BY e.occurred_at DESC, e.event_id DESC) AS nth_last
    FROM (
        SELECT carrier, tracking_number, occurred_at, event_id, eta_from, eta_to
        FROM carrier_events
        WHERE eta_from IS NOT NULL AND eta_to IS NOT NULL
    ) e
    JOIN delivery_times t ON t.carrier = e.carrier AND t.tracking_number = e.tracking_number
    WHERE e.occurred_at <= t.delivered_at
)
SELECT
    d.group_key,
    count(*) AS parcels,
    avg(CASE WHEN d.delivered_at >= l.eta_from AND d.delivered_at <= l.eta_to THEN 1 ELSE 0 END) AS inside_last_window_rate,
    avg(abs(date_part('epoch', d.delivered_at) - (date_part('epoch', f.eta_from) + date_part('epoch', f.eta_to)) / 2) / 3600.0) AS first_eta_mae_hours,
    avg(abs(date_part('epoch', d.delivered_at) - (date_part('epoch', l.eta_from) + date_part('epoch', l.eta_to)) / 2) / 3600.0) AS last_eta_mae_hours
FROM delivered d
JOIN estimates f ON f.carrier = d.carrier AND f.tracking_number = d.tracking_number AND f.nth_first = 1
JOIN estimates l ON l.carrier = d.carrier AND l.tracking_number = d.tracking_number AND l.nth_last = 1
GROUP BY d.group_key
ORDER BY d.group_key
