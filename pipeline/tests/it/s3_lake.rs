//! The lake on S3: the same exactly-once guarantee against a real S3 API server
//! (`moto_server`, started here on loopback), read back by Python's `deltalake`; and the
//! stream processor checkpointing there and resuming from it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orderpulse::lake::Lake;

use crate::common::{lake_counts, orderpulse, python, run_ok, run_python, simulate, truth_malformed};
use crate::exactly_once::kill_repeatedly;

/// A moto S3 server on a free loopback port, with one bucket; stopped on drop.
struct MotoS3 {
    child: Child,
    endpoint: String,
    bucket: &'static str,
}

impl MotoS3 {
    async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts moto with extra environment; with authentication enforced, no bucket is
    /// created (that would need credentials too).
    async fn start_with(env: &[(&str, &str)]) -> Self {
        let port = crate::common::free_port();
        let moto = python().with_file_name("moto_server");
        let enforce_auth = !env.is_empty();
        let child = Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", moto.display()));
        let server = MotoS3 { child, endpoint: format!("http://127.0.0.1:{port}"), bucket: "orderpulse-test" };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if enforce_auth {
                if client.get(&server.endpoint).send().await.is_ok() {
                    break;
                }
            } else if let Ok(response) = client.put(format!("{}/{}", server.endpoint, server.bucket)).send().await {
                assert!(response.status().is_success(), "creating the bucket: {}", response.status());
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn lake_url(&self) -> String {
        format!("s3://{}/lake", self.bucket)
    }

    /// The configuration a client needs, as orderpulse's environment variables.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ORDERPULSE_LAKE", self.lake_url()),
            ("ORDERPULSE_LAKE__S3__ENDPOINT", self.endpoint.clone()),
            ("ORDERPULSE_LAKE__S3__REGION", "us-east-1".into()),
            ("ORDERPULSE_LAKE__S3__ACCESS_KEY_ID", "testing".into()),
            ("ORDERPULSE_LAKE__S3__SECRET_ACCESS_KEY", "testing".into()),
            ("ORDERPULSE_LAKE__S3__PATH_STYLE", "true".into()),
        ]
    }

    fn lake(&self) -> Lake {
        let options = [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_ALLOW_HTTP", "true"),
        ];
        Lake::open(&self.lake_url(), options.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).unwrap()
    }

    /// Commit files in one table's log, listed through the S3 API.
    async fn commits(&self, table: &str) -> usize {
        let url = format!("{}/{}?list-type=2&prefix=lake/{table}/_delta_log/", self.endpoint, self.bucket);
        let listing = reqwest::get(url).await.unwrap().text().await.unwrap();
        listing.matches(".json</Key>").count()
    }
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_ingest_into_s3_loses_and_doubles_nothing() {
    let s3 = MotoS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (events, truth) = simulate(dir.path(), &["--days", "2", "--orders-per-day", "1500", "--seed", "31", "--duplicates", "0.02", "--malformed", "0.005"]);
    let env = s3.env();
    let ingest = || {
        let mut command = orderpulse();
        command
            .args(["ingest", "--quiet", "--json"])
            .arg(&events)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("ORDERPULSE_INGEST__BATCH_MAX_EVENTS", "500")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        command
    };
    // moto answers one request at a time, so listing the log to time the kills lags far
    // behind the writer; the kills are timed instead: 0.3 to 1.8 s into each run.
    let started = Instant::now();
    kill_repeatedly(&ingest, async || (started.elapsed().as_millis() / 300) as usize).await;
    assert!(s3.commits("order_events").await > 1, "nothing was committed to S3");
    run_ok(&mut ingest());

    let counts = lake_counts(&s3.lake()).await;
    assert_eq!(counts.rows, counts.distinct_ids, "an event was written twice");
    assert_eq!(counts.rows, truth["events"].as_i64().unwrap(), "valid events lost or doubled");
    assert_eq!(counts.quarantine_by_reason, truth_malformed(&truth), "bad lines lost or doubled");

    // An independent reader sees the same rows on S3.
    let reader = r#"
import sys
from deltalake import DeltaTable
endpoint, url = sys.argv[1:]
options = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ALLOW_HTTP": "true"}
print(sum(DeltaTable(f"{url}/{t}", storage_options=options).to_pyarrow_table().num_rows
          for t in ["order_events", "carrier_events", "ticket_events"]))
"#;
    let output = run_python(reader, [s3.endpoint.clone(), s3.lake_url()]);
    let rows: i64 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert_eq!(rows, counts.rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_in_one_error_line() {
    let s3 = MotoS3::start().await;
    let mut env = s3.env();
    env[0].1 = "s3://no-such-bucket/lake".into();
    let output = orderpulse().args(["lake", "info"]).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no-such-bucket"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_named_with_the_bucket_in_one_error_line() {
    let s3 = MotoS3::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]).await;
    let mut env = s3.env();
    for (key, value) in &mut env {
        if key.ends_with("ACCESS_KEY_ID") || key.ends_with("SECRET_ACCESS_KEY") {
            *value = "not-a-real-key".into();
        }
    }
    let output = orderpulse().args(["lake", "info"]).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(s3.bucket), "the bucket is not named: {stderr}");
    assert!(stderr.contains("InvalidAccessKeyId"), "the reason is not given: {stderr}");
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error")).count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_processor_checkpoints_to_s3_and_resumes_there_as_on_local_disk() {
    use crate::common::{local_lake, query, simulated_lake};

    let s3 = MotoS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The same events in a local lake and on S3, committed in the same batches.
    let (local, events, _) = simulated_lake(dir.path(), &["--days", "2", "--orders-per-day", "400", "--seed", "37"]);
    let env = s3.env();
    let on_s3 = |args: &[&str]| {
        let mut command = orderpulse();
        command.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        command
    };
    run_ok(on_s3(&["ingest", "--quiet"]).arg(&events));
    let summary = |output: std::process::Output| serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap();

    let from_disk = summary(run_ok(orderpulse().args(["process", "--once", "--lake"]).arg(&local)));
    let from_s3 = summary(run_ok(&mut on_s3(&["process", "--once"])));
    assert!(from_s3["orders"].as_u64().unwrap() > 500, "{from_s3}");
    assert_eq!(from_s3, from_disk, "the state built from S3 differs from the one built from disk");
    let outputs = "SELECT (SELECT count(*) FROM order_status) AS statuses, (SELECT count(DISTINCT order_id) FROM order_status) AS orders, \
                   (SELECT count(*) FROM timer_firings) AS firings";
    let written = query(&s3.lake(), outputs).await;
    assert_eq!(written, query(&local_lake(&local), outputs).await);
    let by_status = "SELECT status, count(*) AS n FROM order_status GROUP BY status ORDER BY status";
    assert_eq!(query(&s3.lake(), by_status).await, query(&local_lake(&local), by_status).await);

    // Again: the state comes back from the checkpoint on S3, nothing is written twice.
    let again = on_s3(&["process", "--once"]).env("RUST_LOG", "orderpulse=info").output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("stream state restored"), "did not resume from the checkpoint");
    assert_eq!(summary(again), from_s3);
    assert_eq!(query(&s3.lake(), outputs).await, written, "order_status or timer_firings doubled");
    assert_eq!(written[0]["statuses"], written[0]["orders"], "an order has two order_status rows");

    // A rebuild deletes the checkpoints and outputs on S3 and builds them again, the same.
    let rebuilt = on_s3(&["process", "--once", "--rebuild"]).env("RUST_LOG", "orderpulse=info").output().unwrap();
    let log = String::from_utf8_lossy(&rebuilt.stderr).into_owned();
    assert!(rebuilt.status.success(), "{log}");
    assert!(log.contains("deleted for the rebuild") && !log.contains("stream state restored"), "started from the deleted checkpoint: {log}");
    assert_eq!(summary(rebuilt), from_s3);
    assert_eq!(query(&s3.lake(), outputs).await, written, "order_status or timer_firings not rebuilt once");
}
