-- Ticket volume per 100 orders, by category and channel
-- group_by: merchant, day, week, all
--
-- Support tickets opened in the period [from, to) per 100 orders created in the same
-- period, split by the ticket's category and channel (one row per group, category and
-- channel that had tickets).
-- The orders of the denominator are those of the same group: the same merchant, or
-- created on the same day or week. A ticket counts once, when it was opened, whatever
-- happened to it after; tickets without an order count too.
WITH opened AS (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'day' THEN CAST(CAST(opened_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', opened_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        coalesce(category, 'other') AS category,
        coalesce(channel, 'other') AS channel
    FROM tickets
    WHERE opened_at >= $from AND opened_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
),
created AS (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'day' THEN CAST(CAST(created_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', created_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        count(*) AS orders
    FROM orders
    WHERE created_at >= $from AND created_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
    GROUP BY 1
)
SELECT
    t.group_key,
    t.category,
    t.channel,
    count(*) AS tickets,
    max(c.orders) AS orders,
    CAST(count(*) AS DOUBLE) * 100 / max(c.orders) AS tickets_per_100_orders
FROM opened t
LEFT JOIN created c ON c.group_key = t.group_key
GROUP BY t.group_key, t.category, t.channel
ORDER BY t.group_key, t.category, t.channel
