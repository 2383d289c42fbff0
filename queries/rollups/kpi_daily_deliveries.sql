-- Daily deliveries: parcels delivered per day, merchant and lane, with the sums the
-- delivery KPIs are made of. Additive: any period's rate is a ratio of sums, e.g. the
-- on-time rate is sum(on_time) / sum(delivered) (see on_time_delivery_rate.sql for the
-- definition), mean transit hours sum(transit_hours_sum) / sum(with_pickup), the ETA
-- window hit rate sum(inside_last_eta_window) / sum(with_eta).
-- day: the UTC date of the parcel's first `delivered` scan. Percentiles are not
-- additive; they come from the KPI files themselves.
WITH delivered AS (
    SELECT *
    FROM parcels
    WHERE delivered_at >= $from AND delivered_at < $to
),
-- The last ETA before delivery: ranked among the scans that carry one (a small share of
-- all scans) against each parcel's first delivery, not through `parcels` again.
delivery_times AS (
    SELECT carrier, tracking_number, min(occurred_at) AS delivered_at
    FROM carrier_events
    WHERE status = 'delivered'
    GROUP BY carrier, tracking_number
),
estimates AS (
    SELECT
        e.carrier,
        e.tracking_number,
        e.eta_from,
        e.eta_to,
        row_number() OVER (PARTITION BY e.carrier, e.tracking_number ORDER BY e.occurred_at DESC, e.event_id DESC) AS nth_last
    FROM (
        SELECT carrier, tracking_number, occurred_at, event_id, eta_from, eta_to
        FROM carrier_events
        WHERE eta_from IS NOT NULL AND eta_to IS NOT NULL
    ) e
    JOIN delivery_times t ON t.carrier = e.carrier AND t.tracking_number = e.tracking_number
    WHERE e.occurred_at <= t.delivered_at
)
SELECT
    CAST(d.delivered_at AS DATE) AS day,
    d.merchant_id,
    d.carrier,
    d.service_level,
    d.lane,
    count(*) AS delivered,
    sum(CASE WHEN d.delivered_at <= d.promised_to THEN 1 ELSE 0 END) AS on_time,
    sum(CASE WHEN d.promised_to IS NOT NULL THEN 1 ELSE 0 END) AS with_promise,
    count(d.picked_up_at) AS with_pickup,
    sum((date_part('epoch', d.delivered_at) - date_part('epoch', d.picked_up_at)) / 3600.0) AS transit_hours_sum,
    sum((date_part('epoch', d.delivered_at) - date_part('epoch', d.promised_to)) / 3600.0) AS delay_hours_sum,
    count(l.eta_to) AS with_eta,
    sum(CASE WHEN d.delivered_at >= l.eta_from AND d.delivered_at <= l.eta_to THEN 1 ELSE 0 END) AS inside_last_eta_window
FROM delivered d
LEFT JOIN estimates l ON l.carrier = d.carrier AND l.tracking_number = d.tracking_number AND l.nth_last = 1
GROUP BY 1, 2, 3, 4, 5
