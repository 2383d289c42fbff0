-- Late-days distribution
-- group_by: carrier, merchant, service_level, lane, day, week, all
--
-- How late delivered parcels were, in whole days after the end of the promised window
-- (`promised_to`): `0` is on time, then `1`, `2`, `3`, `4-7` and `8+` days late (a parcel
-- one hour late is one day late).
-- Parcels: those delivered in the period [from, to), by their first `delivered` scan, as
-- in `on_time_delivery_rate` (so the `0` row's share is the on-time rate).
-- share is the bucket's parcels over all the group's delivered parcels.
SELECT
    group_key,
    days_late,
    count(*) AS parcels,
    CAST(count(*) AS DOUBLE) / sum(count(*)) OVER (PARTITION BY group_key) AS share
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
        CASE
            WHEN delivered_at <= promised_to THEN '0'
            WHEN date_part('epoch', delivered_at) - date_part('epoch', promised_to) <= 1 * 86400 THEN '1'
            WHEN date_part('epoch', delivered_at) - date_part('epoch', promised_to) <= 2 * 86400 THEN '2'
            WHEN date_part('epoch', delivered_at) - date_part('epoch', promised_to) <= 3 * 86400 THEN '3'
            WHEN date_part('epoch', delivered_at) - date_part('epoch', promised_to) <= 7 * 86400 THEN '4-7'
            ELSE '8+'
        END AS days_late
    FROM parcels
    WHERE delivered_at >= $from AND delivered_at < $to
      AND promised_to IS NOT NULL
      AND ($merchant IS NULL OR merchant_id = $merchant)
) delivered_parcels
GROUP BY group_key, days_late
ORDER BY group_key, days_late
