-- Return-to-sender and lost rates
-- group_by: carrier, service_level, lane, merchant, day, week, all
--
-- returned_to_sender_rate: the share of parcels with a `returned_to_sender` scan (refused,
--   undeliverable, or not collected from a pickup point).
-- lost_rate: the share of parcels with an `exception` scan whose sub-status is `lost`.
-- Denominator: parcels shipped in the period [from, to), by their `order.shipped` event
-- (day and week group by it); the return or loss may be reported later. A customer's
-- return after delivery (`order.return_requested`) is not a return to sender.
SELECT
    group_key,
    count(*) AS shipped,
    sum(returned) AS returned_to_sender,
    avg(returned) AS returned_to_sender_rate,
    sum(lost) AS lost,
    avg(lost) AS lost_rate
FROM (
    SELECT
        CASE
            WHEN $group_by = 'merchant' THEN merchant_id
            WHEN $group_by = 'carrier' THEN carrier
            WHEN $group_by = 'service_level' THEN carrier_service
            WHEN $group_by = 'lane' THEN lane
            WHEN $group_by = 'day' THEN CAST(CAST(shipped_at AS DATE) AS VARCHAR)
            WHEN $group_by = 'week' THEN CAST(CAST(date_trunc('week', shipped_at) AS DATE) AS VARCHAR)
            ELSE 'all'
        END AS group_key,
        CASE WHEN returned_at IS NOT NULL THEN 1 ELSE 0 END AS returned,
        CASE WHEN lost_at IS NOT NULL THEN 1 ELSE 0 END AS lost
    FROM parcels
    WHERE shipped_at >= $from AND shipped_at < $to
      AND ($merchant IS NULL OR merchant_id = $merchant)
) shipped_parcels
GROUP BY group_key
ORDER BY group_key
