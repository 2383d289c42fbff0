-- Carrier transit time and delay versus promise
-- group_by: lane, carrier, service_level, merchant, day, week, all
--
-- Transit time: hours from the carrier's first `in_transit` scan (pickup) to its first
-- `delivered` scan, as p50, p90 and p99 (continuous percentiles) and mean.
-- Delay versus promise: hours from the end of the promised window (`promised_to`) to
-- delivery, as mean and p90; negative means early. late_rate is the share delivered
-- after `promised_to`.
-- Parcels: delivered in the period [from, to), by their first `delivered` scan, with a
-- pickup scan. The lane is carrier/service origin > destination, where origin is the
-- pickup scan's region and destination the customer's.
SELECT
    group_key,
    count(*) AS parcels,
    avg(transit_hours) AS transit_hours_mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY transit_hours) AS transit_hours_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY transit_hours) AS transit_hours_p90,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY transit_hours) AS transit_hours_p99,
    avg(delay_hours) AS delay_vs_promise_hours_mean,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY delay_hours) AS delay_vs_promise_hours_p90,
    avg(CASE WHEN delay_hours > 0 THEN 1 ELSE 0 END) AS late_rate
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
        (date_part('epoch', delivered_at) - date_part('epoch', picked_up_at)) / 3600.0 AS transit_hours,
        (date_part('epoch', delivered_at) - date_part('epoch', promised_to)) / 3600.0 AS delay_hours
    FROM parcels
    WHERE delivered_at >= $from AND delivered_at < $to
      AND picked_up_at IS NOT NULL
      AND ($merchant IS NULL OR merchant_id = $merchant)
) delivered_parcels
GROUP BY group_key
ORDER BY group_key
