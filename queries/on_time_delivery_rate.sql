-- On-time delivery rate
-- group_by: carrier, merchant, service_level, lane, day, week, all
--
-- The share of parcels delivered by the end of the promised delivery window, the window
-- the shop showed at checkout (`promised_delivery.to` of `order.created`).
-- Numerator: parcels whose first `delivered` scan is at or before `promised_to`.
-- Denominator: parcels delivered in the period [from, to), by the time of their first
-- `delivered` scan (day and week group by it too).
-- Each parcel of a multi-parcel order counts on its own, so a carrier, service or lane is
-- judged by its own parcels.
-- Left out: parcels never delivered (lost, returned, still moving: see
-- `lost_and_returned_rate` and `orders_at_risk`) and orders without a promised window.
-- Cancelled orders have no parcels.
SELECT
    group_key,
    count(*) AS delivered,
    sum(on_time) AS on_time,
    avg(on_time) AS on_time_rate
FROM (
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
        CASE WHEN delivered_at <= promised_to THEN 1 ELSE 0 END AS on_time
    FROM parcels
    WHERE delivered_at >= $from AND delivered_at < $to
      AND promised_to IS NOT NULL
      AND ($merchant IS NULL OR merchant_id = $merchant)
) delivered_parcels
GROUP BY group_key
ORDER BY group_key
