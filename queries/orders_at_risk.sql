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
        CASE
            WHEN $group_by = 'merchant' THEN o.merchant_id
            WHEN $group_by = 'channel' THEN o.channel
            WHEN $group_by = 'day' THEN CAST(CAST(o.created_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', o.created_at) AS DATE) AS VARCHAR)
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
-- Scans before `to`: each parcel's last one (read from the scans, not from `parcels`,
-- whose last scan may lie after `to`).
scans_before AS (
    SELECT carrier, tracking_number, max(occurred_at) AS last_scan_at
    FROM carrier_events
    WHERE occurred_at < $to
    GROUP BY carrier, tracking_number
),
-- Orders with a parcel shipped and not delivered by `to`, and whether one of those is stuck.
undelivered AS (
    SELECT
        p.order_id,
        max(CASE WHEN date_part('epoch', $to) - date_part('epoch', coalesce(s.last_scan_at, p.shipped_at)) > 48 * 3600 THEN 1 ELSE 0 END) AS stuck
    FROM parcels p
    LEFT JOIN scans_before s ON s.carrier = p.carrier AND s.tracking_number = p.tracking_number
    WHERE p.shipped_at < $to AND NOT coalesce(p.delivered_at < $to, false)
    GROUP BY p.order_id
),
-- One row per open order with its reasons, so that the views are read once.
flagged AS (
    SELECT
        o.group_key,
        o.order_id,
        o.promised_to < $to AND (u.order_id IS NOT NULL OR o.first_shipped_at IS NULL OR o.first_shipped_at >= $to) AS late,
        o.ship_by < $to AND (o.first_shipped_at IS NULL OR o.first_shipped_at >= $to) AS not_shipped_on_time,
        coalesce(u.stuck = 1, false) AS stuck
    FROM open_orders o
    LEFT JOIN undelivered u ON u.order_id = o.order_id
)
SELECT f.group_key, r.risk, count(*) AS orders
FROM flagged f
CROSS JOIN (VALUES ('late'), ('not_shipped_on_time'), ('stuck'), ('any')) AS r(risk)
WHERE CASE r.risk
    WHEN 'late' THEN f.late
    WHEN 'not_shipped_on_time' THEN f.not_shipped_on_time
    WHEN 'stuck' THEN f.stuck
    ELSE f.late OR f.not_shipped_on_time OR f.stuck
END
GROUP BY f.group_key, r.risk
ORDER BY f.group_key, r.risk
