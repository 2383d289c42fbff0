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
        CASE $group_by
            WHEN 'merchant' THEN merchant_id
            WHEN 'carrier' THEN carrier
            WHEN 'service_level' THEN carrier_service
            WHEN 'lane' THEN lane
            WHEN 'day' THEN CAST(CAST(shipped_at AS DATE) AS VARCHAR)
            WHEN 'week' THEN CAST(CAST(date_trunc('week', shipped_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        carrier,
        tracking_number
    FROM parcels
    WHERE shipped_at >= $from AND shipped_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
),
totals AS (
    SELECT group_key, count(*) AS shipped FROM shipped GROUP BY group_key
),
exceptions AS (
    SELECT DISTINCT s.group_key, s.carrier, s.tracking_number, coalesce(e.sub_status, 'other') AS sub_status
    FROM shipped s
    JOIN carrier_events e ON e.carrier = s.carrier AND e.tracking_number = s.tracking_number
    WHERE e.status = 'exception'
),
counted AS (
    SELECT group_key, sub_status, count(*) AS parcels FROM exceptions GROUP BY group_key, sub_status
    UNION ALL
    SELECT group_key, 'any' AS sub_status, count(DISTINCT carrier || ' ' || tracking_number) AS parcels
    FROM exceptions GROUP BY group_key
)
SELECT
    t.group_key,
    c.sub_status,
    c.parcels AS parcels_with_exception,
    t.shipped,
    CAST(c.parcels AS DOUBLE) / t.shipped AS exception_rate
FROM totals t
JOIN counted c ON c.group_key = t.group_key
ORDER BY t.group_key, c.sub_status
