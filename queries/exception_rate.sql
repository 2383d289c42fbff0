-- Exception rate by sub-status
-- group_by: carrier, service_level, lane, merchant, day, week, all
--
-- The share of parcels that had an `exception` scan, per exception sub-status (`delayed`,
-- `weather`, `address_issue`, `damaged`, `lost`, `customs_hold`, `refused`,
-- `held_by_carrier`, `other`; an exception without one counts as `other`), and in all
-- (sub_status `any`).
-- Denominator: parcels shipped in the period [from, to), by their `order.shipped` event
-- (day and week group by it). Numerator: those of them with at least one exception scan of
-- the sub-status, whenever it came. A parcel with two kinds of exception counts once
-- under each, and once under `any`.
WITH shipped AS (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'carrier' THEN carrier
            WHEN $group_by = 'service_level' THEN carrier_service
            WHEN $group_by = 'lane' THEN lane
            WHEN $group_by = 'day' THEN CAST(CAST(shipped_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', shipped_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        carrier,
        tracking_number
    FROM parcels
    WHERE shipped_at >= $from AND shipped_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
),
-- Each parcel's exception sub-statuses, and `any` once for a parcel with any exception
-- (from the scans alone, so that `parcels` is read once below).
exception_kinds AS (
    SELECT DISTINCT carrier, tracking_number, coalesce(sub_status, 'other') AS sub_status
    FROM carrier_events
    WHERE status = 'exception'
    UNION ALL
    SELECT DISTINCT carrier, tracking_number, 'any' AS sub_status
    FROM carrier_events
    WHERE status = 'exception'
),
-- Per group and sub-status, the parcels that had it; sub_status NULL: the parcels with
-- no exception. Every shipped parcel is in exactly one of the NULL and `any` rows.
counted AS (
    SELECT s.group_key, x.sub_status, count(*) AS parcels
    FROM shipped s
    LEFT JOIN exception_kinds x ON x.carrier = s.carrier AND x.tracking_number = s.tracking_number
    GROUP BY s.group_key, x.sub_status
),
rated AS (
    SELECT
        group_key,
        sub_status,
        parcels,
        sum(CASE WHEN sub_status IS NULL OR sub_status = 'any' THEN parcels ELSE 0 END) OVER (PARTITION BY group_key) AS shipped
    FROM counted
)
SELECT
    group_key,
    sub_status,
    parcels AS parcels_with_exception,
    shipped,
    CAST(parcels AS DOUBLE) / shipped AS exception_rate
FROM rated
WHERE sub_status IS NOT NULL
ORDER BY group_key, sub_status
