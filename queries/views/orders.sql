-- orders: one row per order, its milestones side by side.
--
-- Built from `order_events`. Each milestone is the earliest event of its type by event
-- time (`occurred_at`), so a late or re-sent event lands where it happened. The order's
-- promise (`ship_by`, `promised_from`, `promised_to`), channel, customer and items come
-- from `order.created`: only those rows carry them (the lake leaves them empty on every
-- other order event), so a plain max() reads them, without a CASE on the type that
-- copied every event's strings first. An order's parcels are its rows in `parcels` (one
-- per carrier and tracking number): counting them here would need a distinct count,
-- which doubles the cost of the view for every KPI that reads it.
-- An order whose `order.created` has not arrived yet has a NULL `created_at`.
CREATE VIEW orders AS
SELECT
    order_id,
    max(merchant_id) AS merchant_id,
    min(CASE WHEN type = 'order.created' THEN occurred_at END) AS created_at,
    max(channel) AS channel,
    max(customer_country) AS customer_country,
    max(customer_region) AS customer_region,
    max(items) AS items,
    max(ship_by) AS ship_by,
    max(promised_from) AS promised_from,
    max(promised_to) AS promised_to,
    min(CASE WHEN type = 'order.paid' THEN occurred_at END) AS paid_at,
    min(CASE WHEN type = 'order.fulfillment_started' THEN occurred_at END) AS fulfillment_started_at,
    min(CASE WHEN type = 'order.shipped' THEN occurred_at END) AS first_shipped_at,
    min(CASE WHEN type = 'order.completed' THEN occurred_at END) AS completed_at,
    min(CASE WHEN type = 'order.cancelled' THEN occurred_at END) AS cancelled_at,
    min(CASE WHEN type = 'order.return_requested' THEN occurred_at END) AS return_requested_at
FROM order_events
GROUP BY order_id
