-- Order-to-delivery time
-- group_by: merchant, channel, day, week, all
--
-- Hours from `order.created` to the delivery of the order's last parcel (mean, p50, p90):
-- what the customer waited in all.
-- Orders: every parcel delivered, the last of them in the period [from, to) (day and
-- week group by that delivery). An order with a parcel lost or returned is not
-- delivered and is left out.
SELECT
    group_key,
    count(*) AS orders,
    avg(hours) AS order_to_delivery_hours_mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS order_to_delivery_hours_p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY hours) AS order_to_delivery_hours_p90
FROM (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'channel' THEN channel
            WHEN $group_by = 'day' THEN CAST(CAST(delivered_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', delivered_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        (date_part('epoch', delivered_at) - date_part('epoch', created_at)) / 3600.0 AS hours
    FROM (
        SELECT
            o.order_id,
            o.merchant_id,
            o.channel,
            o.created_at,
            max(p.delivered_at) AS delivered_at,
            count(*) AS parcels,
            count(p.delivered_at) AS delivered_parcels
        FROM orders o
        JOIN parcels p ON p.order_id = o.order_id
        WHERE o.created_at IS NOT NULL
          AND ($merchant IS NULL OR o.merchant_id = $merchant)
        GROUP BY o.order_id, o.merchant_id, o.channel, o.created_at
    ) per_order
    WHERE parcels = delivered_parcels
      AND delivered_at >= $from AND delivered_at < $to
) delivered_orders
GROUP BY group_key
ORDER BY group_key
