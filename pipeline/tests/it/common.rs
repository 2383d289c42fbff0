//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orderpulse::kpi::{QueryLimits, SqlEngine};
use orderpulse::lake::Lake;
use serde_json::Value;

/// The `orderpulse` binary, with a clean environment (no stray `ORDERPULSE_*`).
pub fn orderpulse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderpulse"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ORDERPULSE_") {
            command.env_remove(key);
        }
    }
    command.env("RUST_LOG", "warn");
    command
}

/// Runs a command to completion, failing the test with its stderr if it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("the binary starts");
    assert!(output.status.success(), "{command:?} failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    output
}

/// Simulates a scenario into `dir/events.ndjson`; returns the path and the ground truth.
pub fn simulate(dir: &Path, args: &[&str]) -> (PathBuf, Value) {
    let path = dir.join("events.ndjson");
    run_ok(orderpulse().arg("simulate").arg("--out").arg(&path).args(args));
    let truth = std::fs::read(format!("{}.truth.json", path.display())).expect("the truth file is written");
    (path, serde_json::from_slice(&truth).expect("the truth file is JSON"))
}

/// Simulates `args` into `dir` and ingests it into `dir/lake`; returns the lake's
/// folder, the events file and the ground truth.
pub fn simulated_lake(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf, Value) {
    let (events, truth) = simulate(dir, args);
    let lake = dir.join("lake");
    run_ok(orderpulse().args(["ingest", "--quiet"]).arg(&events).arg("--lake").arg(&lake));
    (lake, events, truth)
}

/// Runs psql against `orderpulse run`'s Postgres port as `user` (password: an API key,
/// ignored when none are configured); returns (success, stdout, stderr).
pub fn psql(port: u16, user: &str, password: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", "datafusion", "-X", "-A", "-t"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql is installed (make test-deps)");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A lake in a local folder.
pub fn local_lake(path: &Path) -> Lake {
    Lake::open(path.to_str().unwrap(), Default::default()).unwrap()
}

/// Runs SQL over a lake in-process and returns the rows as JSON objects.
pub async fn query(lake: &Lake, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    let lake = lake.clone();
    let limits = QueryLimits::time_only(std::time::Duration::from_secs(120));
    let result = SqlEngine::new(lake).query(sql, limits).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let json = orderpulse::kpi::format::json_rows(&result.batches).unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// One number from a one-row, one-column query.
pub async fn scalar(lake: &Lake, sql: &str) -> i64 {
    let rows = query(lake, sql).await;
    rows[0].values().next().and_then(Value::as_i64).unwrap_or_else(|| panic!("{sql} gave {rows:?}"))
}

/// Rows and distinct event ids over the three event tables, and quarantine rows by reason.
#[derive(Debug, PartialEq)]
pub struct LakeCounts {
    pub rows: i64,
    pub distinct_ids: i64,
    pub quarantine_by_reason: BTreeMap<String, i64>,
}

pub async fn lake_counts(lake: &Lake) -> LakeCounts {
    let mut rows = 0;
    let mut distinct_ids = 0;
    for table in ["order_events", "carrier_events", "ticket_events"] {
        rows += scalar(lake, &format!("SELECT count(*) FROM {table}")).await;
        distinct_ids += scalar(lake, &format!("SELECT count(DISTINCT event_id) FROM {table}")).await;
    }
    let quarantine_by_reason = query(lake, "SELECT reason, count(*) AS n FROM quarantine GROUP BY reason")
        .await
        .into_iter()
        .map(|row| (row["reason"].as_str().unwrap().to_owned(), row["n"].as_i64().unwrap()))
        .collect();
    LakeCounts { rows, distinct_ids, quarantine_by_reason }
}

/// The malformed-line counts of a ground truth, as the quarantine table names them.
pub fn truth_malformed(truth: &Value) -> BTreeMap<String, i64> {
    truth["malformed"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap())).collect()).unwrap_or_default()
}

/// The Python with `deltalake` and `duckdb` that `make test` installs.
pub fn python() -> PathBuf {
    let path = std::env::var_os("ORDERPULSE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python")));
    assert!(path.exists(), "{} not found: run `make test` (or `make test-deps`) to install the Python test peers", path.display());
    path
}

/// Runs an inline Python peer `script` with `args` to completion, failing the test if it
/// fails; its answer is on stdout. The script leaves at once after its last line: the
/// native thread pools of Arrow, DuckDB and deltalake can abort the interpreter's own
/// exit ("terminate called without an active exception", apache/arrow#34314) once the
/// answer is complete, which failed a CI run.
pub fn run_python<I: AsRef<std::ffi::OsStr>>(script: &str, args: impl IntoIterator<Item = I>) -> Output {
    let script = format!("{script}\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n");
    run_ok(Command::new(python()).arg("-c").arg(script).args(args))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An `orderpulse run` process on a free loopback port; SIGKILLed when dropped.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Where Postgres clients connect (on 127.0.0.1).
    pub pg_port: u16,
}

impl Server {
    /// Starts `orderpulse run --lake LAKE --listen 127.0.0.1:0 ARGS` and waits for its address.
    pub fn start(lake: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        use std::io::{BufRead, BufReader};
        let pg_port = free_port();
        let mut child = orderpulse()
            .args(["run", "--listen", "127.0.0.1:0", "--pg-listen", &format!("127.0.0.1:{pg_port}"), "--lake"])
            .arg(lake)
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let address = lines
            .find_map(|line| line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned))
            .expect("run prints the API address");
        // Keep reading, so the child never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, base: format!("http://{address}"), pg_port }
    }

    /// SIGKILL, now.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs a body (JSON unless a `content-type` header says otherwise); returns the
/// status, the body and the `Retry-After` header.
pub async fn post_full(client: &reqwest::Client, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Vec<u8>, Option<String>) {
    let mut request = client.post(url).body(body);
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, response.bytes().await.unwrap().to_vec(), retry_after)
}

/// [`post_full`] without the headers of the answer.
pub async fn post(client: &reqwest::Client, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Vec<u8>) {
    let (status, body, _) = post_full(client, url, headers, body).await;
    (status, body)
}
