-- Ticket resolution: self-service and auto-reply share, resolution time, CSAT
-- group_by: category, channel, merchant, day, week, all
--
-- Over the tickets resolved in the period [from, to) (day and week group by resolution):
-- self_service_share, auto_reply_share, agent_share: how they were resolved
--   (`resolution` of `ticket.resolved`); the three add up to 1 when every ticket says.
-- resolution_hours_p50: the median hours from `ticket.opened` to `ticket.resolved`
--   (tickets whose opening has not arrived are left out of it).
-- csat_mean: the mean satisfaction score (1-5) of the resolved tickets that have one;
--   csat_responses says how many had one.
-- escalated_share: the share that were escalated before resolution.
SELECT
    group_key,
    count(*) AS resolved,
    avg(CASE WHEN resolution = 'self_service' THEN 1 ELSE 0 END) AS self_service_share,
    avg(CASE WHEN resolution = 'auto_reply' THEN 1 ELSE 0 END) AS auto_reply_share,
    avg(CASE WHEN resolution = 'agent' THEN 1 ELSE 0 END) AS agent_share,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_hours) AS resolution_hours_p50,
    avg(CAST(csat AS DOUBLE)) AS csat_mean,
    count(csat) AS csat_responses,
    avg(CASE WHEN escalated_at IS NOT NULL THEN 1 ELSE 0 END) AS escalated_share
FROM (
    SELECT
        CASE
            WHEN $group_by = 'category' THEN category
            WHEN $group_by = 'channel' THEN channel
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'day' THEN CAST(CAST(resolved_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', resolved_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        resolution,
        csat,
        escalated_at,
        (date_part('epoch', resolved_at) - date_part('epoch', opened_at)) / 3600.0 AS resolution_hours
    FROM tickets
    WHERE resolved_at >= $from AND resolved_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
) resolved_tickets
GROUP BY group_key
ORDER BY group_key
