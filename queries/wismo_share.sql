-- WISMO share ("where is my order?")
-- group_by: merchant, channel, day, week, all
--
-- The share of support tickets that ask where an order is: category `where_is_my_order`
-- over all tickets opened in the period [from, to) (day and week group by opening).
-- wismo_or_delay_share also counts the `delay` category, the same worry in other words.
-- wismo_per_100_orders relates them to the orders created in the same period and group
-- (for group_by channel, the ticket's channel against all orders).
WITH opened AS (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'channel' THEN channel
            WHEN $group_by = 'day' THEN CAST(CAST(opened_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', opened_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'day' THEN CAST(CAST(opened_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', opened_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS orders_key,
        CASE WHEN category = 'where_is_my_order' THEN 1 ELSE 0 END AS wismo,
        CASE WHEN category IN ('where_is_my_order', 'delay') THEN 1 ELSE 0 END AS wismo_or_delay
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
        END AS orders_key,
        count(*) AS orders
    FROM orders
    WHERE created_at >= $from AND created_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
    GROUP BY 1
)
SELECT
    t.group_key,
    count(*) AS tickets,
    sum(t.wismo) AS wismo_tickets,
    avg(t.wismo) AS wismo_share,
    avg(t.wismo_or_delay) AS wismo_or_delay_share,
    CAST(sum(t.wismo) AS DOUBLE) * 100 / max(c.orders) AS wismo_per_100_orders
FROM opened t
LEFT JOIN created c ON c.orders_key = t.orders_key
GROUP BY t.group_key
ORDER BY t.group_key
