//! Bad input on the command line: one clear error line, a non-zero exit, no panic.

use crate::common::orderpulse;

fn fails_naming(command: &mut std::process::Command, needle: &str) {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{command:?} succeeded");
    assert!(stderr.contains(needle), "{command:?}: stderr does not name {needle:?}:\n{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{command:?} panicked:\n{stderr}");
    let error_lines = stderr.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(error_lines, 1, "{command:?}: expected one error line:\n{stderr}");
}

#[test]
fn bad_input_on_the_command_line_gets_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    fails_naming(orderpulse().args(["ingest", "/no/such/events.ndjson", "--lake", lake]), "/no/such/events.ndjson");
    fails_naming(orderpulse().args(["lake", "info", "--lake", "ftp://example.com/lake"]), "ftp");
    fails_naming(orderpulse().args(["lake", "info", "--lake", "/proc/orderpulse-lake"]), "/proc/orderpulse-lake");
    fails_naming(orderpulse().args(["lake", "info", "--config", "/no/such/orderpulse.toml"]), "/no/such/orderpulse.toml");
    fails_naming(orderpulse().args(["lake", "info", "--lake", lake]).env("ORDERPULSE_INGEST__BATCH_MAX_EVENTS", "lots"), "batch_max_events");
    fails_naming(orderpulse().args(["lake", "info", "--lake", lake]).env("ORDERPULSE_API__LISTEN", "nowhere"), "api.listen");
    fails_naming(orderpulse().args(["sql", "SELEC 1", "--lake", lake]), "SELEC");
    fails_naming(orderpulse().args(["sql", "SELECT * FROM no_such_table", "--lake", lake]), "no_such_table");
    // Tables orderpulse knows but a new lake does not have yet: what creates them.
    fails_naming(orderpulse().args(["sql", "SELECT count(*) FROM orders", "--lake", lake]), "the lake has no events yet");
    fails_naming(orderpulse().args(["sql", "SELECT * FROM order_status", "--lake", lake]), "the stream processor has not written it yet");
    fails_naming(orderpulse().args(["sql", "SELECT * FROM kpi_daily_orders", "--lake", lake]), "the KPI rollups have not run");
    fails_naming(orderpulse().args(["simulate", "--scenario", "/no/such/scenario.toml"]), "/no/such/scenario.toml");
}
