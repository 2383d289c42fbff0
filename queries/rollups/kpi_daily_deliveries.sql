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
    count(x.last_eta_to) AS with_eta,
    sum(CASE WHEN d.delivered_at >= x.last_eta_from AND d.delivered_at <= x.last_eta_to THEN 1 ELSE 0 END) AS inside_last_eta_window
FROM delivered d
LEFT JOIN parcel_etas x ON x.carrier = d.carrier AND x.tracking_number = d.tracking_number
GROUP BY 1, 2, 3, 4, 5
