-- Orders at risk: late, stuck, or not shipped on time
-- group_by: merchant, channel, day, week, all
--
-- Open orders at `to` (created in the period [from, to), not cancelled, not every parcel
-- delivered, no customer return) that need someone's attention, by reason:
-- late:                 the promised window (`promised_to`) has passed.
-- not_shipped_on_time:  not shipped, and the merchant's `ship_by` has passed.
-- stuck:                a parcel that is shipped and not delivered has had no carrier
--                       scan for 48 hours (or none at all since it shipped 48 hours ago).
-- any:                  orders with at least one of these (an order can have several).
-- Only events that happened before `to` count. day and week group by creation.
WITH open_orders AS (
    SELECT
        CASE $group_by
            WHEN 'merchant' THEN o.merchant_id
            WHEN 'channel' THEN o.channel
            WHEN 'day' THEN CAST(CAST(o.created_at AS DATE) AS VARCHAR)
            WHEN 'week' THEN CAST(CAST(date_trunc('week', o.created_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        o.order_id,
        o.promised_to,
        o.ship_by,
        o.first_shipped_at
    FROM orders o
    WHERE o.created_at >= $from AND o.created_at < $to
      AND NOT coalesce(o.cancelled_at < $to, false)
      AND NOT coalesce(o.return_requested_at < $to, false)
      AND ($merchant IS NULL OR o.merchant_id = $merchant)
),
undelivered_parcels AS (
    SELECT p.order_id, p.carrier, p.tracking_number, p.shipped_at
    FROM parcels p
    JOIN open_orders o ON o.order_id = p.order_id
    WHERE p.shipped_at < $to AND NOT coalesce(p.delivered_at < $to, false)
),
last_scans AS (
    SELECT u.order_id, u.carrier, u.tracking_number, u.shipped_at, max(e.occurred_at) AS last_scan_at
    FROM undelivered_parcels u
    LEFT JOIN carrier_events e ON e.carrier = u.carrier AND e.tracking_number = u.tracking_number AND e.occurred_at < $to
    GROUP BY u.order_id, u.carrier, u.tracking_number, u.shipped_at
),
risks AS (
    SELECT o.group_key, o.order_id, 'late' AS risk
    FROM open_orders o
    WHERE o.promised_to < $to
      AND o.order_id IN (SELECT order_id FROM undelivered_parcels UNION ALL SELECT order_id FROM open_orders WHERE first_shipped_at IS NULL OR first_shipped_at >= $to)
    UNION ALL
    SELECT o.group_key, o.order_id, 'not_shipped_on_time' AS risk
    FROM open_orders o
    WHERE o.ship_by < $to AND (o.first_shipped_at IS NULL OR o.first_shipped_at >= $to)
    UNION ALL
    SELECT DISTINCT o.group_key, o.order_id, 'stuck' AS risk
    FROM open_orders o
    JOIN last_scans s ON s.order_id = o.order_id
    WHERE date_part('epoch', $to) - date_part('epoch', coalesce(s.last_scan_at, s.shipped_at)) > 48 * 3600
)
SELECT group_key, risk, count(*) AS orders
FROM risks
GROUP BY group_key, risk
UNION ALL
SELECT group_key, 'any' AS risk, count(DISTINCT order_id) AS orders
FROM risks
GROUP BY group_key
ORDER BY group_key, risk
