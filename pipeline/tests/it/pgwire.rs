//! The Postgres wire protocol, with real clients: psql and Python's psycopg connect to
//! `orderpulse run`, list the tables through the catalog queries they (and Metabase,
//! DBeaver, Grafana) send, read the same numbers as the HTTP API, see new commits and
//! tables created after they connected, are refused anything but reads, and get the
//! SQLSTATE of their fault for a query that cannot be planned.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{local_lake, post, run_python, scalar, simulated_lake, Server};

/// psql as any user: the server has no keys configured.
fn psql(port: u16, args: &[&str]) -> (bool, String, String) {
    crate::common::psql(port, "orderpulse", "", args)
}

const PSYCOPG: &str = r#"
import json, sys
import psycopg
out = {}
with psycopg.connect(host="127.0.0.1", port=int(sys.argv[1]), user="orderpulse", dbname="datafusion", autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
    out["tables"] = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1")
    out["pg_class"] = [r[0] for r in cur.fetchall()]
    cur.execute("SELECT carrier, count(*) AS parcels FROM parcels WHERE carrier = %s GROUP BY carrier", ("dhl",))
    out["dhl_parcels"] = cur.fetchone()[1]
    cur.execute("SELECT count(*) FROM order_events")
    out["order_events"] = cur.fetchone()[0]
    try:
        cur.execute("DROP TABLE order_events")
        out["drop"] = "allowed"
    except psycopg.Error as e:
        out["drop"] = e.sqlstate
    try:
        cur.execute("SELECT count(*) FROM order_event WHERE merchant_id = %s", ("m1",))
        out["misspelt_table"] = "ran"
    except psycopg.Error as e:
        out["misspelt_table"] = e.sqlstate
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_psycopg_query_the_lake_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, _, _) = simulated_lake(dir.path(), &["--days", "2", "--orders-per-day", "300", "--seed", "12"]);
    let order_events = scalar(&local_lake(&lake), "SELECT count(*) FROM order_events").await;
    let dhl_parcels = scalar(&local_lake(&lake), "SELECT count(*) FROM parcels WHERE carrier = 'dhl'").await;

    let server = Server::start(&lake, &["--no-simulator"], &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let count = loop {
        let (ok, out, err) = psql(server.pg_port, &["-c", "SELECT count(*) FROM order_events"]);
        if ok || Instant::now() > deadline {
            assert!(ok, "psql could not query: {err}");
            break out.trim().parse::<i64>().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count, order_events);

    // psql's own catalog queries: \dt lists the tables.
    let (ok, listed, err) = psql(server.pg_port, &["-c", "\\dt"]);
    assert!(ok, "{err}");
    for table in ["order_events", "carrier_events", "ticket_events", "quarantine"] {
        assert!(listed.contains(table), "\\dt does not list {table}:\n{listed}");
    }

    // What BI tools send on connect (taken from Metabase, DBeaver and Grafana sessions).
    let metabase_tables = r#"SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW' ELSE NULL END AS "type" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" WHERE ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public')) ORDER BY "type" ASC, "schema" ASC, "name" ASC"#;
    let bi_queries = [
        metabase_tables,
        r#"SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace WHERE nspname <> 'pg_toast' ORDER BY "TABLE_SCHEM""#,
        "SELECT current_schema(),session_user",
        "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
        "SELECT version()",
        "SHOW search_path",
        "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\" FROM information_schema.columns WHERE table_name = 'order_events'",
    ];
    for query in bi_queries {
        let (ok, out, err) = psql(server.pg_port, &["-c", query]);
        assert!(ok, "{query}: {err}");
        if query == metabase_tables {
            assert!(out.contains("order_events") && out.contains("parcels"), "{out}");
        }
    }

    // Refused: anything but reads, with SQLSTATE 42501.
    for statement in ["CREATE TABLE stolen (a INT)", "INSERT INTO order_events (event_id) VALUES ('x')", "DROP TABLE order_events"] {
        let (ok, _, err) = psql(server.pg_port, &["-v", "VERBOSITY=verbose", "-c", statement]);
        assert!(!ok && err.contains("42501") && err.contains("read-only"), "{statement}: {err}");
    }

    // A query the server cannot plan is the client's fault, named as such (not XX000).
    for (query, sqlstate, words) in [
        ("SELEC count(*) FROM order_events", "42601", "SELEC"),
        ("SELECT count(*) FROM order_event", "42P01", "order_event' not found"),
        ("SELECT no_such_column FROM order_events", "42703", "no_such_column"),
    ] {
        let (ok, _, err) = psql(server.pg_port, &["-v", "VERBOSITY=verbose", "-c", query]);
        assert!(!ok && err.contains(sqlstate) && err.contains(words), "{query}: {err}");
    }

    // A new commit is visible to the long-lived session.
    let client = reqwest::Client::new();
    let line = r#"{"event_id":"pg-new-1","type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o-pg"}"#;
    let (status, body) = post(&client, &format!("{}/v1/events", server.base), &[("content-type", "application/x-ndjson")], line.into()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (ok, out, err) = psql(server.pg_port, &["-c", "SELECT count(*) FROM order_events WHERE event_id = 'pg-new-1'"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1");

    // psycopg: information_schema, pg_catalog, a view with a bound parameter, a refusal.
    let output = run_python(PSYCOPG, [server.pg_port.to_string()]);
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let tables: Vec<&str> = seen["tables"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for table in ["carrier_events", "order_events", "orders", "parcels", "quarantine", "ticket_events", "tickets"] {
        assert!(tables.contains(&table), "information_schema lacks {table}: {tables:?}");
    }
    assert!(seen["pg_class"].as_array().unwrap().iter().any(|t| t == "order_events"), "{seen}");
    assert_eq!(seen["dhl_parcels"], dhl_parcels);
    assert_eq!(seen["order_events"], order_events + 1);
    assert_eq!(seen["drop"], "42501");
    assert_eq!(seen["misspelt_table"], "42P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_created_after_a_client_connected_becomes_visible_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let server = Server::start(&lake, &["--no-simulator"], &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let (false, _, err) = psql(server.pg_port, &["-c", "SELECT 1"]) {
        assert!(Instant::now() < deadline, "psql could not connect: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A new lake: the stream processor has written no `order_status` yet, and the
    // client is told so.
    let status_count = "SELECT count(*) FROM order_status";
    let (ok, _, err) = psql(server.pg_port, &["-v", "VERBOSITY=verbose", "-c", status_count]);
    assert!(!ok && err.contains("42P01") && err.contains("order_status") && err.contains("stream processor has not written it yet"), "{err}");

    // The processor's first output creates the table; the same scope's session sees it.
    let client = reqwest::Client::new();
    let line = r#"{"event_id":"pg-first-1","type":"order.paid","occurred_at":"2026-11-20T10:00:00Z","merchant_id":"m1","order_id":"o-first"}"#;
    let (status, body) = post(&client, &format!("{}/v1/events", server.base), &[("content-type", "application/x-ndjson")], line.into()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out, err) = psql(server.pg_port, &["-c", status_count]);
        if ok {
            assert_eq!(out.trim(), "1");
            break;
        }
        assert!(Instant::now() < deadline, "order_status never became visible: {err}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
