//! The lake is a standard Delta lake: Python's `deltalake` and DuckDB (over the Parquet
//! files the Delta log lists) read the same rows orderpulse does.

use std::collections::BTreeMap;

use crate::common::{local_lake, orderpulse, run_ok, run_python, scalar, simulate};

const READER: &str = r#"
import json, sys
import duckdb
from deltalake import DeltaTable

root = sys.argv[1]
out = {}
for name in ["order_events", "carrier_events", "ticket_events", "quarantine"]:
    table = DeltaTable(f"{root}/{name}")
    rows = table.to_pyarrow_table().num_rows
    files = table.file_uris()
    via_duckdb = duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r}, hive_partitioning=true)").fetchone()[0] if files else 0
    distinct = duckdb.sql(f"SELECT count(DISTINCT {'event_id' if name != 'quarantine' else 'source_position'}) FROM read_parquet({files!r})").fetchone()[0] if files else 0
    out[name] = {"deltalake": rows, "duckdb": via_duckdb, "distinct": distinct}
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_deltalake_and_duckdb_read_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _truth) = simulate(dir.path(), &["--days", "2", "--orders-per-day", "500", "--seed", "21", "--malformed", "0.01"]);
    let lake = dir.path().join("lake");
    run_ok(orderpulse().args(["ingest", "--quiet"]).arg(&events).arg("--lake").arg(&lake).env("ORDERPULSE_INGEST__BATCH_MAX_EVENTS", "3000"));

    let output = run_python(READER, [&lake]);
    let read: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_slice(&output.stdout).unwrap();
    for (table, counts) in &read {
        let ours = scalar(&local_lake(&lake), &format!("SELECT count(*) FROM {table}")).await;
        assert!(ours > 0, "{table} is empty");
        assert_eq!(counts["deltalake"], ours, "{table}: python deltalake disagrees");
        assert_eq!(counts["duckdb"], ours, "{table}: duckdb disagrees");
        assert_eq!(counts["distinct"], ours, "{table}: duplicate keys seen by duckdb");
    }
}
