//! The KPI library (`queries/`): every KPI computed twice, by orderpulse (DataFusion over
//! the Delta tables) and by DuckDB over the same tables' Parquet files, from the same
//! unchanged `.sql` files; the simulator's configured rates read back from the KPIs; and
//! the KPIs over HTTP (`/v1/kpis`) and the command line (`orderpulse kpi`).

use std::collections::BTreeMap;

use orderpulse::kpi::format::json_rows;
use orderpulse::kpi::library::{KpiParams, Library};
use orderpulse::kpi::{QueryLimits, SqlEngine};
use serde_json::{json, Value};

use crate::common::{local_lake, orderpulse, python, run_ok, scalar, simulated_lake, Server};

const FROM: &str = "2026-10-01T00:00:00Z";
const TO: &str = "2027-01-01T00:00:00Z";

/// A world where every order ships in one parcel, so each carrier's configured on-time
/// rate (which the simulator applies to an order's first parcel) is a parcel's too.
const SCENARIO: &str = r#"
seed = 2024
days = 14
orders_per_day = 1500.0
[behaviour]
multi_parcel_rate = 0.0
"#;

/// The configured rates of the built-in carriers (data/scenarios/default.toml writes
/// none of them out, so they are the simulator's defaults): on time, failed first
/// attempt, exception.
const CARRIERS: [(&str, f64, f64, f64); 6] = [
    ("ups", 0.92, 0.05, 0.03),
    ("fedex", 0.94, 0.04, 0.025),
    ("usps", 0.88, 0.06, 0.04),
    ("dhl", 0.93, 0.05, 0.03),
    ("sf_express", 0.95, 0.03, 0.02),
    ("cainiao", 0.85, 0.04, 0.05),
];

async fn run_kpi(engine: &SqlEngine, kpi: &str, merchant: Option<&str>, group_by: &str) -> Vec<serde_json::Map<String, Value>> {
    let params = KpiParams::parse(merchant, Some(FROM), Some(TO), Some(group_by), chrono::Utc::now()).unwrap();
    let limits = QueryLimits::time_only(std::time::Duration::from_secs(300));
    let result = engine.kpi(kpi, &params, limits).await.unwrap_or_else(|e| panic!("{kpi} by {group_by}: {e}"));
    serde_json::from_slice(&json_rows(&result.batches).unwrap()).unwrap()
}

/// Whether two values of `column` agree: text and integers exactly, other numbers within
/// 1e-9 (relative to their size, at least 1). Percentiles (`*_p50`, `*_p90`, ...) within
/// 1e-6: DataFusion's `percentile_cont` truncates the interpolation weight between two
/// neighbouring values to six decimals (`INTERPOLATION_PRECISION` in
/// datafusion-functions-aggregate), DuckDB does not.
fn same(column: &str, a: &Value, b: &Value) -> bool {
    let is_percentile = column.rsplit_once("_p").is_some_and(|(_, q)| !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()));
    let tolerance = if is_percentile { 1e-6 } else { 1e-9 };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_i64() && y.is_i64() => x == y,
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= tolerance * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kpi_matches_duckdb_and_the_simulated_rates_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let (lake, _, _) = simulated_lake(dir.path(), &["--scenario", scenario.to_str().unwrap()]);
    let engine = SqlEngine::new(local_lake(&lake));

    // Each KPI by its default grouping over all merchants, and by another of its
    // groupings for one merchant (cycling, so every grouping and merchant is used).
    let merchants = ["m_northwind", "m_rheinmode", "m_lotus"];
    let mut runs = Vec::new();
    for (i, kpi) in Library::builtin().kpis().enumerate() {
        runs.push(json!({"kpi": kpi.name, "merchant": null, "from": FROM, "to": TO, "group_by": kpi.group_by[0]}));
        let other = &kpi.group_by[1 + i % (kpi.group_by.len() - 1)];
        runs.push(json!({"kpi": kpi.name, "merchant": merchants[i % 3], "from": FROM, "to": TO, "group_by": other}));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/e2e/duckdb_kpis.py");
    let queries = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries");
    let output = run_ok(std::process::Command::new(python()).arg(script).arg(&lake).arg(queries).arg(Value::from(runs.clone()).to_string()));
    let duckdb: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();

    for (run, theirs) in runs.iter().zip(&duckdb) {
        let (kpi, group_by) = (run["kpi"].as_str().unwrap(), run["group_by"].as_str().unwrap());
        let ours = run_kpi(&engine, kpi, run["merchant"].as_str(), group_by).await;
        let what = format!("{kpi} by {group_by} for {}", run["merchant"]);
        let columns: Vec<&str> = theirs["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        let their_rows = theirs["rows"].as_array().unwrap();
        assert!(!ours.is_empty(), "{what}: no rows");
        assert_eq!(ours.len(), their_rows.len(), "{what}: orderpulse and DuckDB give different row counts");
        for (row, their_row) in ours.iter().zip(their_rows) {
            assert_eq!(row.len(), columns.len(), "{what}: columns {columns:?} vs {:?}", row.keys().collect::<Vec<_>>());
            for (column, theirs) in columns.iter().zip(their_row.as_array().unwrap()) {
                let ours = &row[*column];
                assert!(same(column, ours, theirs), "{what}, {column}: orderpulse {ours} vs DuckDB {theirs} in {row:?}");
            }
        }
    }

    // The configured rates, read back: each within three standard errors of its
    // parcels (deterministic: the scenario is seeded).
    let by_carrier = |rows: Vec<serde_json::Map<String, Value>>| -> BTreeMap<String, serde_json::Map<String, Value>> {
        rows.into_iter().map(|row| (row["group_key"].as_str().unwrap().to_owned(), row)).collect()
    };
    let on_time = by_carrier(run_kpi(&engine, "on_time_delivery_rate", None, "carrier").await);
    let first_attempt = by_carrier(run_kpi(&engine, "first_attempt_delivery_rate", None, "carrier").await);
    let exceptions = by_carrier(run_kpi(&engine, "exception_rate", None, "carrier").await.into_iter().filter(|row| row["sub_status"] == "any").collect());
    for (carrier, on_time_rate, failed_rate, exception_rate) in CARRIERS {
        let checks = [
            ("on-time rate", &on_time[carrier], "on_time_rate", "delivered", on_time_rate),
            ("first-attempt rate", &first_attempt[carrier], "first_attempt_rate", "attempted", 1.0 - failed_rate),
            ("exception rate", &exceptions[carrier], "exception_rate", "shipped", exception_rate),
        ];
        for (what, row, column, count, configured) in checks {
            let measured = row[column].as_f64().unwrap();
            let n = row[count].as_f64().unwrap();
            let tolerance = 3.0 * (configured * (1.0 - configured) / n).sqrt();
            assert!(
                (measured - configured).abs() <= tolerance,
                "{carrier} {what}: configured {configured}, measured {measured:.4} over {n} parcels (tolerance {tolerance:.4})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_over_http_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, _, _) = simulated_lake(dir.path(), &["--days", "3", "--orders-per-day", "400", "--seed", "31"]);
    let expected = run_kpi(&SqlEngine::new(local_lake(&lake)), "on_time_delivery_rate", Some("m_lotus"), "day").await;
    assert!(!expected.is_empty());

    // The command line.
    let cli = run_ok(
        orderpulse()
            .args(["kpi", "on_time_delivery_rate", "--merchant", "m_lotus", "--group-by", "day", "--from", FROM, "--to", TO, "--format", "json", "--lake"])
            .arg(&lake),
    );
    let printed: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(printed, expected);
    let refused = orderpulse().args(["kpi", "on_time_delivery_rate", "--group-by", "colour", "--lake"]).arg(&lake).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("group_by") && stderr.contains("colour"), "{stderr}");

    // HTTP: the library, one KPI in JSON, CSV and Arrow, and the errors.
    let server = Server::start(&lake, &["--no-simulator"], &[]);
    let client = reqwest::Client::new();
    let get = |path: String, accept: &'static str| {
        let request = client.get(format!("{}{path}", server.base)).header("accept", accept);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
        }
    };
    let (status, body) = get("/v1/kpis".into(), "application/json").await;
    let library: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200);
    let names: Vec<&str> = library["kpis"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, Library::builtin().kpis().map(|k| k.name.as_str()).collect::<Vec<_>>());
    assert!(library["kpis"][0]["definition"].as_str().unwrap().len() > 80);

    let path = format!("/v1/kpis/on_time_delivery_rate?merchant=m_lotus&group_by=day&from={FROM}&to={TO}");
    let (status, body) = get(path.clone(), "application/json").await;
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"], Value::from(expected.clone()));

    let (status, csv) = get(path.clone(), "text/csv").await;
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(status, 200);
    assert_eq!(csv.lines().next(), Some("group_key,delivered,on_time,on_time_rate"));
    assert_eq!(csv.lines().count(), expected.len() + 1);

    let (status, ipc) = get(path, "application/vnd.apache.arrow.stream").await;
    assert_eq!(status, 200);
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&json_rows(&batches).unwrap()).unwrap(), Value::from(expected));

    let cases = [
        ("/v1/kpis/no_such_kpi", 404, "unknown_kpi"),
        ("/v1/kpis/on_time_delivery_rate?group_by=colour", 400, "invalid_parameter"),
        ("/v1/kpis/on_time_delivery_rate?from=yesterday", 400, "invalid_parameter"),
        ("/v1/kpis/on_time_delivery_rate?from=2026-11-05&to=2026-11-01", 400, "invalid_parameter"),
        ("/v1/kpis/on_time_delivery_rate?colour=red", 400, "invalid_parameter"),
    ];
    for (path, expected_status, code) in cases {
        let (status, body) = get(path.into(), "application/json").await;
        let error: Value = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {}", String::from_utf8_lossy(&body)));
        assert_eq!((status, error["error"]["code"].as_str()), (expected_status, Some(code)), "{path}: {error}");
    }
}

/// Ingests NDJSON `lines` into `lake` from a file in `dir`.
fn ingest_lines(dir: &std::path::Path, lake: &std::path::Path, name: &str, lines: &[String]) {
    let file = dir.join(name);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    run_ok(orderpulse().args(["ingest", "--quiet"]).arg(&file).arg("--lake").arg(lake));
}

fn order_created(id: &str, merchant: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    json!({"event_id": format!("ev-{id}"), "type": "order.created", "occurred_at": at, "merchant_id": merchant, "order_id": id}).to_string()
}

/// The rollup tables' rows, ordered by their key columns (day, merchant and the rest of
/// each file's grouping).
async fn rollup_rows(lake: &std::path::Path) -> Vec<(&'static str, Vec<serde_json::Map<String, Value>>)> {
    let tables = [("kpi_daily_deliveries", 5), ("kpi_daily_orders", 3), ("kpi_daily_shipments", 5), ("kpi_daily_tickets", 4)];
    let mut rows = Vec::new();
    for (table, keys) in tables {
        let order_by: Vec<String> = (1..=keys).map(|k| k.to_string()).collect();
        rows.push((table, crate::common::query(&local_lake(lake), &format!("SELECT * FROM {table} ORDER BY {}", order_by.join(", "))).await));
    }
    rows
}

/// The same rollup rows (sums within 1e-9: they may add up in another order); `how`
/// says how `got` was computed.
fn assert_same_rollups(expected: &[(&str, Vec<serde_json::Map<String, Value>>)], got: &[(&str, Vec<serde_json::Map<String, Value>>)], how: &str) {
    for ((table, want), (_, got)) in expected.iter().zip(got) {
        assert_eq!(want.len(), got.len(), "{table}: rows {how}");
        for (w, g) in want.iter().zip(got) {
            assert_eq!(w.keys().collect::<Vec<_>>(), g.keys().collect::<Vec<_>>(), "{table}: columns");
            for (column, value) in w {
                assert!(same(column, value, &g[column]), "{table}.{column} on {}: {value} from a full run, {} {how}", w["day"], g[column]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_rollup_from_the_active_events_alone_gives_the_days_a_full_one_does() {
    // Twenty days up to today: the last eight days' deliveries, exceptions and tickets
    // are mostly of orders created before them.
    let dir = tempfile::tempdir().unwrap();
    let start = (chrono::Utc::now() - chrono::Duration::days(19)).date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let start = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (lake, _, _) = simulated_lake(dir.path(), &["--days", "20", "--orders-per-day", "300", "--seed", "47", "--start", &start]);
    run_ok(orderpulse().args(["kpi", "rollup", "--full", "--lake"]).arg(&lake));
    let full = rollup_rows(&lake).await;
    // The window's days are replaced by what the active orders', parcels' and tickets'
    // events alone give.
    run_ok(orderpulse().args(["kpi", "rollup", "--days", "8", "--lake"]).arg(&lake));
    let trailing = rollup_rows(&lake).await;
    let from = (chrono::Utc::now() - chrono::Duration::days(7)).date_naive().to_string();
    for (table, rows) in &full {
        let in_window = rows.iter().filter(|r| r["day"].as_str().is_some_and(|d| d >= from.as_str())).count();
        assert!(in_window > 0 && in_window < rows.len(), "{table}: days on both sides of the window");
    }
    assert_same_rollups(&full, &trailing, "from a trailing run");
}

/// A store that sends no support tickets (no help desk connected) and whose parcels have
/// not been scanned yet: those rollups have no rows. Their tables are still created (and
/// stay empty) by the first run, trailing or full, or `orderpulse run`, which runs
/// `--full` while a rollup table is missing, would recompute every day at every interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollup_without_rows_still_creates_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let orders = [order_created("o-1", "m_a", now - chrono::Duration::days(1)), order_created("o-2", "m_a", now - chrono::Duration::days(2))];
    for (name, window) in [("trailing", &["--days", "35"][..]), ("full", &["--full"])] {
        let lake = dir.path().join(name);
        ingest_lines(dir.path(), &lake, "orders.ndjson", &orders);
        run_ok(orderpulse().args(["kpi", "rollup"]).args(window).arg("--lake").arg(&lake));
        assert_eq!(scalar(&local_lake(&lake), "SELECT sum(orders) FROM kpi_daily_orders").await, 2, "{name}");
        for table in ["kpi_daily_deliveries", "kpi_daily_shipments", "kpi_daily_tickets"] {
            assert_eq!(scalar(&local_lake(&lake), &format!("SELECT count(*) FROM {table}")).await, 0, "{table} after a {name} run");
        }
    }
}

/// The parcel views' choices between scans: a parcel's origin is the region of its first
/// `in_transit` scan (of several at that instant the smallest region, a scan without one
/// last), and its first and last ETA are those of its first and last scans with one at
/// or before its delivery (scans at the same instant in event-id order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_parcel_views_pick_the_pickup_region_and_the_etas_by_time_then_tie_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let at = |hour: u32| format!("2026-11-02T{hour:02}:00:00Z");
    // An ETA window of a whole day: the 10th, 11th, ... of November.
    let eta = |day: u32| json!({"from": format!("2026-11-{day:02}T08:00:00Z"), "to": format!("2026-11-{day:02}T20:00:00Z")});
    let scan = |id: &str, tracking: &str, hour: u32, status: &str, place: Option<(&str, &str)>, eta_day: Option<u32>| {
        let mut scan =
            json!({"event_id": id, "type": "carrier.scan", "occurred_at": at(hour), "carrier": "ups", "tracking_number": tracking, "status": status});
        if let Some((country, region)) = place {
            scan["location"] = json!({"country": country, "region": region});
        }
        if let Some(day) = eta_day {
            scan["estimated_delivery"] = eta(day);
        }
        scan.to_string()
    };
    let shipped = |order: &str, tracking: &str| {
        json!({"event_id": format!("ship-{order}"), "type": "order.shipped", "occurred_at": at(8), "merchant_id": "m_a", "order_id": order, "carrier": "ups", "service_level": "ground", "tracking_number": tracking}).to_string()
    };
    let created = chrono::DateTime::parse_from_rfc3339(&at(7)).unwrap().with_timezone(&chrono::Utc);
    let lines = vec![
        order_created("o-1", "m_a", created),
        order_created("o-2", "m_a", created),
        shipped("o-1", "T1"),
        shipped("o-2", "T2"),
        // T1: two pickups at 10:00 (US-CA is the smaller region), a smaller one later.
        scan("t1-a", "T1", 10, "in_transit", Some(("US", "NY")), None),
        scan("t1-b", "T1", 10, "in_transit", Some(("US", "CA")), None),
        scan("t1-c", "T1", 11, "in_transit", Some(("CA", "AB")), None),
        // T1's ETAs: the 10th first; two at 12:00, the later event id (the 13th) last;
        // the one after the delivery does not count.
        scan("t1-eta-1", "T1", 9, "info_received", None, Some(10)),
        scan("t1-eta-3", "T1", 12, "in_transit", None, Some(13)),
        scan("t1-eta-2", "T1", 12, "in_transit", None, Some(12)),
        scan("t1-delivered", "T1", 13, "delivered", None, None),
        scan("t1-eta-4", "T1", 14, "delivered", None, Some(14)),
        // T2: a pickup without a region and one with, at the same instant.
        scan("t2-a", "T2", 10, "in_transit", None, None),
        scan("t2-b", "T2", 10, "in_transit", Some(("DE", "BE")), None),
    ];
    ingest_lines(dir.path(), &lake, "parcels.ndjson", &lines);
    let lake = local_lake(&lake);
    let origins = crate::common::query(&lake, "SELECT tracking_number, origin FROM parcels ORDER BY tracking_number").await;
    let origins: Vec<(&str, Option<&str>)> = origins.iter().map(|r| (r["tracking_number"].as_str().unwrap(), r["origin"].as_str())).collect();
    assert_eq!(origins, [("T1", Some("US-CA")), ("T2", Some("DE-BE"))]);
    let etas = crate::common::query(
        &lake,
        "SELECT tracking_number, CAST(date_part('day', first_eta_from) AS BIGINT) AS first_from, CAST(date_part('day', first_eta_to) AS BIGINT) AS first_to, \
         CAST(date_part('day', last_eta_from) AS BIGINT) AS last_from, CAST(date_part('day', last_eta_to) AS BIGINT) AS last_to FROM parcel_etas",
    )
    .await;
    assert_eq!(etas, [json!({"tracking_number": "T1", "first_from": 10, "first_to": 10, "last_from": 13, "last_to": 13}).as_object().unwrap().clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_with_spilling_joins_give_the_same_days_and_a_budget_too_small_for_hash_joins_falls_back_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, _, _) = simulated_lake(dir.path(), &["--days", "10", "--orders-per-day", "2000", "--seed", "46"]);
    let rollup = |env: &[(&str, &str)]| {
        let mut command = orderpulse();
        command.args(["kpi", "rollup", "--full", "--lake"]).arg(&lake).envs(env.iter().copied());
        command.output().expect("the binary starts")
    };
    let stderr = |output: &std::process::Output| String::from_utf8_lossy(&output.stderr).into_owned();
    let hash = rollup(&[]);
    assert!(hash.status.success() && !stderr(&hash).contains("sort-merge"), "4 GiB holds this lake's hash joins:\n{}", stderr(&hash));
    let expected = rollup_rows(&lake).await;
    assert!(expected.iter().all(|(_, rows)| !rows.is_empty()), "every rollup has days");

    // The joins a rollup falls back to compute the same days (sums within 1e-9: they add
    // up in another order).
    let sort_merge = rollup(&[("ORDERPULSE_KPI__ROLLUP_JOINS", "sort_merge")]);
    assert!(sort_merge.status.success(), "{}", stderr(&sort_merge));
    let spilled = rollup_rows(&lake).await;
    assert_same_rollups(&expected, &spilled, "with sort-merge joins");

    // 16 MiB, the smallest budget the configuration takes, holds neither plan once the
    // lake has 40,000 more orders: the one with hash joins runs out, the one with
    // sort-merge joins is tried, and the error names the setting. The tables keep the
    // days they had.
    simulated_lake(dir.path(), &["--days", "10", "--orders-per-day", "4000", "--seed", "47", "--start", "2026-03-01T00:00:00Z"]);
    let tight = rollup(&[("ORDERPULSE_KPI__ROLLUP_MEMORY_BYTES", "16777216")]);
    let message = stderr(&tight);
    assert!(!tight.status.success(), "{message}");
    assert!(message.contains("running it again with sort-merge joins") && message.contains("raise kpi.rollup_memory_bytes"), "{message}");
    assert_eq!(rollup_rows(&lake).await, spilled, "a failed run changes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_add_up_to_the_kpis_and_late_events_correct_their_day() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, _, _) = simulated_lake(dir.path(), &["--days", "3", "--orders-per-day", "400", "--seed", "44"]);
    let rollup = |args: &[&str]| run_ok(orderpulse().args(["kpi", "rollup"]).args(args).arg("--lake").arg(&lake));
    rollup(&["--full"]);
    let engine = SqlEngine::new(local_lake(&lake));

    // The daily sums add up to the KPIs over the whole period.
    let kpi = run_kpi(&engine, "on_time_delivery_rate", None, "carrier").await;
    let sums = crate::common::query(
        &local_lake(&lake),
        "SELECT carrier AS group_key, sum(delivered) AS delivered, sum(on_time) AS on_time FROM kpi_daily_deliveries GROUP BY carrier ORDER BY carrier",
    )
    .await;
    assert_eq!(kpi.len(), sums.len());
    for (k, s) in kpi.iter().zip(&sums) {
        assert_eq!((&k["group_key"], &k["delivered"], &k["on_time"]), (&s["group_key"], &s["delivered"], &s["on_time"]));
    }
    let totals = [
        ("SELECT sum(orders) FROM kpi_daily_orders", "SELECT count(*) FROM orders WHERE created_at IS NOT NULL"),
        ("SELECT sum(shipped) FROM kpi_daily_shipments", "SELECT count(*) FROM parcels"),
        ("SELECT sum(tickets) FROM kpi_daily_tickets", "SELECT count(*) FROM tickets WHERE opened_at IS NOT NULL"),
    ];
    for (rolled, direct) in totals {
        assert_eq!(scalar(&local_lake(&lake), rolled).await, scalar(&local_lake(&lake), direct).await, "{rolled}");
    }

    // Days relative to now: a late order inside the window corrects its day; one older
    // than the window waits for --full.
    let now = chrono::Utc::now();
    let days_ago = |n: i64| now - chrono::Duration::days(n);
    let merchant_days = |merchant: &'static str| {
        let lake = local_lake(&lake);
        async move {
            crate::common::query(
                &lake,
                &format!("SELECT CAST(day AS VARCHAR) AS day, orders FROM kpi_daily_orders WHERE merchant_id = '{merchant}' ORDER BY day"),
            )
            .await
            .into_iter()
            .map(|row| (row["day"].as_str().unwrap().to_owned(), row["orders"].as_i64().unwrap()))
            .collect::<Vec<_>>()
        }
    };
    let date = |t: chrono::DateTime<chrono::Utc>| t.date_naive().to_string();
    ingest_lines(dir.path(), &lake, "late-1.ndjson", &[order_created("late-a", "m_late", days_ago(1)), order_created("old-a", "m_late", days_ago(60))]);
    rollup(&["--days", "35"]);
    assert_eq!(merchant_days("m_late").await, [(date(days_ago(1)), 1)]);
    ingest_lines(dir.path(), &lake, "late-2.ndjson", &[order_created("late-b", "m_late", days_ago(1)), order_created("late-c", "m_late", days_ago(2))]);
    rollup(&["--days", "35"]);
    rollup(&["--days", "35"]);
    assert_eq!(merchant_days("m_late").await, [(date(days_ago(2)), 1), (date(days_ago(1)), 2)], "corrected once, not doubled");
    rollup(&["--full"]);
    assert_eq!(merchant_days("m_late").await, [(date(days_ago(60)), 1), (date(days_ago(2)), 1), (date(days_ago(1)), 2)]);
    assert_eq!(
        scalar(&local_lake(&lake), "SELECT sum(orders) FROM kpi_daily_orders").await,
        scalar(&local_lake(&lake), "SELECT count(*) FROM orders WHERE created_at IS NOT NULL").await
    );

    // `orderpulse run` keeps them up to date on its own.
    let fresh = tempfile::tempdir().unwrap();
    let (lake, _, _) = simulated_lake(fresh.path(), &["--days", "1", "--orders-per-day", "200", "--seed", "45"]);
    let server = Server::start(&lake, &["--no-simulator"], &[("ORDERPULSE_KPI__ROLLUP_INTERVAL", "300ms")]);
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let rolled = loop {
        let body = json!({"sql": "SELECT sum(orders) AS n FROM kpi_daily_orders"}).to_string();
        let (status, answer) = crate::common::post(&client, &format!("{}/v1/sql", server.base), &[], body.into_bytes()).await;
        let n = serde_json::from_slice::<Value>(&answer).ok().and_then(|a| a["rows"][0]["n"].as_i64());
        if (status == 200 && n.is_some()) || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(rolled, Some(scalar(&local_lake(&lake), "SELECT count(*) FROM orders WHERE created_at IS NOT NULL").await));
}
