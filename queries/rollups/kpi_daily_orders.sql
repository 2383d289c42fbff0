-- Daily orders: orders created per day, merchant and channel, with the sums of the order
-- KPIs. Additive: shipped_by_ship_by rate = sum(shipped_in_time) / sum(ship_by_decided)
-- (time_to_ship.sql), mean time to ship = sum(time_to_ship_hours_sum) / sum(shipped),
-- mean order-to-delivery = sum(order_to_delivery_hours_sum) / sum(delivered).
-- day: the UTC date of `order.created`. Counts as the events stand at the rollup.
WITH placed AS (
    SELECT
        o.*,
        p.parcels_shipped,
        p.parcels_delivered,
        p.last_delivered_at
    FROM orders o
    LEFT JOIN (
        SELECT order_id, count(*) AS parcels_shipped, count(delivered_at) AS parcels_delivered, max(delivered_at) AS last_delivered_at
        FROM parcels
        GROUP BY order_id
    ) p ON p.order_id = o.order_id
    WHERE o.created_at >= $from AND o.created_at < $to
)
SELECT
    CAST(created_at AS DATE) AS day,
    merchant_id,
    channel,
    count(*) AS orders,
    count(cancelled_at) AS cancelled,
    count(first_shipped_at) AS shipped,
    sum((date_part('epoch', first_shipped_at) - date_part('epoch', created_at)) / 3600.0) AS time_to_ship_hours_sum,
    sum(CASE WHEN first_shipped_at IS NOT NULL AND ship_by IS NOT NULL AND first_shipped_at <= ship_by THEN 1 ELSE 0 END) AS shipped_in_time,
    sum(CASE WHEN ship_by IS NOT NULL AND (first_shipped_at IS NOT NULL OR cancelled_at IS NULL) THEN 1 ELSE 0 END) AS ship_by_decided,
    sum(CASE WHEN parcels_delivered > 0 AND parcels_delivered = parcels_shipped THEN 1 ELSE 0 END) AS delivered,
    sum(CASE WHEN parcels_delivered > 0 AND parcels_delivered = parcels_shipped
             THEN (date_part('epoch', last_delivered_at) - date_part('epoch', created_at)) / 3600.0 END) AS order_to_delivery_hours_sum,
    count(completed_at) AS completed,
    count(return_requested_at) AS return_requested
FROM placed
GROUP BY 1, 2, 3
