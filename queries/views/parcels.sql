-- parcels: one row per parcel (an `order.shipped` event's carrier and tracking number),
-- with its order's promise and what the carrier's scans say happened to it.
--
-- Scans are joined by carrier + tracking number, not by `order_id` (most scans carry
-- none). Times are the earliest scan of each kind by event time:
--   picked_up_at     first `in_transit` scan (the carrier has the parcel)
--   first_attempt_at first delivery attempt: `delivered` or `failed_attempt`
--   delivered_at     first `delivered` scan
--   returned_at      first `returned_to_sender` scan
--   lost_at          first `exception` scan with sub-status `lost`
-- origin is the region (`country-region`) of the pickup scan (of several `in_transit`
-- scans at that same first instant, the smallest region), destination the customer's
-- region from `order.created`; together with carrier and service level they make the lane
-- (`lane`: `dhl/express DE-NW > DE-BE`; `carrier_service`: `dhl/express`).
-- last_status is the status of the latest scan by event time (ties: the later event id).
-- Every figure of a parcel's scans comes from one pass over them (`scan_times`). The last
-- status and the pickup's region are ordered aggregates (`last_value(x ORDER BY ...)`,
-- `first_value(x ORDER BY ...)`), not a sorted window over all scans or a join of the
-- scans to their first `in_transit` time; DuckDB spells them `last` and `first` (see
-- queries/README.md). The pickup's region takes only the `in_transit` scans (`FILTER`),
-- ordered by time, then by region with empty regions last, so the first of them is the
-- smallest region at the first instant.
-- Scans for tracking numbers no `order.shipped` names are not parcels yet (see
-- `carrier_events`).
CREATE VIEW parcels AS
WITH shipped AS (
    SELECT order_id, carrier, tracking_number,
           max(service_level) AS service_level,
           min(occurred_at) AS shipped_at
    FROM order_events
    WHERE type = 'order.shipped'
    GROUP BY order_id, carrier, tracking_number
),
scan_times AS (
    SELECT carrier, tracking_number,
           count(*) AS scans,
           min(CASE WHEN status = 'in_transit' THEN occurred_at END) AS picked_up_at,
           min(CASE WHEN status IN ('delivered', 'failed_attempt') THEN occurred_at END) AS first_attempt_at,
           min(CASE WHEN status = 'delivered' THEN occurred_at END) AS delivered_at,
           count(CASE WHEN status = 'failed_attempt' THEN 1 END) AS failed_attempts,
           count(CASE WHEN status = 'exception' THEN 1 END) AS exceptions,
           min(CASE WHEN status = 'returned_to_sender' THEN occurred_at END) AS returned_at,
           min(CASE WHEN status = 'exception' AND sub_status = 'lost' THEN occurred_at END) AS lost_at,
           max(occurred_at) AS last_scan_at,
           last_value(status ORDER BY occurred_at, event_id) AS last_status,
           first_value(origin ORDER BY occurred_at, origin NULLS LAST) FILTER (WHERE status = 'in_transit') AS origin
    FROM (
        SELECT carrier, tracking_number, occurred_at, event_id, status, sub_status,
               location_country || '-' || location_region AS origin
        FROM carrier_events
    ) scans
    GROUP BY carrier, tracking_number
)
SELECT
    s.order_id,
    o.merchant_id,
    s.carrier,
    s.tracking_number,
    s.service_level,
    s.shipped_at,
    o.created_at,
    o.ship_by,
    o.promised_from,
    o.promised_to,
    t.origin,
    o.customer_country || '-' || o.customer_region AS destination,
    s.carrier || '/' || s.service_level AS carrier_service,
    s.carrier || '/' || s.service_level || ' ' || t.origin || ' > ' || o.customer_country || '-' || o.customer_region AS lane,
    coalesce(t.scans, 0) AS scans,
    t.picked_up_at,
    t.first_attempt_at,
    t.delivered_at,
    coalesce(t.failed_attempts, 0) AS failed_attempts,
    coalesce(t.exceptions, 0) AS exceptions,
    t.returned_at,
    t.lost_at,
    t.last_scan_at,
    t.last_status
FROM shipped s
JOIN orders o ON o.order_id = s.order_id
LEFT JOIN scan_times t ON t.carrier = s.carrier AND t.tracking_number = s.tracking_number
