//! `orderpulse run`, as `make run` starts it: the simulator streams into the lake and
//! `/v1/sql` answers with a count that grows; bad requests get JSON 4xx answers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{post, Server};

async fn sql(client: &reqwest::Client, base: &str, query: &str) -> (u16, Value) {
    let (status, body) = post(client, &format!("{base}/v1/sql"), &[], json!({"sql": query}).to_string().into_bytes()).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_a_growing_lake_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("lake"), &["--rate", "2000"], &[("ORDERPULSE_INGEST__BATCH_MAX_AGE", "300ms")]);
    let base = server.base.clone();
    let client = reqwest::Client::new();

    let health = client.get(format!("{base}/healthz")).send().await.unwrap().bytes().await.unwrap();
    let health: Value = serde_json::from_slice(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert!(matches!(health["ingest"].as_str(), Some("starting" | "ready")), "{health}");

    // Ready once HTTP ingest has rebuilt its dedup window; until then 503.
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let response = client.get(format!("{base}/readyz")).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(status == 200, body["ready"] == true, "{status} {body}");
        if status == 200 || Instant::now() > deadline {
            break body;
        }
        assert_eq!((status, body["ingest"].as_str()), (503, Some("starting")), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["ingest"], "ready", "{ready}");

    // The count grows: wait for a first count, then for a larger one.
    let count_query = "SELECT count(*) AS n FROM order_events";
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut counts = Vec::new();
    while counts.len() < 2 && Instant::now() < deadline {
        let (status, body) = sql(&client, &base, count_query).await;
        if status == 200 {
            let n = body["rows"][0]["n"].as_i64().unwrap();
            if n > 0 && counts.last().is_none_or(|last| n > *last) {
                counts.push(n);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counts.len(), 2, "the order_events count did not grow: {counts:?}");

    let cases = [
        ("SELEC nonsense", 400, "invalid_sql"),
        ("SELECT * FROM no_such_table", 400, "invalid_sql"),
        ("CREATE TABLE x AS SELECT 1", 403, "statement_refused"),
        ("INSERT INTO order_events SELECT * FROM order_events", 403, "statement_refused"),
        ("", 400, "invalid_sql"),
    ];
    for (query, status, code) in cases {
        let (got_status, body) = sql(&client, &base, query).await;
        assert_eq!(got_status, status, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{query}: {body}");
    }
    let (status, body) = post(&client, &format!("{base}/v1/sql"), &[], b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");

    let query = json!({"sql": "SELECT type, count(*) AS n FROM order_events GROUP BY type ORDER BY type"});
    let (status, csv) = post(&client, &format!("{base}/v1/sql"), &[("accept", "text/csv")], query.to_string().into_bytes()).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("type,n\n"), "{csv}");
    assert!(csv.contains("order.created,"), "{csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_past_their_limits_are_cancelled_over_http_and_postgres_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, _, _) = crate::common::simulated_lake(dir.path(), &["--days", "2", "--orders-per-day", "1000", "--seed", "8"]);
    let limits = [
        ("ORDERPULSE_API__MAX_RESULT_ROWS", "50"),
        ("ORDERPULSE_API__MAX_RESULT_BYTES", "4096"),
        ("ORDERPULSE_API__QUERY_MEMORY_BYTES", "1048576"),
        ("ORDERPULSE_API__QUERY_TIMEOUT", "1s"),
    ];
    let server = Server::start(&lake, &["--no-simulator"], &limits);
    let client = reqwest::Client::new();
    let cases = [
        // Rows that stream (an aggregate here could pass the 1 MiB memory budget first).
        ("SELECT * FROM generate_series(1, 100000)", "too_many_rows"),
        ("SELECT * FROM carrier_events LIMIT 40", "result_too_large"),
        (
            "SELECT count(DISTINCT a.event_id || b.event_id) FROM carrier_events a JOIN carrier_events b ON a.tracking_number = b.tracking_number",
            "query_memory_exceeded",
        ),
        ("SELECT count(*) FROM generate_series(1, 100000000000)", "query_timeout"),
    ];
    for (query, code) in cases {
        let (status, body) = sql(&client, &server.base, query).await;
        assert_eq!((status, body["error"]["code"].as_str()), (422, Some(code)), "{query}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.len() > 20), "{query}: {body}");
    }
    // Postgres clients get the time and memory limits too, with their SQLSTATEs.
    let psql = |query: &str| crate::common::psql(server.pg_port, "orderpulse", "", &["-v", "VERBOSITY=verbose", "-c", query]);
    for (query, sqlstate, words) in [(cases[2].0, "53200", "memory budget of 1048576 bytes"), (cases[3].0, "57014", "longer than 1s")] {
        let (ok, _, err) = psql(query);
        assert!(!ok && err.contains(sqlstate) && err.contains(words), "{query}: {err}");
    }
    let (ok, out, err) = psql("SELECT count(*) FROM order_events");
    assert!(ok, "{err}");
    assert!(out.trim().parse::<i64>().unwrap() > 1000, "{out}");
    let (status, body) = sql(&client, &server.base, "SELECT count(*) AS n FROM order_events").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["rows"][0]["n"].as_i64().unwrap() > 1000);
}
