-- Daily tickets: tickets opened per day, merchant, category and channel, with how many of
-- them are resolved, by how, and their satisfaction scores. Additive: WISMO share =
-- sum(tickets) where category = 'where_is_my_order' / sum(tickets); tickets per 100
-- orders joins kpi_daily_orders on day and merchant; self-service share =
-- sum(resolved_self_service) / sum(resolved); mean CSAT = sum(csat_sum) / sum(csat_responses).
-- day: the UTC date of `ticket.opened` (ticket_resolution.sql dates by resolution).
SELECT
    CAST(opened_at AS DATE) AS day,
    merchant_id,
    category,
    channel,
    count(*) AS tickets,
    count(escalated_at) AS escalated,
    count(resolved_at) AS resolved,
    sum(CASE WHEN resolution = 'self_service' THEN 1 ELSE 0 END) AS resolved_self_service,
    sum(CASE WHEN resolution = 'auto_reply' THEN 1 ELSE 0 END) AS resolved_auto_reply,
    sum(CASE WHEN resolution = 'agent' THEN 1 ELSE 0 END) AS resolved_agent,
    sum((date_part('epoch', resolved_at) - date_part('epoch', opened_at)) / 3600.0) AS resolution_hours_sum,
    count(csat) AS csat_responses,
    sum(CAST(csat AS BIGINT)) AS csat_sum
FROM tickets
WHERE opened_at >= $from AND opened_at < $to
GROUP BY 1, 2, 3, 4
