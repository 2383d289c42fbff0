-- tickets: one row per support ticket, from `ticket_events`.
--
-- opened_at, escalated_at and resolved_at are the earliest event of each type by event
-- time; category, channel and priority are as opened; resolution and csat as resolved
-- (a ticket resolved twice keeps the larger value of each, which is rare and harmless).
CREATE VIEW tickets AS
SELECT
    ticket_id,
    max(merchant_id) AS merchant_id,
    max(order_id) AS order_id,
    min(CASE WHEN type = 'ticket.opened' THEN occurred_at END) AS opened_at,
    max(CASE WHEN type = 'ticket.opened' THEN category END) AS category,
    max(CASE WHEN type = 'ticket.opened' THEN channel END) AS channel,
    max(CASE WHEN type = 'ticket.opened' THEN priority END) AS priority,
    min(CASE WHEN type = 'ticket.escalated' THEN occurred_at END) AS escalated_at,
    min(CASE WHEN type = 'ticket.resolved' THEN occurred_at END) AS resolved_at,
    max(CASE WHEN type = 'ticket.resolved' THEN resolution END) AS resolution,
    max(CASE WHEN type = 'ticket.resolved' THEN csat END) AS csat
FROM ticket_events
GROUP BY ticket_id
