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
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'carrier' THEN carrier
            WHEN $group_by = 'service_level' THEN carrier_service
            WHEN $group_by = 'lane' THEN lane
            WHEN $group_by = 'day' THEN CAST(CAST(delivered_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', delivered_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        carrier,
        tracking_number,
        delivered_at
    FROM parcels
    WHERE delivered_at >= $from AND delivered_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
)
SELECT
    d.group_key,
    count(*) AS parcels,
    avg(CASE WHEN d.delivered_at >= x.last_eta_from AND d.delivered_at <= x.last_eta_to THEN 1 ELSE 0 END) AS inside_last_window_rate,
    avg(abs(date_part('epoch', d.delivered_at) - (date_part('epoch', x.first_eta_from) + date_part('epoch', x.first_eta_to)) / 2) / 3600.0) AS first_eta_mae_hours,
    avg(abs(date_part('epoch', d.delivered_at) - (date_part('epoch', x.last_eta_from) + date_part('epoch', x.last_eta_to)) / 2) / 3600.0) AS last_eta_mae_hours
FROM delivered d
JOIN parcel_etas x ON x.carrier = d.carrier AND x.tracking_number = d.tracking_number
GROUP BY d.group_key
ORDER BY d.group_key
