-- Daily shipments: parcels shipped per day, merchant and lane, with how many hit an
-- exception (in all and by sub-status), went back to the sender or were lost, and their
-- first delivery attempts. Additive: rates are ratios of sums over `shipped` (see
-- exception_rate.sql, lost_and_returned_rate.sql), except first_attempt_ok / attempted
-- (first_attempt_delivery_rate.sql, which dates parcels by their first attempt; here
-- they are dated by shipment).
-- day: the UTC date of the parcel's `order.shipped` event.
WITH shipped AS (
    SELECT *
    FROM parcels
    WHERE shipped_at >= $from AND shipped_at < $to
),
exception_kinds AS (
    SELECT DISTINCT s.carrier, s.tracking_number, coalesce(e.sub_status, 'other') AS sub_status
    FROM shipped s
    JOIN carrier_events e ON e.carrier = s.carrier AND e.tracking_number = s.tracking_number
    WHERE e.status = 'exception'
),
per_parcel AS (
    SELECT
        carrier,
        tracking_number,
        max(CASE WHEN sub_status = 'delayed' THEN 1 ELSE 0 END) AS delayed,
        max(CASE WHEN sub_status = 'weather' THEN 1 ELSE 0 END) AS weather,
        max(CASE WHEN sub_status = 'address_issue' THEN 1 ELSE 0 END) AS address_issue,
        max(CASE WHEN sub_status = 'damaged' THEN 1 ELSE 0 END) AS damaged,
        max(CASE WHEN sub_status = 'lost' THEN 1 ELSE 0 END) AS lost,
        max(CASE WHEN sub_status = 'customs_hold' THEN 1 ELSE 0 END) AS customs_hold,
        max(CASE WHEN sub_status = 'refused' THEN 1 ELSE 0 END) AS refused,
        max(CASE WHEN sub_status = 'held_by_carrier' THEN 1 ELSE 0 END) AS held_by_carrier,
        max(CASE WHEN sub_status = 'other' THEN 1 ELSE 0 END) AS other
    FROM exception_kinds
    GROUP BY carrier, tracking_number
)
SELECT
    CAST(s.shipped_at AS DATE) AS day,
    s.merchant_id,
    s.carrier,
    s.service_level,
    s.lane,
    count(*) AS shipped,
    count(x.carrier) AS with_exception,
    coalesce(sum(x.delayed), 0) AS exception_delayed,
    coalesce(sum(x.weather), 0) AS exception_weather,
    coalesce(sum(x.address_issue), 0) AS exception_address_issue,
    coalesce(sum(x.damaged), 0) AS exception_damaged,
    coalesce(sum(x.lost), 0) AS exception_lost,
    coalesce(sum(x.customs_hold), 0) AS exception_customs_hold,
    coalesce(sum(x.refused), 0) AS exception_refused,
    coalesce(sum(x.held_by_carrier), 0) AS exception_held_by_carrier,
    coalesce(sum(x.other), 0) AS exception_other,
    sum(CASE WHEN s.returned_at IS NOT NULL THEN 1 ELSE 0 END) AS returned_to_sender,
    sum(CASE WHEN s.lost_at IS NOT NULL THEN 1 ELSE 0 END) AS lost,
    count(s.first_attempt_at) AS attempted,
    sum(CASE WHEN s.delivered_at = s.first_attempt_at THEN 1 ELSE 0 END) AS first_attempt_ok
FROM shipped s
LEFT JOIN per_parcel x ON x.carrier = s.carrier AND x.tracking_number = s.tracking_number
GROUP BY 1, 2, 3, 4, 5
