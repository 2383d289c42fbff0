-- Time to ship and shipped by ship_by
-- group_by: merchant, channel, day, week, all
--
-- time to ship: hours from `order.created` to the order's first `order.shipped`, over the
--   orders that shipped (mean, p50, p90).
-- shipped_by_ship_by_rate: the share of orders shipped at or before the merchant's own
--   shipping deadline (`ship_by`), over the orders whose outcome is known: shipped, or
--   not shipped with `ship_by` already past at `to`. Orders still inside their deadline
--   are left out.
-- Orders: created in the period [from, to) (day and week group by creation). Orders
-- cancelled before they shipped are left out of both.
SELECT
    group_key,
    count(*) AS orders,
    count(shipped_hours) AS shipped,
    avg(shipped_hours) AS time_to_ship_hours_mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY shipped_hours) AS time_to_ship_hours_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY shipped_hours) AS time_to_ship_hours_p90,
    avg(shipped_in_time) AS shipped_by_ship_by_rate
FROM (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'channel' THEN channel
            WHEN $group_by = 'day' THEN CAST(CAST(created_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', created_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        CASE WHEN first_shipped_at < $to
             THEN (date_part('epoch', first_shipped_at) - date_part('epoch', created_at)) / 3600.0
        END AS shipped_hours,
        CASE
            WHEN ship_by IS NULL THEN NULL
            WHEN first_shipped_at < $to THEN CASE WHEN first_shipped_at <= ship_by THEN 1 ELSE 0 END
            WHEN ship_by < $to THEN 0
        END AS shipped_in_time
    FROM orders
    WHERE created_at >= $from AND created_at < $to
      AND NOT (cancelled_at IS NOT NULL AND (first_shipped_at IS NULL OR cancelled_at < first_shipped_at))
      AND ($merchant IS NULL OR merchant_id = $merchant)
) created_orders
GROUP BY group_key
ORDER BY group_key
