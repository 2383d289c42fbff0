-- Order funnel by status
-- group_by: merchant, channel, day, week, all
--
-- Where the orders created in the period [from, to) stand at `to`: each order counted
-- once, under the furthest milestone it had reached by then, in this order of precedence:
-- cancelled, return_requested, completed, delivered (every parcel delivered),
-- partly_delivered, shipped, fulfilling, paid, created.
-- share is the status's orders over the group's orders (day and week group by creation).
-- Only events that happened before `to` count, so a past period reads as it stood then.
WITH parcel_progress AS (
    SELECT order_id, count(*) AS parcels, count(CASE WHEN delivered_at < $to THEN 1 END) AS delivered
    FROM parcels
    WHERE shipped_at < $to
    GROUP BY order_id
),
placed AS (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN o.merchant_id
            WHEN $group_by = 'channel' THEN o.channel
            WHEN $group_by = 'day' THEN CAST(CAST(o.created_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', o.created_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        CASE
            WHEN o.cancelled_at < $to THEN 'cancelled'
            WHEN o.return_requested_at < $to THEN 'return_requested'
            WHEN o.completed_at < $to THEN 'completed'
            WHEN p.delivered > 0 AND p.delivered = p.parcels THEN 'delivered'
            WHEN p.delivered > 0 THEN 'partly_delivered'
            WHEN p.parcels > 0 THEN 'shipped'
            WHEN o.fulfillment_started_at < $to THEN 'fulfilling'
            WHEN o.paid_at < $to THEN 'paid'
            ELSE 'created'
        END AS status
    FROM orders o
    LEFT JOIN parcel_progress p ON p.order_id = o.order_id
    WHERE o.created_at >= $from AND o.created_at < $to
      AND ($merchant IS NULL OR o.merchant_id = $merchant)
)
SELECT
    group_key,
    status,
    count(*) AS orders,
    CAST(count(*) AS DOUBLE) / sum(count(*)) OVER (PARTITION BY group_key) AS share
FROM placed
GROUP BY group_key, status
ORDER BY group_key, status
