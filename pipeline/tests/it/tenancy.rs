//! Tenancy: as merchant A, try to read merchant B's rows through every path: `/v1/sql`
//! (plain selects, joins, unions, subqueries, the views, the rollups, `information_schema`, table
//! functions, file URLs, `COPY`, `CREATE EXTERNAL TABLE`), `/v1/kpis`, every result
//! format, and the Postgres wire protocol (psql, psycopg running a KPI). Every attempt
//! gets A's rows only, or a refusal. Keys: 401 without one, 403 for what a role may not do.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use orderpulse::api::auth::sha256_hex;
use orderpulse::kpi::format::json_rows;
use serde_json::{json, Value};

use crate::common::{local_lake, orderpulse, post, run_ok, run_python, scalar, simulated_lake, Server};

const ADMIN: &str = "op_test_admin_key";
const ANALYST: &str = "op_test_analyst_key";
const LOTUS: &str = "op_test_lotus_key";
const NORTHWIND: &str = "op_test_northwind_key";

fn config() -> String {
    let entry = |name: &str, role: &str, merchant: Option<&str>, key: &str| {
        let merchant = merchant.map(|m| format!("merchant = \"{m}\"\n")).unwrap_or_default();
        format!("[[auth.keys]]\nname = \"{name}\"\nrole = \"{role}\"\n{merchant}sha256 = \"{}\"\n", sha256_hex(key))
    };
    [
        entry("ops", "admin", None, ADMIN),
        entry("analyst", "analyst", None, ANALYST),
        entry("lotus", "merchant", Some("m_lotus"), LOTUS),
        entry("northwind", "merchant", Some("m_northwind"), NORTHWIND),
    ]
    .join("\n")
}

async fn sql_as(client: &reqwest::Client, base: &str, key: Option<&str>, query: &str, accept: &str) -> (u16, Vec<u8>) {
    let mut headers = vec![("accept", accept)];
    let bearer = key.map(|k| format!("Bearer {k}"));
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer.as_str()));
    }
    post(client, &format!("{base}/v1/sql"), &headers, json!({"sql": query}).to_string().into_bytes()).await
}

/// The distinct values of the first column of a JSON answer.
fn first_column(body: &[u8]) -> BTreeSet<String> {
    let answer: Value = serde_json::from_slice(body).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(body)));
    answer["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {answer}"))
        .iter()
        .map(|row| row.as_object().unwrap().values().next().unwrap().to_string().trim_matches('"').to_owned())
        .collect()
}

fn psql(port: u16, user: &str, password: &str, query: &str) -> (bool, String, String) {
    crate::common::psql(port, user, password, &["-c", query])
}

/// Runs a KPI file through psycopg as `user`: the file's `$name` parameters become
/// psycopg's `%(name)s` (the mechanical step for a driver with its own placeholders).
const PSYCOPG_KPI: &str = r#"
import datetime, json, pathlib, sys
import psycopg
port, user, password, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sql = pathlib.Path(path).read_text()
for name in ["merchant", "from", "to", "group_by"]:
    sql = sql.replace("$" + name, "%(" + name + ")s")
utc = datetime.timezone.utc
params = {"merchant": sys.argv[5], "from": datetime.datetime(2026, 10, 1, tzinfo=utc), "to": datetime.datetime(2027, 1, 1, tzinfo=utc), "group_by": "merchant"}
with psycopg.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="datafusion", autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
    tables = [r[0] for r in cur.fetchall()]
    cur.execute(sql, params)
    rows = [[str(v) for v in row] for row in cur.fetchall()]
print(json.dumps({"tables": tables, "rows": rows}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_sees_its_own_rows_on_every_path_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, _, _) = simulated_lake(dir.path(), &["--days", "2", "--orders-per-day", "400", "--seed", "5", "--malformed", "0.01"]);
    run_ok(orderpulse().args(["kpi", "rollup", "--full", "--lake"]).arg(&lake));
    // The stream processor's tables, written before the server starts (its own processor
    // would write them only at its first checkpoint).
    run_ok(orderpulse().args(["process", "--once", "--lake"]).arg(&lake));
    let config_file = dir.path().join("orderpulse.toml");
    std::fs::write(&config_file, config()).unwrap();

    // What merchant A (m_lotus) owns, counted without any scoping.
    let all = local_lake(&lake);
    let lotus_orders = scalar(&all, "SELECT count(*) FROM order_events WHERE merchant_id = 'm_lotus'").await;
    let lotus_scans = scalar(
        &all,
        "SELECT count(*) FROM carrier_events c JOIN (SELECT DISTINCT carrier, tracking_number FROM order_events \
         WHERE merchant_id = 'm_lotus' AND type = 'order.shipped') s ON c.carrier = s.carrier AND c.tracking_number = s.tracking_number",
    )
    .await;
    let lotus_etas = scalar(
        &all,
        "SELECT count(*) FROM parcel_etas x JOIN (SELECT DISTINCT carrier, tracking_number FROM order_events \
         WHERE merchant_id = 'm_lotus' AND type = 'order.shipped') s ON x.carrier = s.carrier AND x.tracking_number = s.tracking_number",
    )
    .await;
    assert!(lotus_orders > 0 && lotus_scans > 0 && lotus_etas > 0);
    assert!(scalar(&all, "SELECT count(*) FROM parcel_etas").await > lotus_etas);
    assert!(scalar(&all, "SELECT count(*) FROM quarantine").await > 0);

    let server = Server::start(&lake, &["--no-simulator", "--config", config_file.to_str().unwrap()], &[]);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let only_lotus = BTreeSet::from(["m_lotus".to_owned()]);

    // Keys: none, a wrong one; roles that may not ingest.
    for key in [None, Some("op_not_a_key")] {
        let (status, body) = sql_as(&client, &base, key, "SELECT 1", "application/json").await;
        let error: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, error["error"]["code"].as_str()), (401, Some("unauthorized")), "{key:?}");
    }
    let line = r#"{"event_id":"t-1","type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m_lotus","order_id":"o-t"}"#;
    for (key, expected) in [(LOTUS, 403), (ANALYST, 403), (ADMIN, 200)] {
        let auth = format!("Bearer {key}");
        let headers = [("content-type", "application/x-ndjson"), ("authorization", auth.as_str())];
        let (status, body) = post(&client, &format!("{base}/v1/events"), &headers, line.into()).await;
        assert_eq!(status, expected, "POST /v1/events: {}", String::from_utf8_lossy(&body));
    }
    let lotus_orders = lotus_orders + 1;

    // /v1/sql as merchant A: every query shape sees A's rows only.
    let merchant_queries = [
        "SELECT DISTINCT merchant_id FROM order_events",
        "SELECT merchant_id FROM order_events WHERE merchant_id <> 'm_lotus'",
        "SELECT DISTINCT o.merchant_id FROM order_events o JOIN ticket_events t ON o.order_id = t.order_id",
        "SELECT merchant_id FROM order_events UNION SELECT merchant_id FROM ticket_events",
        "SELECT DISTINCT merchant_id FROM ticket_events WHERE order_id IN (SELECT order_id FROM order_events)",
        "SELECT DISTINCT (SELECT max(merchant_id) FROM order_events) FROM ticket_events",
        "SELECT DISTINCT merchant_id FROM orders",
        "SELECT DISTINCT merchant_id FROM parcels",
        "SELECT DISTINCT merchant_id FROM tickets",
        "SELECT DISTINCT merchant_id FROM kpi_daily_orders",
        "SELECT DISTINCT merchant_id FROM kpi_daily_deliveries",
        "SELECT DISTINCT merchant_id FROM kpi_daily_shipments",
        "SELECT DISTINCT merchant_id FROM kpi_daily_tickets",
        "SELECT DISTINCT merchant_id FROM order_status",
    ];
    for query in merchant_queries {
        let (status, body) = sql_as(&client, &base, Some(LOTUS), query, "application/json").await;
        assert_eq!(status, 200, "{query}: {}", String::from_utf8_lossy(&body));
        let seen = first_column(&body);
        let expected = if query.contains("<> 'm_lotus'") { BTreeSet::new() } else { only_lotus.clone() };
        assert_eq!(seen, expected, "{query}");
    }
    let counts = [
        ("SELECT count(*) FROM order_events", lotus_orders),
        ("SELECT count(*) FROM carrier_events", lotus_scans),
        ("SELECT count(*) FROM parcel_etas", lotus_etas),
        ("SELECT count(*) FROM quarantine", 0),
        ("SELECT count(*) FROM order_events WHERE merchant_id = 'm_northwind'", 0),
    ];
    for (query, expected) in counts {
        let (status, body) = sql_as(&client, &base, Some(LOTUS), query, "application/json").await;
        assert_eq!((status, first_column(&body)), (200, BTreeSet::from([expected.to_string()])), "{query}");
    }
    let (_, body) =
        sql_as(&client, &base, Some(LOTUS), "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'", "application/json").await;
    let listed = first_column(&body);
    let known: BTreeSet<String> = [
        "order_events",
        "carrier_events",
        "ticket_events",
        "quarantine",
        "orders",
        "parcels",
        "parcel_etas",
        "tickets",
        "kpi_daily_deliveries",
        "kpi_daily_orders",
        "kpi_daily_shipments",
        "kpi_daily_tickets",
        "order_status",
        "timer_firings",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(listed, known, "information_schema lists other tables");

    // Statements and functions that would reach past the catalog are refused.
    let order_files = lake.join("order_events");
    let refused = [
        format!("COPY order_events TO '{}/copy.csv'", dir.path().display()),
        format!("CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{}/'", order_files.display()),
        format!("SELECT * FROM '{}/'", order_files.display()),
        format!("SELECT * FROM read_parquet('{}/')", order_files.display()),
        "CREATE VIEW mine AS SELECT 1".to_owned(),
        "INSERT INTO order_events SELECT * FROM order_events".to_owned(),
    ];
    for query in &refused {
        let (status, body) = sql_as(&client, &base, Some(LOTUS), query, "application/json").await;
        assert!((400..500).contains(&status), "{query}: {status} {}", String::from_utf8_lossy(&body));
    }

    // Every format.
    let query = "SELECT merchant_id FROM order_events";
    let (_, csv) = sql_as(&client, &base, Some(LOTUS), query, "text/csv").await;
    let csv = String::from_utf8(csv).unwrap();
    let values: BTreeSet<&str> = csv.lines().skip(1).collect();
    assert_eq!(values, BTreeSet::from(["m_lotus"]), "CSV");
    assert_eq!(csv.lines().count() as i64, lotus_orders + 1);
    let (_, ipc) = sql_as(&client, &base, Some(LOTUS), query, "application/vnd.apache.arrow.stream").await;
    let batches: Vec<_> = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None).unwrap().collect::<Result<_, _>>().unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&json_rows(&batches).unwrap()).unwrap();
    assert_eq!(rows.len() as i64, lotus_orders, "Arrow");
    assert!(rows.iter().all(|r| r["merchant_id"] == "m_lotus"), "Arrow");

    // /v1/kpis: grouped by merchant, asking for another merchant.
    let kpi = |merchant: &str, key: &'static str| {
        let url = format!("{base}/v1/kpis/order_funnel?group_by=merchant&from=2026-10-01&to=2026-12-31{merchant}");
        let request = client.get(url).header("authorization", format!("Bearer {key}"));
        async move { request.send().await.unwrap().bytes().await.unwrap().to_vec() }
    };
    assert_eq!(first_column(&kpi("", LOTUS).await), only_lotus, "/v1/kpis as merchant A");
    assert!(first_column(&kpi("&merchant=m_northwind", LOTUS).await).is_empty(), "/v1/kpis for B as A");
    assert_eq!(first_column(&kpi("", ANALYST).await).len(), 3, "an analyst sees every merchant");

    // The Postgres wire protocol.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !psql(server.pg_port, "lotus", LOTUS, "SELECT 1").0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, out, err) = psql(server.pg_port, "lotus", LOTUS, "SELECT DISTINCT merchant_id FROM order_events");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "m_lotus");
    let (ok, out, err) = psql(server.pg_port, "lotus", LOTUS, "SELECT count(*) FROM carrier_events");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), lotus_scans.to_string());
    let (ok, out, _) = psql(server.pg_port, "analyst", ANALYST, "SELECT count(DISTINCT merchant_id) FROM order_events");
    assert_eq!((ok, out.trim()), (true, "3"));
    for (user, password) in [("lotus", NORTHWIND), ("lotus", "op_wrong"), ("nobody", LOTUS)] {
        let (ok, _, err) = psql(server.pg_port, user, password, "SELECT 1");
        assert!(!ok && err.to_lowercase().contains("password authentication failed"), "{user}/{password} got in: {err}");
    }
    let (ok, _, err) = psql(server.pg_port, "lotus", LOTUS, &refused[1]);
    assert!(!ok && err.contains("read-only"), "{err}");

    // psycopg, as merchant A: the tables, and a KPI run from its file.
    let kpi_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../queries/order_funnel.sql");
    let output = run_python(PSYCOPG_KPI, [&server.pg_port.to_string(), "lotus", LOTUS, kpi_file, "m_northwind"]);
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let tables: BTreeSet<String> = seen["tables"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    assert_eq!(tables, known);
    assert_eq!(seen["rows"], json!([]), "merchant A asking for B's funnel");
    let output = run_python(PSYCOPG_KPI, [&server.pg_port.to_string(), "lotus", LOTUS, kpi_file, "m_lotus"]);
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let over_http: Value = serde_json::from_slice(&kpi("&merchant=m_lotus", LOTUS).await).unwrap();
    let http_rows: Vec<Vec<String>> = over_http["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| ["group_key", "status", "orders", "share"].iter().map(|c| row[*c].to_string().trim_matches('"').to_owned()).collect())
        .collect();
    let pg_rows: Vec<Vec<String>> = serde_json::from_value(seen["rows"].clone()).unwrap();
    assert!(!pg_rows.is_empty());
    assert_eq!(pg_rows.len(), http_rows.len());
    for (pg, http) in pg_rows.iter().zip(&http_rows) {
        assert_eq!(pg[..3], http[..3], "psycopg vs HTTP");
        let (a, b): (f64, f64) = (pg[3].parse().unwrap(), http[3].parse().unwrap());
        assert!((a - b).abs() < 1e-9, "share {a} vs {b}");
    }
}
