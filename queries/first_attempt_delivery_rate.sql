-- First-attempt delivery rate
-- group_by: carrier, service_level, lane, merchant, day, week, all
--
-- The share of parcels delivered at the first attempt: the first delivery attempt
-- (`delivered` or `failed_attempt` scan, whichever came first) was the delivery.
-- Parcels: those whose first attempt falls in the period [from, to) (day and week group
-- by it). Parcels that went to a pickup point after a failed attempt count as failed at
-- the first attempt; parcels never attempted (lost, refused before an attempt, still
-- moving) are left out.
SELECT
    group_key,
    count(*) AS attempted,
    sum(first_time) AS delivered_first_time,
    avg(first_time) AS first_attempt_rate
FROM (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'carrier' THEN carrier
            WHEN $group_by = 'service_level' THEN carrier_service
            WHEN $group_by = 'lane' THEN lane
            WHEN $group_by = 'day' THEN CAST(CAST(first_attempt_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', first_attempt_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        CASE WHEN delivered_at = first_attempt_at THEN 1 ELSE 0 END AS first_time
    FROM parcels
    WHERE first_attempt_at >= $from AND first_attempt_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
) attempted_parcels
GROUP BY group_key
ORDER BY group_key
